/* shard.h — splitting one batch over several machines without a coordinator: shard K of N takes the input
 * lines whose shard hash (ids.h) is K modulo N.  Slurm does the distribution: without --shard, an array job
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or a multi-task step (SLURM_PROCID
 * of SLURM_NTASKS) picks the shard.  Shard K of N writes "<out>.shard-K-of-N.jsonl" (before the ".jsonl"
 * suffix), so every task can be given the same --output; `lmbatch merge` joins them.
 */
#ifndef LMB_SHARD_H
#define LMB_SHARD_H

#include <stdbool.h>
#include <stddef.h>

#include "../engine/error.h"

/* "K/N" with 0 <= K < N. */
int lmb_shard_parse(const char *text, int *k, int *n, lmb_error *err);
/* The shard Slurm assigns (see above): 1 when found (*what names the variables), 0 when not, -1 when the
 * variables are inconsistent. */
int lmb_shard_from_env(int *k, int *n, const char **what, lmb_error *err);
/* out with ".shard-K-of-N" inserted (N > 1); out itself when N <= 1 or out is "-". */
int lmb_shard_output(const char *out, int k, int n, char *buf, size_t cap, lmb_error *err);
/* Reads K and N back from a shard output's name; false when the name has no shard part. */
bool lmb_shard_of_path(const char *path, int *k, int *n);

#endif

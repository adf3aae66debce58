/* quantize_stage.h — a job's optional quantize stage: `lmbatch quantize awq` and/or `quantize kv` into the
 * job's quantize.output folder, rerun only when its inputs changed.
 *
 * What it depends on is recorded in a stamp, "<quantize.output>/lmbatch-quantize.stamp.json": every file of
 * the model folder and the calibration input (size + mtime in ns, or SHA-256 with "check": "hash") and the
 * stage parameters.  The stage is up to date when the stamp matches what is on disk now.  The stamp is
 * removed before the commands run and written after they all succeed, so a failed or killed stage is redone.
 *
 * The commands are called in-process through lmb_cmd_quantize (commands.h), which this file references
 * weakly: a build without the quantize commands reports "not available" instead of failing to link.  Each
 * stage gets `quantize STAGE --model IN --output OUT [--calib FILE] [--PARAM VALUE ...]`, one option per
 * parameter ("group_size": 128 -> --group-size 128; true -> a bare flag; false -> left out).
 */
#ifndef LMB_QUANTIZE_STAGE_H
#define LMB_QUANTIZE_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "job.h"

typedef int (*lmb_quantize_fn)(int argc, char **argv);
/* Replaces the quantize command (tests); NULL restores lmb_cmd_quantize. */
void lmb_quantize_set_hook(lmb_quantize_fn fn);
/* Whether a quantize command is available in this build. */
bool lmb_quantize_available(void);

#define LMB_QUANTIZE_STAMP "lmbatch-quantize.stamp.json"

/* Whether the stage must run: 1 (reason says why), 0 (up to date), -1 on error. */
int lmb_quantize_stale(const lmb_job *job, char *reason, size_t cap, lmb_error *err);
/* Runs the stage's commands and writes the stamp (call when stale).  On failure err says which command. */
int lmb_quantize_run(const lmb_job *job, lmb_error *err);

#endif

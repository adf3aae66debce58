/* commands.h — the subcommands of `lmbatch`; each lives in pipeline/cmd_<name>.c and returns an exit code
 * (0 ok, 1 some lines/items failed, 2 usage, 3 locked, 4 model/quantize failure, 5 input/output failure,
 * 6 incomplete shards; 128 + N killed by signal N, resumable; see docs/FORMATS.md). */
#ifndef LMB_COMMANDS_H
#define LMB_COMMANDS_H

enum { LMB_EXIT_OK = 0, LMB_EXIT_PARTIAL = 1, LMB_EXIT_USAGE = 2, LMB_EXIT_LOCKED = 3, LMB_EXIT_MODEL = 4 };

/* pipeline/cmd_inspect.c: a model folder's config, sizes, weight bytes and KV-cache cost. */
int lmb_cmd_inspect(int argc, char **argv);

int lmb_cmd_run(int argc, char **argv);
int lmb_cmd_ppl(int argc, char **argv);
int lmb_cmd_tokenize(int argc, char **argv);
int lmb_cmd_bench(int argc, char **argv);
int lmb_cmd_score(int argc, char **argv);
/* pipeline/cmd_quantize.c: `lmbatch quantize <method>`, dispatching to the methods below. */
int lmb_cmd_quantize(int argc, char **argv);
/* pipeline/cmd_quantize_awq.c: AWQ W4A16 weight quantization (argv[0] == "awq"). */
int lmb_cmd_quantize_awq(int argc, char **argv);
/* pipeline/cmd_quantize_kv.c: offline KV-cache scales (argv[0] == "kv"). */
int lmb_cmd_quantize_kv(int argc, char **argv);

/* Exit codes beyond the first five. */
enum { LMB_EXIT_IO = 5, LMB_EXIT_INCOMPLETE = 6 };

/* pipeline/cmd_merge.c: joins shard outputs, checking that every shard is there and complete. */
int lmb_cmd_merge(int argc, char **argv);
/* pipeline/cmd_job.c: `job run JOB.json` / `job check JOB.json`. */
int lmb_cmd_job(int argc, char **argv);

#endif

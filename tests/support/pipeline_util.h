/* pipeline_util.h — what the pipeline tests share: a tiny model folder the pipeline can run (random Llama
 * weights + the byte-level tokenizer of tests/fixtures/bytelevel), archives and compressed files written
 * with libarchive, running the lmbatch binary ($LMB_BIN, set by `make test`) as a user would, and reading
 * output files back as {key: line}.
 */
#ifndef LMB_TEST_PIPELINE_UTIL_H
#define LMB_TEST_PIPELINE_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../../engine/error.h"

/* DIR gets config.json + model.safetensors (Llama, hidden 64, 2 layers, vocab 2000, seed 1) and the
 * byte-level tokenizer.json / tokenizer_config.json (chatml template). */
int lmb_test_make_pipeline_model(const char *dir, lmb_error *err);

/* Writes an archive or compressed file at path.  kind: "tar", "tar.gz", "tar.zst", "zip" (members
 * names[i] with texts[i]; a name ending in '/' is a folder), or "gz", "zst" (one stream: texts[0]). */
int lmb_test_write_archive(const char *path, const char *kind, const char *const *names, const char *const *texts,
                           int n, lmb_error *err);

/* The lmbatch binary: $LMB_BIN, else build/lmbatch when present; NULL when neither. */
const char *lmb_test_bin(void);
/* Starts `lmbatch ARGS...` (args NULL-terminated, without the program name) with stdout and stderr appended to
 * log (may be NULL: /dev/null); env (may be NULL) is a NULL-terminated list of "NAME=VALUE" added to the
 * environment. */
pid_t lmb_test_spawn(const char *const *args, const char *const *env, const char *log);
/* Waits for pid: its exit code, 128 + N when killed by signal N, -1 after timeout_s (it is then killed). */
int lmb_test_wait(pid_t pid, double timeout_s);
/* spawn + wait (120 s). */
int lmb_test_lmbatch(const char *const *args, const char *const *env, const char *log);

/* Reads an lmbatch output file: an object mapping each line's key (see below) to the line, parsed.  Keys:
 * "id:<compact JSON id>" for answered ids (plain "id" or OpenAI "custom_id"), "pos:<source>:<line>" for error
 * lines keyed by position (no id, or a duplicate id).  *n_lines gets the number of lines; *repeated the
 * number of lines whose key was seen before (0 for a correct output).  NULL when the file cannot be read or
 * a line is not JSON. */
json_t *lmb_test_read_output(const char *path, int *n_lines, int *repeated);
/* The text of a result line (plain "text", OpenAI choices[0] content or text), a JSON string (texts may hold
 * NUL characters); NULL for an error line. */
json_t *lmb_test_line_text(json_t *line);

/* Sleeps s seconds. */
void lmb_test_sleep(double s);

#endif

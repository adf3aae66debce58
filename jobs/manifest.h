/* manifest.h — the JSON record written beside an output ("<output>.manifest.json"): what ran (lmbatch
 * version, command or job, model), on what (inputs with size, mtime and SHA-256), and how it went (started,
 * finished, status and exit code, line counts, tokens, throughput, peak memory, per-device lines).  It is
 * written atomically when the run starts (status "running") and again when it ends.  docs/FORMATS.md lists
 * the fields.
 */
#ifndef LMB_MANIFEST_H
#define LMB_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "../engine/error.h"
#include "../pipeline/runner.h"

/* [{"path", "size", "mtime", "sha256"}] for each input ("-": {"path": "-"}); hash false leaves sha256 out. */
int lmb_manifest_inputs(const char *const *paths, int n, bool hash, json_t **out, lmb_error *err);
/* {"counts", "tokens", "throughput", "peak_memory", "devices"} of a run. */
json_t *lmb_manifest_run(const lmb_run_summary *s);
int lmb_manifest_write(const char *path, json_t *m, lmb_error *err);
/* UTC, "2024-05-01T02:00:00Z". */
void lmb_iso8601(time_t t, char *buf, size_t cap);

#endif

/* test_job.c — job files: reading and validating them (paths relative to the job file, {date}, defaults,
 * unknown fields and bad values refused with the field named), the example jobs, the quantize stage's
 * staleness (model files, calibration input, parameters) with a fake quantize command, `job run` end to end
 * with the binary (manifest, resume on rerun, exit 3 while locked, a stale lock taken over), in-process runs
 * with the fake quantize stage (rerun only when stale; shards refuse to quantize), and the build without a
 * quantize command.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "../jobs/job.h"
#include "../jobs/lock.h"
#include "../jobs/quantize_stage.h"
#include "../pipeline/commands.h"
#include "support/fixtures.h"
#include "support/pipeline_util.h"

static char tmp[64], model[128];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    snprintf(model, sizeof model, "%s/model", tmp);
    cr_assert_eq(mkdir(model, 0755), 0);
    cr_assert_eq(lmb_test_make_pipeline_model(model, &err), 0, "%s", err.msg);
    char text[4096], *w = text;
    for (int i = 1; i <= 12; i++) w += sprintf(w, "{\"id\": \"j%d\", \"prompt\": \"Job line %d\"}\n", i, i);
    cr_assert_eq(lmb_test_write_file(tmp, "in.jsonl", text, strlen(text), NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "calib.jsonl", "{\"text\": \"calibrate\"}\n", 22, NULL, 0), 0);
}

static void teardown(void) {
    lmb_quantize_set_hook(NULL);
    lmb_test_rmtree(tmp, NULL);
}

TestSuite(job, .init = setup, .fini = teardown, .timeout = 300);

static const char *p(const char *name) {
    return lmb_test_join(tmp, name);
}

static void write_job(const char *name, const char *json) {
    cr_assert_eq(lmb_test_write_file(tmp, name, json, strlen(json), NULL, 0), 0);
}

static const char *ENGINE = "\"engine\": {\"threads\": 1, \"kv_cache_mb\": 8, \"max_seqs\": 4}, "
                            "\"defaults\": {\"max_tokens\": 6, \"temperature\": 0}";

static char *slurp(const char *path) {
    char *s;
    size_t n;
    lmb_error err;
    cr_assert_eq(lmb_file_read_all(path, &s, &n, &err), 0, "%s", err.msg);
    return s;
}

Test(job, load_resolves_paths_and_fills_defaults) {
    write_job("j.json", "{\"model\": \"model\", \"inputs\": \"in.jsonl\", \"output\": \"out/r-{date}.jsonl\", "
                        "\"defaults\": {\"stop\": \"END\", \"max_tokens\": 9}, \"engine\": {\"devices\": \"0,1\", "
                        "\"embedding\": \"host\"}}");
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0, "%s", err.msg);
    cr_assert_str_eq(job.engine.embedding, "host");
    cr_assert_str_eq(job.name, "j", "the name defaults to the file's");
    cr_assert_str_eq(job.model, model);
    cr_assert_eq(job.n_inputs, 1);
    cr_assert_str_eq(job.inputs[0], p("in.jsonl"));
    char date[16], want[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    snprintf(want, sizeof want, "%s/out/r-%s.jsonl", tmp, date);
    cr_assert_str_eq(job.output, want);
    snprintf(want, sizeof want, "%s/out/j.lock", tmp);
    cr_assert_str_eq(job.lock, want, "the lock lives beside the output, named after the job");
    cr_assert(job.resume, "jobs resume by default");
    cr_assert_eq(job.n_devices, 2);
    cr_assert_eq(job.sampling.stop.n, 1);
    lmb_run_options o;
    cr_assert_eq(lmb_job_run_options(&job, &o, &err), 0);
    cr_assert_eq(o.defaults.sampling.max_tokens, 9);
    cr_assert_str_eq(o.defaults.stop[0], "END");
    cr_assert_eq(lmb_job_check_files(&job, &err), 0, "a missing output folder is created by job run: %s", err.msg);
    cr_assert_eq(lmb_job_make_dirs(&job, &err), 0);
    struct stat st;
    cr_assert_eq(stat(p("out"), &st), 0);
    lmb_job_free(&job);
}

Test(job, bad_job_files_name_the_field) {
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"ouptut\": 1}", "\"ouptut\""},
        {"{\"inputs\": \"x\", \"output\": \"o.jsonl\"}", "\"model\""},
        {"{\"model\": \"m\", \"output\": \"o.jsonl\"}", "\"inputs\""},
        {"{\"model\": \"m\", \"inputs\": [], \"output\": \"o.jsonl\"}", "\"inputs\""},
        {"{\"model\": \"m\", \"inputs\": \"x\"}", "\"output\""},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"-\"}", "\"output\""},
        {"{\"model\": 3, \"inputs\": \"x\", \"output\": \"o.jsonl\"}", "\"model\""},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"order\": \"random\"}", "\"order\""},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"max_seqs\": 0}}", "max-seqs"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"gpus\": 2}}", "engine.gpus"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"defaults\": {\"top_p\": 2}}", "top-p"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"defaults\": {\"temperature\": \"hot\"}}",
         "defaults.temperature"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"shard\": \"3/2\"}", "shard"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"quantize\": {\"awq\": {}}}", "quantize.output"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"quantize\": {\"output\": \"q\"}}", "awq"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"quantize\": {\"output\": \"q\", \"awq\": "
         "{\"x\": [1]}}}",
         "quantize.awq.x"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"devices\": [0, 0]}}", "twice"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"quantize\": {\"output\": \"q\", \"kv\": "
         "{\"bits\": 5}}}",
         "quantize.kv.bits"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"kv\": \"int8\"}, \"quantize\": "
         "{\"output\": \"q\", \"kv\": {\"bits\": 4}}}",
         "engine.kv"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"kv\": \"int2\"}}", "kv"},
        {"{\"model\": \"m\", \"inputs\": \"x\", \"output\": \"o.jsonl\", \"engine\": {\"embedding\": \"disk\"}}",
         "--embedding must be auto, gpu or host"},
        {"{\"model\": \"m\", \"model\": \"n\", \"inputs\": \"x\", \"output\": \"o.jsonl\"}", "not valid JSON"},
        {"[1]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_job("bad.json", cases[i].json);
        lmb_job job;
        lmb_error err;
        cr_assert_eq(lmb_job_load(p("bad.json"), &job, &err), -1, "accepted: %s", cases[i].json);
        cr_assert(strstr(err.msg, cases[i].expect), "\"%s\" does not mention %s", err.msg, cases[i].expect);
        cr_assert(strstr(err.msg, "bad.json"), "the message names the job file: %s", err.msg);
        lmb_job_free(&job);
    }
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("none.json"), &job, &err), -1);
    lmb_job_free(&job);
    write_job("j.json", "{\"model\": \"nomodel\", \"inputs\": \"in.jsonl\", \"output\": \"o.jsonl\"}");
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0);
    cr_assert_eq(lmb_job_check_files(&job, &err), -1);
    cr_assert(strstr(err.msg, "nomodel"), "%s", err.msg);
    lmb_job_free(&job);
    write_job("j.json", "{\"model\": \"model\", \"inputs\": [\"in.jsonl\", \"x*.jsonl\"], \"output\": \"o.jsonl\"}");
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0);
    cr_assert_eq(lmb_job_check_files(&job, &err), -1);
    cr_assert(strstr(err.msg, "matches no file"), "%s", err.msg);
    lmb_job_free(&job);
}

Test(job, a_kv_stage_sets_the_runs_kv_cache) {
    lmb_job job;
    lmb_error err;
    lmb_run_options o;
    write_job("j.json", "{\"model\": \"model\", \"inputs\": \"in.jsonl\", \"output\": \"o.jsonl\", "
                        "\"quantize\": {\"output\": \"q\", \"kv\": {\"bits\": 4}}}");
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_job_run_options(&job, &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.engine.kv_bits, 4);
    cr_assert_str_eq(o.engine.kv_params, p("q/kv_params.json"));
    cr_assert_str_eq(o.model_dir, p("model"), "a kv-only stage runs the original model");
    lmb_job_free(&job);
    write_job("j.json", "{\"model\": \"model\", \"inputs\": \"in.jsonl\", \"output\": \"o.jsonl\", "
                        "\"quantize\": {\"output\": \"q\", \"awq\": {}, \"kv\": {}}}");
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_job_run_options(&job, &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.engine.kv_bits, 8, "int8 by default");
    cr_assert_str_eq(o.model_dir, p("q"), "after awq the run takes the quantized model");
    lmb_job_free(&job);
    write_job("j.json", "{\"model\": \"model\", \"inputs\": \"in.jsonl\", \"output\": \"o.jsonl\", "
                        "\"engine\": {\"kv\": \"int8\"}}");
    cr_assert_eq(lmb_job_load(p("j.json"), &job, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_job_run_options(&job, &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.engine.kv_bits, 8);
    cr_assert_null(o.engine.kv_params, "per-token scales");
    lmb_job_free(&job);
}

Test(job, the_example_jobs_are_valid) {
    const char *examples[] = {"examples/jobs/nightly-stories.json", "examples/jobs/eval-archive.json"};
    for (int i = 0; i < 2; i++) {
        lmb_job job;
        lmb_error err;
        cr_assert_eq(lmb_job_load(examples[i], &job, &err), 0, "%s", err.msg);
        lmb_job_free(&job);
    }
}

/* ---- the quantize stage, with a fake command ------------------------------------------------------------ */

static int fake_calls;
static char fake_argv[4][1024];

/* Records its command line and "quantizes" by copying the model folder's files to --output. */
static int fake_quantize(int argc, char **argv) {
    char *line = fake_argv[fake_calls % 4];
    line[0] = '\0';
    const char *in = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        strcat(line, i ? " " : "");
        strcat(line, argv[i]);
        if (!strcmp(argv[i], "--model") && i + 1 < argc) in = argv[i + 1];
        if (!strcmp(argv[i], "--output") && i + 1 < argc) out = argv[i + 1];
    }
    fake_calls++;
    if (getenv("LMB_FAKE_QUANTIZE_FAIL")) return 4;
    if (!in || !out || !strcmp(in, out)) return 0;
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char a[512], b[512], *data;
        size_t n;
        lmb_error err;
        snprintf(a, sizeof a, "%s/%s", in, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        if (lmb_file_read_all(a, &data, &n, &err)) return 9;
        int rc = lmb_file_write_atomic(b, data, n, &err);
        free(data);
        if (rc) return 9;
    }
    return 0;
}

static void quantize_job_with(const char *params, const char *top) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"qj\", \"model\": \"model\", \"quantize\": {\"output\": \"qmodel\", \"calibration\": "
             "\"calib.jsonl\", %s}, \"inputs\": \"in.jsonl\", \"output\": \"out/q.jsonl\", %s%s}",
             params, top, ENGINE);
    write_job("q.json", json);
}

static void quantize_job(const char *params) { quantize_job_with(params, ""); }

static int stale(char *reason, size_t cap) {
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("q.json"), &job, &err), 0, "%s", err.msg);
    int s = lmb_quantize_stale(&job, reason, cap, &err);
    cr_assert(s >= 0, "%s", err.msg);
    lmb_job_free(&job);
    return s;
}

static void quantize_now(void) {
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("q.json"), &job, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_quantize_run(&job, &err), 0, "%s", err.msg);
    lmb_job_free(&job);
}

Test(job, quantize_stage_reruns_only_when_stale) {
    lmb_quantize_set_hook(fake_quantize);
    quantize_job("\"awq\": {\"group_size\": 64, \"zero_point\": true, \"fast\": false}, \"kv\": {\"bits\": 8}");
    char reason[512];
    cr_assert_eq(stale(reason, sizeof reason), 1);
    cr_assert(strstr(reason, "no stamp"), "%s", reason);
    quantize_now();
    cr_assert_eq(fake_calls, 2, "awq, then kv");
    char want[1024];
    snprintf(want, sizeof want, "quantize awq --model %s --output %s --calib %s --group-size 64 --zero-point", model,
             p("qmodel"), p("calib.jsonl"));
    cr_assert_str_eq(fake_argv[0], want);
    snprintf(want, sizeof want, "quantize kv --model %s --output %s --calib %s --bits 8", p("qmodel"), p("qmodel"),
             p("calib.jsonl"));
    cr_assert_str_eq(fake_argv[1], want, "kv runs on the AWQ output");
    cr_assert(lmb_file_exists(p("qmodel/" LMB_QUANTIZE_STAMP)));
    cr_assert_eq(stale(reason, sizeof reason), 0, "up to date: %s", reason);

    /* the calibration input changes (same size, new content and mtime) */
    struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 100, 0}};
    cr_assert_eq(lmb_test_write_file(tmp, "calib.jsonl", "{\"text\": \"calibrats\"}\n", 22, NULL, 0), 0);
    cr_assert_eq(utimensat(AT_FDCWD, p("calib.jsonl"), later, 0), 0);
    cr_assert_eq(stale(reason, sizeof reason), 1);
    cr_assert(strstr(reason, "calibration"), "%s", reason);
    quantize_now();
    cr_assert_eq(stale(reason, sizeof reason), 0);

    /* a model file is touched */
    cr_assert_eq(utimensat(AT_FDCWD, p("model/config.json"), later, 0), 0);
    later[1].tv_sec += 1;
    cr_assert_eq(utimensat(AT_FDCWD, p("model/config.json"), later, 0), 0);
    cr_assert_eq(stale(reason, sizeof reason), 1);
    cr_assert(strstr(reason, "model"), "%s", reason);
    quantize_now();

    /* the parameters change */
    quantize_job("\"awq\": {\"group_size\": 128, \"zero_point\": true, \"fast\": false}, \"kv\": {\"bits\": 8}");
    cr_assert_eq(stale(reason, sizeof reason), 1);
    cr_assert(strstr(reason, "parameters"), "%s", reason);
    quantize_now();
    cr_assert_eq(fake_calls, 8);

    /* "check": "hash": a rewrite with the same bytes is not a change */
    quantize_job("\"check\": \"hash\", \"awq\": {\"group_size\": 128}");
    quantize_now();
    cr_assert_eq(utimensat(AT_FDCWD, p("calib.jsonl"), later, 0), 0);
    cr_assert_eq(stale(reason, sizeof reason), 0, "hash check: %s", reason);
}

Test(job, a_failed_quantize_is_redone) {
    lmb_quantize_set_hook(fake_quantize);
    quantize_job("\"awq\": {\"group_size\": 64}");
    setenv("LMB_FAKE_QUANTIZE_FAIL", "1", 1);
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("q.json"), &job, &err), 0);
    cr_assert_eq(lmb_quantize_run(&job, &err), -1);
    cr_assert(strstr(err.msg, "quantize awq") && strstr(err.msg, "exit code 4"), "%s", err.msg);
    lmb_job_free(&job);
    unsetenv("LMB_FAKE_QUANTIZE_FAIL");
    char reason[512];
    cr_assert_eq(stale(reason, sizeof reason), 1, "no stamp after a failure");
}

Test(job, without_a_quantize_command) {
    lmb_quantize_set_hook(NULL);
    if (lmb_quantize_available()) cr_skip_test("this build has the quantize commands");
    quantize_job("\"awq\": {\"group_size\": 64}");
    lmb_job job;
    lmb_error err;
    cr_assert_eq(lmb_job_load(p("q.json"), &job, &err), 0);
    cr_assert_eq(lmb_quantize_run(&job, &err), -1);
    cr_assert(strstr(err.msg, "not available in this build"), "%s", err.msg);
    lmb_job_free(&job);
}

/* `job run` in this process, with the fake quantize command. */
static int job_run(const char *path, const char *flag) {
    char *argv[] = {"job", "run", "--quiet", (char *)path, (char *)flag, NULL};
    return lmb_cmd_job(flag ? 5 : 4, argv);
}

Test(job, job_run_with_its_quantize_stage) {
    lmb_quantize_set_hook(fake_quantize);
    quantize_job("\"awq\": {\"group_size\": 64}");
    cr_assert_eq(job_run(p("q.json"), NULL), 0);
    cr_assert_eq(fake_calls, 1);
    json_t *m = json_load_file(p("out/q.jsonl.manifest.json"), 0, NULL);
    cr_assert(m);
    json_t *q = json_object_get(m, "quantize");
    cr_assert(json_is_true(json_object_get(q, "ran")));
    cr_assert_str_eq(json_string_value(json_object_get(q, "model_used")), p("qmodel"));
    json_decref(m);
    cr_assert_eq(job_run(p("q.json"), NULL), 0, "a rerun finds the output complete");
    cr_assert_eq(fake_calls, 1, "and the quantize stage up to date");
    m = json_load_file(p("out/q.jsonl.manifest.json"), 0, NULL);
    cr_assert(json_is_false(json_object_get(json_object_get(m, "quantize"), "ran")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "counts"), "resumed")), 12);
    json_decref(m);
    /* a shard never quantizes on its own; --quantize-only does, and stops there */
    quantize_job_with("\"awq\": {\"group_size\": 32}", "\"shard\": \"0/2\", ");
    cr_assert_eq(job_run(p("q.json"), NULL), LMB_EXIT_MODEL);
    cr_assert_eq(fake_calls, 1);
    cr_assert_eq(job_run(p("q.json"), "--quantize-only"), 0);
    cr_assert_eq(fake_calls, 2);
    cr_assert_not(lmb_file_exists(p("out/q.shard-0-of-2.jsonl")), "--quantize-only runs no batch");
    cr_assert_eq(job_run(p("q.json"), NULL), 0);
    cr_assert(lmb_file_exists(p("out/q.shard-0-of-2.jsonl")));
    /* a failing quantize stage: exit 4, and the manifest says why */
    quantize_job("\"awq\": {\"group_size\": 16}");
    setenv("LMB_FAKE_QUANTIZE_FAIL", "1", 1);
    cr_assert_eq(job_run(p("q.json"), NULL), LMB_EXIT_MODEL);
    unsetenv("LMB_FAKE_QUANTIZE_FAIL");
    m = json_load_file(p("out/q.jsonl.manifest.json"), 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "failed");
    cr_assert_eq(json_integer_value(json_object_get(m, "exit_code")), 4);
    cr_assert(strstr(json_string_value(json_object_get(m, "error")), "quantize awq"));
    json_decref(m);
}

/* ---- the binary, as cron runs it ------------------------------------------------------------------------ */

#define NEED_BIN()                                                                                                     \
    do {                                                                                                               \
        if (!lmb_test_bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");                            \
    } while (0)

static int bin_job(const char *what, const char *path, const char *log) {
    const char *args[] = {"job", what, path, NULL};
    const char *env[] = {"OMP_NUM_THREADS=1", NULL}; /* the eval example uses all cores otherwise */
    return lmb_test_lmbatch(args, env, log);
}

Test(job, cron_runs_with_the_binary) {
    NEED_BIN();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\": \"nightly\", \"model\": \"model\", \"inputs\": [\"in*.jsonl\"], \"output\": "
             "\"out/n.jsonl\", \"progress_interval\": 0.05, %s}",
             ENGINE);
    write_job("n.json", json);
    char log[256];
    snprintf(log, sizeof log, "%s", p("log.txt"));
    cr_assert_eq(bin_job("check", p("n.json"), log), 0, "see %s", log);
    cr_assert_eq(bin_job("run", p("n.json"), log), 0, "see %s", log);
    json_t *m = json_load_file(p("out/n.jsonl.manifest.json"), 0, NULL);
    cr_assert(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "ok");
    cr_assert_eq(json_integer_value(json_object_get(m, "exit_code")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "job")), "nightly");
    cr_assert(json_string_value(json_object_get(m, "lmbatch_version")));
    cr_assert(json_string_value(json_object_get(m, "started")) && json_string_value(json_object_get(m, "finished")));
    json_t *counts = json_object_get(m, "counts");
    cr_assert_eq(json_integer_value(json_object_get(counts, "ok")), 12);
    cr_assert_eq(json_integer_value(json_object_get(counts, "errors")), 0);
    json_t *in0 = json_array_get(json_object_get(m, "inputs"), 0);
    cr_assert_eq(strlen(json_string_value(json_object_get(in0, "sha256"))), 64);
    cr_assert(json_integer_value(json_object_get(json_object_get(m, "tokens"), "completion")) > 0);
    cr_assert(json_integer_value(json_object_get(json_object_get(m, "peak_memory"), "host_rss_bytes")) > 0);
    cr_assert(json_number_value(json_object_get(json_object_get(m, "throughput"), "completion_tok_per_s")) > 0);
    json_decref(m);
    cr_assert_not(lmb_file_exists(p("out/nightly.lock")), "the lock is gone after the run");
    char *logtext = slurp(log);
    cr_assert(strstr(logtext, "{\"progress\":"), "JSON progress lines when stderr is not a TTY");
    free(logtext);

    /* another run holds the lock: exit 3, nothing touched */
    lmb_lock *l;
    lmb_error err;
    cr_assert_eq(lmb_lock_acquire(p("out/nightly.lock"), &l, NULL, 0, &err), LMB_LOCK_OK, "%s", err.msg);
    struct stat before, after;
    cr_assert_eq(stat(p("out/n.jsonl"), &before), 0);
    cr_assert_eq(bin_job("run", p("n.json"), log), LMB_EXIT_LOCKED);
    cr_assert_eq(stat(p("out/n.jsonl"), &after), 0);
    cr_assert_eq(before.st_mtime, after.st_mtime);
    cr_assert_eq(before.st_ino, after.st_ino);
    logtext = slurp(log);
    cr_assert(strstr(logtext, "another run holds this lock"), "%s", logtext);
    free(logtext);
    lmb_lock_release(l);

    /* the lock of a killed run is taken over; the rerun resumes: every line already answered */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char host[256] = "", text[512];
    gethostname(host, sizeof host - 1);
    snprintf(text, sizeof text, "{\"pid\":%d,\"host\":\"%s\",\"started\":\"2020-01-01T00:00:00Z\"}", (int)dead, host);
    cr_assert_eq(lmb_test_write_file(tmp, "out/nightly.lock", text, strlen(text), NULL, 0), 0);
    remove(log);
    cr_assert_eq(bin_job("run", p("n.json"), log), 0);
    logtext = slurp(log);
    cr_assert(strstr(logtext, "took over the stale lock"), "%s", logtext);
    cr_assert(strstr(logtext, "12 already done"), "%s", logtext);
    free(logtext);

    /* an invalid job: exit 2 */
    write_job("bad.json", "{\"model\": \"model\"}");
    cr_assert_eq(bin_job("check", p("bad.json"), log), LMB_EXIT_USAGE);
    cr_assert_eq(bin_job("run", p("bad.json"), log), LMB_EXIT_USAGE);
}

Test(job, the_eval_example_runs) {
    NEED_BIN();
    char buf[512];
    LMB_TEST_NEED_SHARED(buf, "models/pycoder-22M/config.json");
    char log[256];
    snprintf(log, sizeof log, "%s", p("eval.log"));
    lmb_test_rmtree("build/eval", NULL);
    cr_assert_eq(bin_job("check", "examples/jobs/eval-archive.json", log), 0, "see %s", log);
    int rc = bin_job("run", "examples/jobs/eval-archive.json", log);
    cr_assert_eq(rc, 0, "exit %d; see %s", rc, log);
    int n, rep;
    json_t *out = lmb_test_read_output("build/eval/eval-pycoder.jsonl", &n, &rep);
    cr_assert(out);
    cr_assert_eq(n, 6);
    cr_assert(json_object_get(out, "id:\"fn-fib\"") && json_object_get(out, "id:\"chat-sort\""));
    json_decref(out);
    lmb_test_rmtree("build/eval", NULL);
}

Test(job, run_takes_its_output_lock_and_writes_a_manifest) {
    NEED_BIN();
    char log[256], out[256], lockp[300];
    snprintf(log, sizeof log, "%s", p("run.log"));
    snprintf(out, sizeof out, "%s", p("r.jsonl"));
    snprintf(lockp, sizeof lockp, "%s.lock", out);
    const char *args[] = {"run", "--model", model, "--input", p("in.jsonl"), "--output", out, "--threads", "1",
                          "--kv-cache-mb", "8", "--max-tokens", "4", "--manifest", "auto", "--quiet", NULL};
    lmb_lock *l;
    lmb_error err;
    cr_assert_eq(lmb_lock_acquire(lockp, &l, NULL, 0, &err), LMB_LOCK_OK, "%s", err.msg);
    cr_assert_eq(lmb_test_lmbatch(args, NULL, log), LMB_EXIT_LOCKED);
    cr_assert_not(lmb_file_exists(out));
    lmb_lock_release(l);
    cr_assert_eq(lmb_test_lmbatch(args, NULL, log), 0, "see %s", log);
    char man[300];
    snprintf(man, sizeof man, "%s.manifest.json", out);
    json_t *m = json_load_file(man, 0, NULL);
    cr_assert(m, "no manifest %s", man);
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "ok");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "counts"), "ok")), 12);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "counts"), "input_total")), 12);
    cr_assert(json_is_null(json_object_get(m, "job")) || !json_object_get(m, "job"));
    json_decref(m);
    cr_assert_not(lmb_file_exists(lockp));
    const char *bad[] = {"run", "--model", model, "--input", p("in.jsonl"), "--output", "-", "--resume", NULL};
    cr_assert_eq(lmb_test_lmbatch(bad, NULL, log), LMB_EXIT_USAGE, "--resume needs a file");
    const char *bad2[] = {"run", "--model", model, "--input", p("in.jsonl"), "--output", out, "--shard", "2/2", NULL};
    cr_assert_eq(lmb_test_lmbatch(bad2, NULL, log), LMB_EXIT_USAGE);
    const char *bad3[] = {"run", "--model", model, "--input", p("in.jsonl"), "--output", out, "--devices", "0,0", NULL};
    cr_assert_eq(lmb_test_lmbatch(bad3, NULL, log), LMB_EXIT_USAGE);
}

/* test_runner.c — the batch pipeline in-process (lmb_run) on a tiny CPU model: one output line per input key
 * (results, per-line errors, duplicates), OpenAI batch lines with n choices, input order, two CPU engines
 * (--devices 0,1) giving the same greedy texts as one, resume (skipped keys, torn tail redone), shards that
 * partition the input, archives and several inputs, and the exit codes of failures.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "../pipeline/commands.h"
#include "../pipeline/runner.h"
#include "support/fixtures.h"
#include "support/pipeline_util.h"

static char tmp[64], model[128];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    snprintf(model, sizeof model, "%s/model", tmp);
    cr_assert_eq(mkdir(model, 0755), 0);
    cr_assert_eq(lmb_test_make_pipeline_model(model, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(runner, .init = setup, .fini = teardown, .timeout = 120);

static void options(lmb_run_options *o, const char *input, const char *output) {
    memset(o, 0, sizeof *o);
    lmb_engine_config_default(&o->engine);
    o->engine.threads = 1;
    o->engine.kv_cache_mb = 8;
    o->engine.max_seqs = 4;
    o->engine.quiet = true;
    lmb_sampling_default(&o->defaults.sampling);
    o->defaults.sampling.temperature = 0;
    o->defaults.sampling.max_tokens = 10;
    o->model_dir = model;
    o->input = input;
    o->output = output;
    o->chat_template = -1;
    o->progress_interval = 10;
    o->quiet = true;
}

static char *path_in(const char *name) {
    return lmb_test_join(tmp, name);
}

static void write_text(const char *name, const char *text) {
    cr_assert_eq(lmb_test_write_file(tmp, name, text, strlen(text), NULL, 0), 0);
}

static char *numbered_lines(int n) {
    char *s = malloc(128 * (size_t)n + 1), *w = s;
    *w = '\0';
    for (int i = 1; i <= n; i++)
        w += sprintf(w, "{\"id\": \"q%d\", \"prompt\": \"Line %d says\", \"max_tokens\": %d}\n", i, i, 4 + (i * 5) % 13);
    return s;
}

static json_t *run_ok(lmb_run_options *o, lmb_run_summary *sum, int *n_lines) {
    lmb_error err;
    cr_assert_eq(lmb_run(o, sum, &err), 0, "%s", err.msg);
    int rep;
    json_t *out = lmb_test_read_output(o->output, n_lines, &rep);
    cr_assert(out, "cannot read %s", o->output);
    cr_assert_eq(rep, 0, "a key is answered twice in %s", o->output);
    return out;
}

static void same_texts(json_t *a, json_t *b) {
    cr_assert_eq(json_object_size(a), json_object_size(b));
    const char *key;
    json_t *la;
    json_object_foreach(a, key, la) {
        json_t *lb = json_object_get(b, key);
        cr_assert(lb, "no line for %s", key);
        json_t *ta = lmb_test_line_text(la), *tb = lmb_test_line_text(lb);
        cr_assert_eq(!ta, !tb, "%s is an error in one output only", key);
        if (ta) cr_assert(json_equal(ta, tb), "%s: texts differ", key);
    }
}

Test(runner, plain_lines_and_per_line_errors) {
    write_text("in.jsonl", "{\"id\": \"a\", \"prompt\": \"Hello\"}\n"
                           "\n"
                           "not json\n"
                           "{\"id\": 70, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n"
                           "{\"id\": \"b\", \"prompt\": \"x\", \"max_tokens\": \"ten\"}\n"
                           "{\"id\": \"a\", \"prompt\": \"again\"}\n"
                           "{\"prompt\": \"no id\"}\n"
                           "{\"id\": 1.5, \"prompt\": \"float id\"}\n"
                           "   \n");
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("out.jsonl"));
    int n;
    json_t *out = run_ok(&o, &s, &n);
    cr_assert_eq(n, 7, "one line per non-blank input line, got %d", n);
    cr_assert_eq(s.lines, 7);
    cr_assert_eq(s.ok, 3);
    cr_assert_eq(s.errors, 4);
    cr_assert_eq(s.duplicates, 1);
    cr_assert(lmb_test_line_text(json_object_get(out, "id:\"a\"")));
    cr_assert(lmb_test_line_text(json_object_get(out, "id:70")), "chat messages are served");
    cr_assert(lmb_test_line_text(json_object_get(out, "id:7")), "a line without id gets its line number as id");
    char key[300];
    snprintf(key, sizeof key, "pos:in.jsonl:3"); /* origins are file names */
    json_t *notjson = json_object_get(out, key);
    cr_assert(notjson, "no error line keyed %s", key);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(notjson, "error"), "code")), "invalid_request");
    json_t *tenline = json_object_get(out, "id:\"b\"");
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(tenline, "error"), "message")), "max_tokens"));
    snprintf(key, sizeof key, "pos:in.jsonl:6");
    json_t *dup = json_object_get(out, key);
    cr_assert(dup, "no duplicate error line keyed %s", key);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(dup, "error"), "code")), "duplicate_id");
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(dup, "error"), "message")), ":1"),
              "the message names where the id was first seen");
    cr_assert_eq(s.total_errors, 4);
    json_decref(out);
}

/* A ChatML template with a default system turn (Qwen2's): a conversation without a system message is served
 * exactly as one that starts with the default (same prompt tokens, same greedy text), and the fixture's plain
 * ChatML template (no default) gives a shorter prompt. */
Test(runner, chatml_default_system_turn) {
    write_text("in.jsonl", "{\"id\": \"bare\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n"
                           "{\"id\": \"sys\", \"messages\": [{\"role\": \"system\", \"content\": "
                           "\"You are a helpful assistant.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}\n");
    lmb_run_options o;
    lmb_run_summary s;
    int n;
    options(&o, path_in("in.jsonl"), path_in("plain.jsonl"));
    json_t *plain = run_ok(&o, &s, &n);
    const char *cfg = "{\"add_bos_token\": true, \"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|im_end|>\", "
                      "\"chat_template\": \"{% for message in messages %}{% if loop.first and messages[0]['role'] != "
                      "'system' %}{{ '<|im_start|>system\\\\nYou are a helpful assistant.<|im_end|>\\\\n' }}{% endif %}"
                      "{{'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + '<|im_end|>' + '\\\\n'}}"
                      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\\\n' }}{% endif %}\"}";
    cr_assert_eq(lmb_test_write_file(model, "tokenizer_config.json", cfg, strlen(cfg), NULL, 0), 0);
    options(&o, path_in("in.jsonl"), path_in("qwen2.jsonl"));
    json_t *q = run_ok(&o, &s, &n);
    json_t *bare = json_object_get(q, "id:\"bare\""), *sys = json_object_get(q, "id:\"sys\"");
    json_t *pbare = json_object_get(plain, "id:\"bare\""), *psys = json_object_get(plain, "id:\"sys\"");
    cr_assert(bare && sys && pbare && psys);
    json_int_t tb = json_integer_value(json_object_get(json_object_get(bare, "usage"), "prompt_tokens")),
               ts = json_integer_value(json_object_get(json_object_get(sys, "usage"), "prompt_tokens")),
               tp = json_integer_value(json_object_get(json_object_get(pbare, "usage"), "prompt_tokens")),
               tps = json_integer_value(json_object_get(json_object_get(psys, "usage"), "prompt_tokens"));
    cr_assert(tb > 0 && tb == ts, "without a system message %lld prompt tokens, with the default %lld", (long long)tb,
              (long long)ts);
    cr_assert_eq(tps, ts, "an explicit system message renders the same under both templates");
    cr_assert_lt(tp, tb, "the plain template adds no system turn (%lld against %lld)", (long long)tp, (long long)tb);
    cr_assert(json_equal(lmb_test_line_text(bare), lmb_test_line_text(sys)), "same prompt, same greedy text");
    json_decref(plain), json_decref(q);
}

Test(runner, openai_batch_lines) {
    write_text("oa.jsonl",
               "{\"custom_id\": \"c1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {\"model\": "
               "\"m1\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 6, \"n\": 3}}\n"
               "{\"custom_id\": \"c2\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": "
               "\"Once\", \"max_tokens\": 5, \"temperature\": 0.9, \"seed\": 11, \"n\": 2}}\n"
               "{\"custom_id\": \"c3\", \"method\": \"POST\", \"url\": \"/v1/embeddings\", \"body\": {}}\n");
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("oa.jsonl"), path_in("oa.out.jsonl"));
    int n;
    json_t *out = run_ok(&o, &s, &n);
    cr_assert_eq(n, 3);
    json_t *c1 = json_object_get(out, "id:\"c1\"");
    cr_assert(c1);
    cr_assert(json_is_null(json_object_get(c1, "error")));
    json_t *resp = json_object_get(c1, "response");
    cr_assert_eq(json_integer_value(json_object_get(resp, "status_code")), 200);
    json_t *body = json_object_get(resp, "body");
    cr_assert_str_eq(json_string_value(json_object_get(body, "object")), "chat.completion");
    cr_assert_str_eq(json_string_value(json_object_get(body, "model")), "m1", "the request's model is echoed");
    json_t *ch = json_object_get(body, "choices");
    cr_assert_eq(json_array_size(ch), 3);
    for (int i = 0; i < 3; i++) { /* greedy: every choice is the same text */
        json_t *c = json_array_get(ch, (size_t)i);
        cr_assert_eq(json_integer_value(json_object_get(c, "index")), i);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "message"), "role")), "assistant");
        cr_assert(json_equal(json_object_get(json_object_get(c, "message"), "content"),
                             json_object_get(json_object_get(json_array_get(ch, 0), "message"), "content")));
    }
    json_t *usage = json_object_get(body, "usage");
    cr_assert_eq(json_integer_value(json_object_get(usage, "completion_tokens")), 18, "3 choices x 6 tokens");
    cr_assert_eq(json_integer_value(json_object_get(usage, "total_tokens")),
                 json_integer_value(json_object_get(usage, "prompt_tokens")) + 18);
    cr_assert(!strncmp(json_string_value(json_object_get(c1, "id")), "batch_req_", 10));
    json_t *c2 = json_object_get(out, "id:\"c2\"");
    json_t *b2 = json_object_get(json_object_get(c2, "response"), "body");
    cr_assert_str_eq(json_string_value(json_object_get(b2, "object")), "text_completion");
    cr_assert_str_eq(json_string_value(json_object_get(b2, "model")), "model", "default: the model folder's name");
    cr_assert_eq(json_array_size(json_object_get(b2, "choices")), 2);
    json_t *c3 = json_object_get(out, "id:\"c3\"");
    cr_assert(json_is_null(json_object_get(c3, "response")));
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(c3, "error"), "message")), "/v1/embeddings"));
    json_decref(out);
}

Test(runner, seeded_sampling_is_reproducible) {
    write_text("s.jsonl", "{\"id\": 1, \"prompt\": \"Once\", \"temperature\": 1.0, \"max_tokens\": 8}\n"
                          "{\"id\": 2, \"prompt\": \"Once\", \"temperature\": 1.0, \"max_tokens\": 8, \"seed\": 5}\n");
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("s.jsonl"), path_in("s1.jsonl"));
    int n;
    json_t *a = run_ok(&o, &s, &n);
    o.output = path_in("s2.jsonl");
    json_t *b = run_ok(&o, &s, &n);
    same_texts(a, b);
    json_decref(a);
    json_decref(b);
}

Test(runner, input_order) {
    char *text = numbered_lines(30);
    write_text("in.jsonl", text);
    free(text);
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("ordered.jsonl"));
    o.order = LMB_ORDER_INPUT;
    o.engine.max_seqs = 2;
    int n;
    json_t *out = run_ok(&o, &s, &n);
    cr_assert_eq(n, 30);
    FILE *f = fopen(o.output, "r");
    char line[4096];
    for (int i = 1; fgets(line, sizeof line, f); i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"id\":\"q%d\"", i);
        cr_assert(!strncmp(line, want, strlen(want)), "line %d is %.20s", i, line);
    }
    fclose(f);
    json_decref(out);
}

Test(runner, two_cpu_engines_give_the_same_texts) {
    char *text = numbered_lines(60);
    write_text("in.jsonl", text);
    free(text);
    lmb_run_options o;
    lmb_run_summary one, two;
    options(&o, path_in("in.jsonl"), path_in("one.jsonl"));
    o.engine.max_seqs = 2;
    int n;
    json_t *a = run_ok(&o, &one, &n);
    int devices[2] = {0, 1};
    o.devices = devices;
    o.n_devices = 2;
    o.output = path_in("two.jsonl");
    json_t *b = run_ok(&o, &two, &n);
    same_texts(a, b);
    cr_assert_eq(two.n_devices, 2);
    cr_assert_eq(two.dev[0].lines + two.dev[1].lines, 60);
    cr_assert_gt(two.dev[0].lines, 0, "engine 0 served nothing");
    cr_assert_gt(two.dev[1].lines, 0, "engine 1 served nothing");
    cr_assert_eq(two.completion_tokens, one.completion_tokens);
    json_decref(a);
    json_decref(b);
}

Test(runner, resume_skips_answered_keys_and_redoes_a_torn_line) {
    char *text = numbered_lines(20);
    write_text("in.jsonl", text);
    free(text);
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("ref.jsonl"));
    int n;
    json_t *ref = run_ok(&o, &s, &n);
    /* an interrupted output: 8 whole lines and half of the 9th */
    char *all;
    size_t len;
    lmb_error err;
    cr_assert_eq(lmb_file_read_all(o.output, &all, &len, &err), 0);
    char *p = all;
    for (int i = 0; i < 8; i++) p = strchr(p, '\n') + 1;
    size_t keep = (size_t)(p - all) + 25;
    write_text("out.jsonl.partial", "");
    cr_assert_eq(lmb_test_write_file(tmp, "out.jsonl.partial", all, keep, NULL, 0), 0);
    free(all);
    o.output = path_in("out.jsonl");
    o.resume = true;
    json_t *got = run_ok(&o, &s, &n);
    cr_assert_eq(n, 20);
    cr_assert_eq(s.resumed, 8);
    cr_assert_eq(s.ok, 12);
    cr_assert_eq(s.total_ok, 20);
    cr_assert_gt(s.resume_cut_bytes, 0);
    same_texts(ref, got);
    /* resuming a finished output: nothing left to do, the file is unchanged */
    json_t *again = run_ok(&o, &s, &n);
    cr_assert_eq(s.resumed, 20);
    cr_assert_eq(s.ok + s.errors, 0);
    cr_assert_eq(n, 20);
    json_decref(again);
    json_decref(ref);
    json_decref(got);
}

Test(runner, resume_keeps_duplicates_and_bad_lines_answered_once) {
    write_text("in.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\nbad\n{\"id\": \"a\", \"prompt\": \"y\"}\n{\"id\": \"b\", \"prompt\": \"z\"}\n");
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("out.jsonl"));
    o.resume = true;
    int n;
    json_t *a = run_ok(&o, &s, &n);
    cr_assert_eq(n, 4);
    json_t *b = run_ok(&o, &s, &n);
    cr_assert_eq(n, 4, "a rerun adds no line");
    cr_assert_eq(s.resumed, 4);
    json_decref(a);
    json_decref(b);
}

Test(runner, shards_partition_the_input) {
    char *text = numbered_lines(30);
    write_text("in.jsonl", text);
    free(text);
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("all.jsonl"));
    int n;
    json_t *all = run_ok(&o, &s, &n);
    json_t *merged = json_object();
    long lines = 0;
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "part%d.jsonl", k);
        o.output = path_in(name);
        o.shard_k = k;
        o.shard_n = 3;
        json_t *part = run_ok(&o, &s, &n);
        cr_assert_eq(s.lines + s.other_shard, 30);
        lines += s.lines;
        const char *key;
        json_t *v;
        json_object_foreach(part, key, v) {
            cr_assert_null(json_object_get(merged, key), "%s is in two shards", key);
            json_object_set(merged, key, v);
        }
        json_decref(part);
    }
    cr_assert_eq(lines, 30);
    same_texts(all, merged);
    json_decref(all);
    json_decref(merged);
}

Test(runner, archives_and_several_inputs) {
    const char *names[] = {"day2.jsonl", "notes/", "day1.jsonl", "notes/readme.txt"};
    const char *texts[] = {"{\"prompt\": \"two\"}\nnot json\n", "", "{\"prompt\": \"one\"}\n", "hello"};
    lmb_error err;
    cr_assert_eq(lmb_test_write_archive(path_in("b.tar.zst"), "tar.zst", names, texts, 4, &err), 0, "%s", err.msg);
    const char *gz[] = {"{\"id\": \"g\", \"prompt\": \"gz\"}\n"};
    cr_assert_eq(lmb_test_write_archive(path_in("c.jsonl.gz"), "gz", NULL, gz, 1, &err), 0, "%s", err.msg);
    const char *inputs[] = {path_in("c.jsonl.gz"), path_in("b.tar.zst")};
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, NULL, path_in("out.jsonl"));
    o.inputs = inputs;
    o.n_inputs = 2;
    o.order = LMB_ORDER_INPUT;
    int n;
    json_t *out = run_ok(&o, &s, &n);
    cr_assert_eq(n, 4);
    char key[512];
    snprintf(key, sizeof key, "id:\"b.tar.zst:day1.jsonl:1\"");
    cr_assert(json_object_get(out, key), "several streams: a line without id is named origin:line (%s)", key);
    snprintf(key, sizeof key, "pos:b.tar.zst:day2.jsonl:2");
    json_t *bad = json_object_get(out, key);
    cr_assert(bad, "the error line names the member: %s", key);
    cr_assert(json_object_get(out, "id:\"g\""));
    /* input order: c.jsonl.gz, then day1 before day2 (name order, not archive order) */
    FILE *f = fopen(o.output, "r");
    char line[4096];
    cr_assert(fgets(line, sizeof line, f) && strstr(line, "\"g\""));
    cr_assert(fgets(line, sizeof line, f) && strstr(line, "day1.jsonl:1"));
    cr_assert(fgets(line, sizeof line, f) && strstr(line, "day2.jsonl:1"));
    fclose(f);
    json_decref(out);
}

Test(runner, forced_format) {
    write_text("in.jsonl", "{\"id\": 1, \"prompt\": \"x\"}\n");
    lmb_run_options o;
    lmb_run_summary s;
    options(&o, path_in("in.jsonl"), path_in("out.jsonl"));
    o.format = LMB_FMT_OPENAI;
    int n;
    json_t *out = run_ok(&o, &s, &n);
    cr_assert_eq(s.errors, 1);
    char key[300];
    snprintf(key, sizeof key, "pos:in.jsonl:1");
    json_t *l = json_object_get(out, key);
    cr_assert(l);
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(l, "error"), "message")), "custom_id"));
    json_decref(out);
}

Test(runner, failures_have_their_exit_codes) {
    write_text("in.jsonl", "{\"id\": 1, \"prompt\": \"x\"}\n");
    lmb_run_options o;
    lmb_run_summary s;
    lmb_error err;
    options(&o, path_in("in.jsonl"), path_in("out.jsonl"));
    o.model_dir = tmp; /* no tokenizer.json, no config.json */
    cr_assert_eq(lmb_run(&o, &s, &err), -1);
    cr_assert_eq(s.exit_code, LMB_EXIT_MODEL, "%d: %s", s.exit_code, err.msg);
    options(&o, path_in("missing.jsonl"), path_in("out.jsonl"));
    cr_assert_eq(lmb_run(&o, &s, &err), -1);
    cr_assert_eq(s.exit_code, LMB_EXIT_IO, "%d: %s", s.exit_code, err.msg);
    cr_assert(strstr(err.msg, "missing.jsonl"));
    /* an interrupted run keeps its partial output for --resume */
    volatile sig_atomic_t sig = 15;
    options(&o, path_in("in.jsonl"), path_in("int.jsonl"));
    o.interrupt = &sig;
    cr_assert_eq(lmb_run(&o, &s, &err), -1);
    cr_assert_eq(s.exit_code, 128 + 15);
    cr_assert(strstr(err.msg, "--resume"));
    cr_assert(lmb_file_exists(path_in("int.jsonl.partial")));
    cr_assert(!lmb_file_exists(path_in("int.jsonl")));
}

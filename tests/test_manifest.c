/* test_manifest.c — SHA-256 against the FIPS 180-4 examples (and block-boundary splits), and the parts of a
 * manifest: inputs with size, mtime and hash; run counts, tokens, throughput, memory and devices.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../jobs/manifest.h"
#include "../jobs/sha256.h"
#include "support/fixtures.h"

TestSuite(manifest);

static void hex_of(const char *s, size_t n, char out[65]) {
    lmb_sha256 h;
    lmb_sha256_init(&h);
    lmb_sha256_update(&h, s, n);
    lmb_sha256_hex(&h, out);
}

Test(manifest, sha256_vectors) {
    char hex[65];
    hex_of("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    lmb_sha256 h;
    lmb_sha256_init(&h);
    char a[1001];
    memset(a, 'a', sizeof a);
    for (int i = 0; i < 1000; i++) lmb_sha256_update(&h, a, i % 2 ? 999 : 1001); /* odd splits, 10^6 bytes */
    lmb_sha256_hex(&h, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(manifest, inputs_and_run) {
    char tmp[64], path[128];
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "in.jsonl", "abc", 3, path, sizeof path), 0);
    const char *paths[] = {path, "-"};
    json_t *in;
    cr_assert_eq(lmb_manifest_inputs(paths, 2, true, &in, &err), 0, "%s", err.msg);
    json_t *f = json_array_get(in, 0);
    cr_assert_eq(json_integer_value(json_object_get(f, "size")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(f, "sha256")),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert(json_is_string(json_object_get(f, "mtime")));
    cr_assert_eq(json_object_size(json_array_get(in, 1)), 1, "stdin: only its path");
    json_decref(in);
    const char *missing[] = {"/nonexistent/x.jsonl"};
    cr_assert_eq(lmb_manifest_inputs(missing, 1, false, &in, &err), -1);

    lmb_run_summary s = {.lines = 10, .ok = 8, .errors = 2, .resumed = 3, .completion_tokens = 100, .seconds = 2,
                         .total_ok = 11, .total_errors = 2, .peak_rss_kb = 4, .n_devices = 2};
    s.dev[0].lines = 6;
    s.dev[1].lines = 4;
    s.dev[1].device = 1;
    s.dev[1].peak_device_bytes = 1000;
    json_t *m = lmb_manifest_run(&s);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "counts"), "output_ok")), 11);
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(m, "throughput"), "completion_tok_per_s")), 50, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "peak_memory"), "host_rss_bytes")), 4096);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "peak_memory"), "device_bytes")), 1000);
    cr_assert_eq(json_array_size(json_object_get(m, "devices")), 2);
    char out[200];
    snprintf(out, sizeof out, "%s/m.json", tmp);
    cr_assert_eq(lmb_manifest_write(out, m, &err), 0);
    json_t *back = json_load_file(out, 0, NULL);
    cr_assert(json_equal(back, m));
    json_decref(back);
    json_decref(m);
    char when[32];
    lmb_iso8601(0, when, sizeof when);
    cr_assert_str_eq(when, "1970-01-01T00:00:00Z");
    lmb_test_rmtree(tmp, NULL);
}

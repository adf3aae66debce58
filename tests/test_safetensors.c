/* test_safetensors.c — the safetensors reader and writer: round trips (single file, sharded, folder glob),
 * crafted bad files (each must fail with an error naming the file and the bad field, never crash), every
 * truncation of a valid file, and the checkpoints in ../shared (skipped when absent).
 *
 * Expected values for ../shared were read with Python's safetensors 0.8 (safetensors.torch.load_file) and
 * printed as float(x); e.g. load_file("stories260K/model.safetensors")["model.norm.weight"][:4].
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"
#include "../engine/safetensors.h"
#include "support/fixtures.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(safetensors, .init = setup, .fini = teardown);

/* Writes NAME = u64 LE header length + header + n_data zero bytes; returns the path in path. */
static void write_st(const char *name, const char *header, size_t n_data, char *path, size_t cap) {
    size_t hl = strlen(header);
    unsigned char *buf = calloc(1, 8 + hl + n_data);
    cr_assert(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    cr_assert_eq(lmb_test_write_file(tmp, name, buf, 8 + hl + n_data, path, cap), 0);
    free(buf);
}

/* Opening must fail with a message naming the file and containing each of the given fragments. */
static void expect_fail_file(const char *path, const char *frag1, const char *frag2) {
    lmb_safetensors *st = NULL;
    lmb_error err = {{0}};
    cr_assert_neq(lmb_st_open_file(path, &st, &err), 0, "opening %s should fail", path);
    cr_assert_null(st);
    cr_assert(strstr(err.msg, path), "error should name the file: %s", err.msg);
    cr_assert(strstr(err.msg, frag1), "error should mention '%s': %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2), "error should mention '%s': %s", frag2, err.msg);
}

static void expect_bad_header(const char *header, size_t n_data, const char *frag1, const char *frag2) {
    char path[4096];
    write_st("bad.safetensors", header, n_data, path, sizeof path);
    expect_fail_file(path, frag1, frag2);
}

/* ---- round trips ----------------------------------------------------------------------------------------- */

Test(safetensors, writer_reader_round_trip) {
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    uint16_t f16[5] = {0x3c00, 0xbc00, 0x0001, 0x7bff, 0};
    uint16_t bf16[4] = {0x3f80, 0x4000, 0xc040, 0x0000};
    int32_t i32[3] = {-1, 0, 2147483647};
    int8_t i8[4] = {-128, -1, 0, 127};
    uint8_t u8[3] = {0, 128, 255};
    double f64[2] = {3.25, -1e300};
    int64_t i64[1] = {-5};
    int16_t i16[2] = {-300, 300};
    uint8_t bl[2] = {1, 0};
    float scalar = 42.0f;
    struct {
        const char *name;
        lmb_dtype dt;
        int ndim;
        int64_t shape[2];
        const void *data;
        size_t nbytes;
    } t[] = {
        {"a.f32", LMB_F32, 2, {2, 3}, f32, sizeof f32},     {"b.f16", LMB_F16, 1, {5}, f16, sizeof f16},
        {"c.bf16", LMB_BF16, 2, {2, 2}, bf16, sizeof bf16}, {"d.i32", LMB_I32, 1, {3}, i32, sizeof i32},
        {"e.i8", LMB_I8, 2, {2, 2}, i8, sizeof i8},         {"f.u8", LMB_U8, 1, {3}, u8, sizeof u8},
        {"g.f64", LMB_F64, 1, {2}, f64, sizeof f64},        {"h.i64", LMB_I64, 1, {1}, i64, sizeof i64},
        {"i.i16", LMB_I16, 1, {2}, i16, sizeof i16},        {"j.bool", LMB_BOOL, 1, {2}, bl, sizeof bl},
        {"k.scalar", LMB_F32, 0, {0}, &scalar, 4},          {"l.empty", LMB_F32, 2, {0, 4}, NULL, 0},
    };
    int n = (int)(sizeof t / sizeof t[0]);
    lmb_error err;
    lmb_st_writer *w = lmb_st_writer_new();
    cr_assert(w);
    /* insertion order deliberately not alphabetical for the first two */
    int order[] = {1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (int k = 0; k < n; k++) {
        int i = order[k];
        cr_assert_eq(lmb_st_writer_add(w, t[i].name, t[i].dt, t[i].ndim, t[i].shape, t[i].data, &err), 0, "%s",
                     err.msg);
    }
    cr_assert_eq(lmb_st_writer_set_metadata(w, "format", "pt", &err), 0);
    cr_assert_eq(lmb_st_writer_set_metadata(w, "note", "first", &err), 0);
    cr_assert_eq(lmb_st_writer_set_metadata(w, "note", "héllo \"quoted\"", &err), 0);
    char path[4096];
    lmb_path_join(path, sizeof path, tmp, "rt.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, path, &err), 0, "%s", err.msg);
    lmb_st_writer_free(w);

    /* header padded with spaces so the data section starts 8-aligned */
    lmb_mapped_file raw;
    cr_assert_eq(lmb_file_map(path, &raw, &err), 0);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw.data[i];
    cr_assert_eq(hl % 8, 0);
    cr_assert_eq(raw.data[8], '{');
    size_t last = 8 + hl - 1;
    while (raw.data[last] == ' ') last--;
    cr_assert_eq(raw.data[last], '}');
    lmb_file_unmap(&raw);

    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_file(path, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_count(st), n);
    for (int i = 0; i < n; i++) {
        const lmb_tensor *x = lmb_st_find(st, t[i].name);
        cr_assert(x, "missing %s", t[i].name);
        cr_assert_str_eq(x->name, t[i].name);
        cr_assert_eq(x->dtype, t[i].dt);
        cr_assert_eq(x->ndim, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++) cr_assert_eq(x->shape[d], t[i].shape[d]);
        cr_assert_eq(x->nbytes, t[i].nbytes);
        if (t[i].nbytes) cr_assert_eq(memcmp(x->data, t[i].data, t[i].nbytes), 0, "bytes of %s", t[i].name);
    }
    /* lmb_st_at follows the file layout, which is insertion order */
    cr_assert_str_eq(lmb_st_at(st, 0)->name, "b.f16");
    cr_assert_str_eq(lmb_st_at(st, 1)->name, "a.f32");
    cr_assert_null(lmb_st_at(st, n));
    cr_assert_null(lmb_st_find(st, "nope"));
    cr_assert_eq(lmb_st_find_index(st, "nope"), -1);
    cr_assert_str_eq(lmb_st_at(st, lmb_st_find_index(st, "c.bf16"))->name, "c.bf16");
    cr_assert_str_eq(lmb_st_metadata(st, "format"), "pt");
    cr_assert_str_eq(lmb_st_metadata(st, "note"), "héllo \"quoted\"");
    cr_assert_null(lmb_st_metadata(st, "absent"));
    cr_assert_str_eq(lmb_st_file_of(st, 0), path);
    lmb_st_close(st);
}

Test(safetensors, empty_writer_round_trips) {
    lmb_error err;
    lmb_st_writer *w = lmb_st_writer_new();
    char path[4096];
    lmb_path_join(path, sizeof path, tmp, "empty.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, path, &err), 0, "%s", err.msg);
    lmb_st_writer_free(w);
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_file(path, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_count(st), 0);
    cr_assert_null(lmb_st_metadata(st, "format"));
    lmb_st_close(st);
}

Test(safetensors, writer_rejects_bad_input) {
    lmb_error err;
    lmb_st_writer *w = lmb_st_writer_new();
    float x[2] = {0};
    int64_t s2[] = {2}, neg[] = {-1};
    cr_assert_eq(lmb_st_writer_add(w, "x", LMB_F32, 1, s2, x, &err), 0);
    cr_assert_neq(lmb_st_writer_add(w, "x", LMB_F32, 1, s2, x, &err), 0);
    cr_assert(strstr(err.msg, "added twice"), "%s", err.msg);
    cr_assert_neq(lmb_st_writer_add(w, "y", LMB_F32, 1, neg, x, &err), 0);
    cr_assert(strstr(err.msg, "negative"), "%s", err.msg);
    cr_assert_neq(lmb_st_writer_add(w, "z", LMB_DTYPE_INVALID, 1, s2, x, &err), 0);
    cr_assert_neq(lmb_st_writer_add(w, "__metadata__", LMB_F32, 1, s2, x, &err), 0);
    cr_assert_neq(lmb_st_writer_add(w, "n", LMB_F32, 1, s2, NULL, &err), 0);
    lmb_st_writer_free(w);
}

static void same_tensors(const lmb_safetensors *a, const lmb_safetensors *b) {
    cr_assert_eq(lmb_st_count(a), lmb_st_count(b));
    for (int i = 0; i < lmb_st_count(a); i++) {
        const lmb_tensor *x = lmb_st_at(a, i), *y = lmb_st_find(b, x->name);
        cr_assert(y, "missing %s", x->name);
        cr_assert_eq(x->dtype, y->dtype);
        cr_assert_eq(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++) cr_assert_eq(x->shape[d], y->shape[d]);
        cr_assert_eq(x->nbytes, y->nbytes);
        cr_assert_eq(memcmp(x->data, y->data, x->nbytes), 0, "bytes of %s", x->name);
    }
}

Test(safetensors, sharded_fixture_round_trips_through_index) {
    lmb_error err;
    char one[4096], three[4096];
    lmb_path_join(one, sizeof one, tmp, "one", NULL);
    lmb_path_join(three, sizeof three, tmp, "three", NULL);
    cr_assert_eq(mkdir(one, 0755) | mkdir(three, 0755), 0);
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_QWEN2);
    s.dtype = LMB_BF16;
    cr_assert_eq(lmb_test_make_model(one, &s, &err), 0, "%s", err.msg);
    s.shards = 3;
    cr_assert_eq(lmb_test_make_model(three, &s, &err), 0, "%s", err.msg);
    char p[4096];
    lmb_path_join(p, sizeof p, three, "model-00003-of-00003.safetensors", NULL);
    cr_assert(lmb_file_exists(p));
    lmb_safetensors *a, *b;
    cr_assert_eq(lmb_st_open_dir(one, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_open_dir(three, &b, &err), 0, "%s", err.msg);
    same_tensors(a, b);
    /* the shards really are different files */
    cr_assert_str_neq(lmb_st_file_of(b, 0), lmb_st_file_of(b, lmb_st_count(b) - 1));
    cr_assert_str_eq(lmb_st_metadata(b, "format"), "pt");
    lmb_st_close(a);
    lmb_st_close(b);
}

Test(safetensors, folder_without_index_reads_every_file) {
    lmb_error err;
    float x[2] = {1, 2}, y[3] = {3, 4, 5};
    int64_t s2[] = {2}, s3[] = {3};
    char p[4096];
    lmb_st_writer *w = lmb_st_writer_new();
    lmb_st_writer_add(w, "x", LMB_F32, 1, s2, x, &err);
    lmb_path_join(p, sizeof p, tmp, "part-b.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, p, &err), 0);
    lmb_st_writer_free(w);
    w = lmb_st_writer_new();
    lmb_st_writer_add(w, "y", LMB_F32, 1, s3, y, &err);
    lmb_path_join(p, sizeof p, tmp, "part-a.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, p, &err), 0);
    lmb_st_writer_free(w);
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_dir(tmp, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_count(st), 2);
    cr_assert_eq(((const float *)lmb_st_find(st, "x")->data)[1], 2.0f);
    cr_assert_eq(((const float *)lmb_st_find(st, "y")->data)[2], 5.0f);
    lmb_st_close(st);

    /* the same name in two files is an error naming both */
    w = lmb_st_writer_new();
    lmb_st_writer_add(w, "x", LMB_F32, 1, s2, x, &err);
    lmb_path_join(p, sizeof p, tmp, "part-c.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, p, &err), 0);
    lmb_st_writer_free(w);
    cr_assert_neq(lmb_st_open_dir(tmp, &st, &err), 0);
    cr_assert(strstr(err.msg, "\"x\"") && strstr(err.msg, "part-b") && strstr(err.msg, "part-c"), "%s", err.msg);
}

Test(safetensors, empty_folder_is_an_error) {
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_neq(lmb_st_open_dir(tmp, &st, &err), 0);
    cr_assert(strstr(err.msg, tmp) && strstr(err.msg, "model.safetensors"), "%s", err.msg);
}

/* ---- crafted bad files ----------------------------------------------------------------------------------- */

Test(safetensors, empty_file) {
    char path[4096];
    cr_assert_eq(lmb_test_write_file(tmp, "empty.safetensors", "", 0, path, sizeof path), 0);
    expect_fail_file(path, "0 bytes", "header length");
}

Test(safetensors, shorter_than_8_bytes) {
    char path[4096];
    cr_assert_eq(lmb_test_write_file(tmp, "short.safetensors", "\x02\0\0\0\0", 5, path, sizeof path), 0);
    expect_fail_file(path, "5 bytes", "header length");
}

Test(safetensors, header_length_beyond_file) {
    char path[4096];
    unsigned char b[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    cr_assert_eq(lmb_test_write_file(tmp, "long.safetensors", b, 10, path, sizeof path), 0);
    expect_fail_file(path, "header length 100", "file size (10 bytes");
}

Test(safetensors, header_length_absurd) {
    char path[4096];
    unsigned char b[16] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'}; /* 2^60 */
    cr_assert_eq(lmb_test_write_file(tmp, "absurd.safetensors", b, 10, path, sizeof path), 0);
    expect_fail_file(path, "header length 1152921504606846976", NULL);
    unsigned char c[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    cr_assert_eq(lmb_test_write_file(tmp, "absurd2.safetensors", c, 10, path, sizeof path), 0);
    expect_fail_file(path, "header length 18446744073709551615", NULL);
}

Test(safetensors, header_not_json) { expect_bad_header("{\"a\": [1, 2", 0, "header is not valid JSON", NULL); }

Test(safetensors, header_not_an_object) { expect_bad_header("[1, 2]", 0, "header must be a JSON object", "an array"); }

Test(safetensors, duplicate_key_rejected) {
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                      2, "not valid JSON", "duplicate");
}

Test(safetensors, entry_not_an_object) { expect_bad_header("{\"w\": 3}", 0, "tensor \"w\"", "must be an object"); }

Test(safetensors, missing_dtype) {
    expect_bad_header("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"", "\"dtype\" is missing");
}

Test(safetensors, missing_shape) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor \"w\"", "\"shape\" is missing");
}

Test(safetensors, missing_data_offsets) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\"", "\"data_offsets\" is missing");
}

Test(safetensors, unknown_dtype) {
    expect_bad_header("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor \"w\"",
                      "unsupported dtype \"F8_E4M3\"");
}

Test(safetensors, dtype_not_a_string) {
    expect_bad_header("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                      "\"dtype\" must be a string");
}

Test(safetensors, negative_shape) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                      "shape[1] must be a non-negative integer, got -3");
}

Test(safetensors, fractional_shape) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                      "shape[0] must be a non-negative integer");
}

Test(safetensors, shape_overflow) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                      "tensor \"w\"", "overflows");
}

Test(safetensors, too_many_dims) {
    expect_bad_header("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                      "tensor \"w\"", "9 dimensions");
}

Test(safetensors, data_offsets_out_of_bounds) {
    expect_bad_header("{\"model.norm.weight\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[10,20]}}", 16,
                      "tensor \"model.norm.weight\": data_offsets [10, 20) exceed the data section (16 bytes)", NULL);
}

Test(safetensors, data_offsets_negative) {
    expect_bad_header("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 4, "tensor \"w\"",
                      "\"data_offsets\" must be two non-negative integers");
}

Test(safetensors, data_offsets_wrong_length) {
    expect_bad_header("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "tensor \"w\"",
                      "\"data_offsets\"");
}

Test(safetensors, data_offsets_begin_after_end) {
    expect_bad_header("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}", 16, "tensor \"w\"",
                      "data_offsets [8, 4): begin is after end");
}

Test(safetensors, size_not_numel_times_dtype_size) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "tensor \"w\"",
                      "hold 8 bytes but shape [3] of F32 needs 12");
}

Test(safetensors, overlapping_tensors) {
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}",
                      16, "\"a\" data_offsets [0, 8) and \"b\" data_offsets [4, 12) overlap", NULL);
}

Test(safetensors, metadata_value_not_a_string) {
    expect_bad_header("{\"__metadata__\":{\"format\":1}}", 0, "\"__metadata__\"", "\"format\" must be a string");
}

Test(safetensors, gaps_and_empty_tensors_are_fine) {
    char path[4096];
    write_st("ok.safetensors",
             "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[10,10]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
             16, path, sizeof path);
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_eq(lmb_st_open_file(path, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_count(st), 3);
    cr_assert_str_eq(lmb_st_at(st, 0)->name, "b");
    lmb_st_close(st);
}

/* Every prefix of a valid file must be rejected cleanly (run under ASan this also proves no over-read). */
Test(safetensors, every_truncation_fails_cleanly) {
    lmb_error err;
    float x[3] = {1, 2, 3};
    int64_t s3[] = {3};
    char path[4096], cut[4096];
    lmb_path_join(path, sizeof path, tmp, "full.safetensors", NULL);
    lmb_st_writer *w = lmb_st_writer_new();
    lmb_st_writer_add(w, "x", LMB_F32, 1, s3, x, &err);
    lmb_st_writer_add(w, "y", LMB_F32, 1, s3, x, &err);
    cr_assert_eq(lmb_st_writer_save(w, path, &err), 0);
    lmb_st_writer_free(w);
    char *all;
    size_t n;
    cr_assert_eq(lmb_file_read_all(path, &all, &n, &err), 0);
    for (size_t len = 0; len < n; len++) {
        cr_assert_eq(lmb_test_write_file(tmp, "cut.safetensors", all, len, cut, sizeof cut), 0);
        lmb_safetensors *st = NULL;
        cr_assert_neq(lmb_st_open_file(cut, &st, &err), 0, "a %zu-byte prefix of %zu opened", len, n);
        cr_assert(strstr(err.msg, "cut.safetensors"), "%s", err.msg);
    }
    /* and flipping any single header byte never crashes (it may or may not still parse) */
    for (size_t i = 0; i < n - 24; i++) {
        char *c = malloc(n);
        memcpy(c, all, n);
        c[i] ^= (char)0x5a;
        lmb_test_write_file(tmp, "flip.safetensors", c, n, cut, sizeof cut);
        free(c);
        lmb_safetensors *st = NULL;
        if (lmb_st_open_file(cut, &st, &err) == 0) lmb_st_close(st);
    }
    free(all);
}

/* ---- sharded index errors -------------------------------------------------------------------------------- */

static void make_two_shards(void) {
    lmb_error err;
    float x[2] = {1, 2};
    int64_t s2[] = {2};
    const char *files[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    const char *names[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        char p[4096];
        lmb_path_join(p, sizeof p, tmp, files[i], NULL);
        lmb_st_writer *w = lmb_st_writer_new();
        lmb_st_writer_add(w, names[i], LMB_F32, 1, s2, x, &err);
        cr_assert_eq(lmb_st_writer_save(w, p, &err), 0);
        lmb_st_writer_free(w);
    }
}

static void expect_index_fail(const char *index_json, const char *frag1, const char *frag2) {
    make_two_shards();
    char p[4096];
    cr_assert_eq(lmb_test_write_file(tmp, "model.safetensors.index.json", index_json, strlen(index_json), p, sizeof p),
                 0);
    lmb_safetensors *st = NULL;
    lmb_error err = {{0}};
    cr_assert_neq(lmb_st_open_dir(tmp, &st, &err), 0);
    cr_assert(strstr(err.msg, "model.safetensors.index.json"), "should name the index: %s", err.msg);
    cr_assert(strstr(err.msg, frag1), "should mention '%s': %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2), "should mention '%s': %s", frag2, err.msg);
}

Test(safetensors, index_ok) {
    make_two_shards();
    const char *j = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                    "\"b\":\"model-00002-of-00002.safetensors\"}}";
    lmb_test_write_file(tmp, "model.safetensors.index.json", j, strlen(j), NULL, 0);
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_eq(lmb_st_open_dir(tmp, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_count(st), 2);
    lmb_st_close(st);
}

Test(safetensors, index_names_missing_shard) {
    expect_index_fail("{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"gone.safetensors\"}}",
                      "\"gone.safetensors\"", "does not exist");
}

Test(safetensors, index_tensor_absent_from_shard) {
    expect_index_fail("{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}",
                      "tensor \"c\" is not in", "model-00002-of-00002.safetensors");
}

Test(safetensors, index_tensor_in_other_shard) {
    expect_index_fail("{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\","
                      "\"b\":\"model-00001-of-00002.safetensors\"}}",
                      "tensor \"a\" is listed in model-00002-of-00002.safetensors", "found in");
}

Test(safetensors, index_not_json) { expect_index_fail("{\"weight_map\": ", "not valid JSON", NULL); }

Test(safetensors, index_without_weight_map) {
    expect_index_fail("{\"metadata\":{}}", "\"weight_map\" is missing", NULL);
}

Test(safetensors, index_shard_outside_folder) {
    expect_index_fail("{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "plain file name", NULL);
}

Test(safetensors, bad_shard_is_named) {
    make_two_shards();
    char p[4096];
    lmb_test_write_file(tmp, "model-00002-of-00002.safetensors", "\x01", 1, p, sizeof p);
    const char *j = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                    "\"b\":\"model-00002-of-00002.safetensors\"}}";
    lmb_test_write_file(tmp, "model.safetensors.index.json", j, strlen(j), NULL, 0);
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_neq(lmb_st_open_dir(tmp, &st, &err), 0);
    cr_assert(strstr(err.msg, "model-00002-of-00002.safetensors: file is 1 bytes"), "%s", err.msg);
}

/* ---- ../shared ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int n_tensors;
} shared_models[] = {
    {"pycoder-22M", 56},    {"stories260K", 47},  {"tiny-internlm2", 24},
    {"tiny-llama-gqa", 30}, {"tiny-mistral", 30}, {"tiny-qwen2", 38},
};

Test(safetensors, shared_models_open) {
    char dir[4096];
    LMB_TEST_NEED_SHARED(dir, "models");
    for (size_t i = 0; i < sizeof shared_models / sizeof shared_models[0]; i++) {
        lmb_test_shared_path(dir, sizeof dir, "models");
        char d[4096];
        lmb_path_join(d, sizeof d, dir, shared_models[i].name, NULL);
        lmb_safetensors *st;
        lmb_error err;
        cr_assert_eq(lmb_st_open_dir(d, &st, &err), 0, "%s", err.msg);
        cr_assert_eq(lmb_st_count(st), shared_models[i].n_tensors, "%s", shared_models[i].name);
        cr_assert_str_eq(lmb_st_metadata(st, "format"), "pt");
        lmb_st_close(st);
    }
}

static const lmb_tensor *shared_tensor(lmb_safetensors **st, const char *model, const char *name) {
    char dir[4096], rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    if (!lmb_test_shared_path(dir, sizeof dir, rel)) return NULL;
    lmb_error err;
    cr_assert_eq(lmb_st_open_dir(dir, st, &err), 0, "%s", err.msg);
    const lmb_tensor *t = lmb_st_find(*st, name);
    cr_assert(t, "%s: no %s", model, name);
    return t;
}

Test(safetensors, shared_values_match_python_f32) {
    char d[4096];
    LMB_TEST_NEED_SHARED(d, "models/stories260K");
    lmb_safetensors *st;
    const lmb_tensor *e = shared_tensor(&st, "stories260K", "model.embed_tokens.weight");
    cr_assert_eq(e->dtype, LMB_F32);
    cr_assert_eq(e->shape[0], 512);
    cr_assert_eq(e->shape[1], 64);
    const float *f = e->data;
    const float row0[4] = {-0.29474878311157227f, 0.5618956089019775f, 0.1754225343465805f, 0.34057360887527466f};
    const float row511[4] = {-0.0016551478765904903f, -0.23400729894638062f, -0.16485778987407684f,
                             -0.424032598733902f};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(f[i], row0[i]);
        cr_assert_eq(f[511 * 64 + 60 + i], row511[i]);
    }
    const float *n = lmb_st_find(st, "model.norm.weight")->data;
    const float norm[4] = {2.4583089351654053f, 1.3673226833343506f, 1.7504382133483887f, 1.1078318357467651f};
    for (int i = 0; i < 4; i++) cr_assert_eq(n[i], norm[i]);
    lmb_st_close(st);
}

Test(safetensors, shared_values_match_python_f16_bf16) {
    char d[4096];
    LMB_TEST_NEED_SHARED(d, "models/tiny-qwen2");
    lmb_safetensors *st;
    const lmb_tensor *b = shared_tensor(&st, "tiny-qwen2", "model.layers.0.self_attn.q_proj.bias");
    cr_assert_eq(b->dtype, LMB_F16);
    const float qb[4] = {0.01491546630859375f, 0.140380859375f, -0.11407470703125f, 0.02032470703125f};
    float got[4];
    lmb_to_f32(got, b->data, LMB_F16, 4);
    for (int i = 0; i < 4; i++) cr_assert_eq(got[i], qb[i]);
    lmb_st_close(st);

    LMB_TEST_NEED_SHARED(d, "models/pycoder-22M");
    const lmb_tensor *w = shared_tensor(&st, "pycoder-22M", "model.layers.5.mlp.down_proj.weight");
    cr_assert_eq(w->dtype, LMB_BF16);
    const uint16_t bits[4] = {0x3a90, 0xbcbf, 0xbcdb, 0x38cb};
    const float vals[4] = {0.0010986328125f, -0.0233154296875f, -0.0267333984375f, 9.679794311523438e-05f};
    const uint16_t *h = (const uint16_t *)w->data + 383 * 1024 + 1020;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h[i], bits[i]);
        cr_assert_eq(lmb_bf16_to_f32(h[i]), vals[i]);
    }
    lmb_st_close(st);
}

/* test_error.c — lmb_error formatting and context prefixes. */
#include <criterion/criterion.h>
#include <string.h>

#include "../engine/error.h"

Test(error, fail_sets_message_and_returns_minus_one) {
    lmb_error err;
    cr_assert_eq(lmb_fail(&err, "field \"%s\" must be %d", "x", 3), -1);
    cr_assert_str_eq(err.msg, "field \"x\" must be 3");
}

Test(error, prefix_adds_context) {
    lmb_error err;
    lmb_fail(&err, "bad dtype");
    lmb_error_prefix(&err, "%s:%d", "model.safetensors", 7);
    cr_assert_str_eq(err.msg, "model.safetensors:7: bad dtype");
}

Test(error, null_error_is_allowed) {
    cr_assert_eq(lmb_fail(NULL, "ignored"), -1);
}

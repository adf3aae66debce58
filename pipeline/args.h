/* args.h — the small command-line parser every subcommand shares.
 *
 * Options are declared in a table ({"--max-tokens", LMB_ARG_INT, &val, "help"}); `--flag value` and
 * `--flag=value` are both accepted; anything not starting with "--" is a positional.  Bad input produces a
 * message naming the option and what was expected, never an exit.
 */
#ifndef LMB_ARGS_H
#define LMB_ARGS_H

#include <stdbool.h>

#include "../engine/error.h"

typedef enum { LMB_ARG_FLAG, LMB_ARG_INT, LMB_ARG_DOUBLE, LMB_ARG_STRING, LMB_ARG_STRING_LIST } lmb_arg_kind;

typedef struct lmb_arg_list {
    const char **items;
    int n;
} lmb_arg_list;

typedef struct lmb_arg {
    const char *name; /* "--max-tokens" */
    lmb_arg_kind kind;
    void *dest; /* bool*, long*, double*, const char**, lmb_arg_list* */
    const char *help;
    bool seen; /* set by lmb_args_parse */
} lmb_arg;

/* Parses argv[1..argc) (argv[0] is the subcommand).  Positionals are collected into *pos (caller frees
 * pos->items; also frees any STRING_LIST items arrays via lmb_args_free). */
int lmb_args_parse(int argc, char **argv, lmb_arg *opts, int n_opts, lmb_arg_list *pos, lmb_error *err);
void lmb_args_free(lmb_arg *opts, int n_opts, lmb_arg_list *pos);
void lmb_args_usage(const char *synopsis, const lmb_arg *opts, int n_opts);

#endif

/* args.c — see args.h. */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int list_push(lmb_arg_list *l, const char *s, lmb_error *err) {
    const char **n = realloc(l->items, sizeof *n * (size_t)(l->n + 1));
    if (!n) return lmb_fail(err, "out of memory");
    l->items = n;
    l->items[l->n++] = s;
    return 0;
}

static int set_value(lmb_arg *o, const char *v, lmb_error *err) {
    char *end;
    switch (o->kind) {
    case LMB_ARG_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end) return lmb_fail(err, "option %s expects an integer, got \"%s\"", o->name, v);
        *(long *)o->dest = x;
        return 0;
    }
    case LMB_ARG_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end) return lmb_fail(err, "option %s expects a number, got \"%s\"", o->name, v);
        *(double *)o->dest = x;
        return 0;
    }
    case LMB_ARG_STRING:
        *(const char **)o->dest = v;
        return 0;
    case LMB_ARG_STRING_LIST:
        return list_push((lmb_arg_list *)o->dest, v, err);
    case LMB_ARG_FLAG:
        break;
    }
    return lmb_fail(err, "option %s takes no value", o->name);
}

int lmb_args_parse(int argc, char **argv, lmb_arg *opts, int n_opts, lmb_arg_list *pos, lmb_error *err) {
    pos->items = NULL;
    pos->n = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || strncmp(a, "--", 2) != 0 || strcmp(a, "-") == 0) {
            if (list_push(pos, a, err)) return -1;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        lmb_arg *o = NULL;
        for (int j = 0; j < n_opts; j++)
            if (strlen(opts[j].name) == nlen && strncmp(opts[j].name, a, nlen) == 0) o = &opts[j];
        if (!o) return lmb_fail(err, "unknown option %.*s (see --help)", (int)nlen, a);
        o->seen = true;
        if (o->kind == LMB_ARG_FLAG) {
            if (eq) return lmb_fail(err, "option %s takes no value", o->name);
            *(bool *)o->dest = true;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) return lmb_fail(err, "option %s needs a value", o->name);
            v = argv[++i];
        }
        if (set_value(o, v, err)) return -1;
    }
    return 0;
}

void lmb_args_free(lmb_arg *opts, int n_opts, lmb_arg_list *pos) {
    for (int j = 0; j < n_opts; j++)
        if (opts[j].kind == LMB_ARG_STRING_LIST) {
            lmb_arg_list *l = opts[j].dest;
            free(l->items);
            l->items = NULL;
            l->n = 0;
        }
    if (pos) {
        free(pos->items);
        pos->items = NULL;
        pos->n = 0;
    }
}

void lmb_args_usage(const char *synopsis, const lmb_arg *opts, int n_opts) {
    fprintf(stderr, "usage: %s\n", synopsis);
    for (int j = 0; j < n_opts; j++) {
        const char *v = "";
        switch (opts[j].kind) {
        case LMB_ARG_INT: v = " N"; break;
        case LMB_ARG_DOUBLE: v = " X"; break;
        case LMB_ARG_STRING: v = " S"; break;
        case LMB_ARG_STRING_LIST: v = " S (repeatable)"; break;
        case LMB_ARG_FLAG: break;
        }
        fprintf(stderr, "  %s%s\n      %s\n", opts[j].name, v, opts[j].help ? opts[j].help : "");
    }
}

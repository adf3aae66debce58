/* progress.c — see progress.h. */
#include "progress.h"

#include <time.h>
#include <unistd.h>

double lmb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void lmb_progress_init_to(lmb_progress *p, long total, double interval, bool quiet, FILE *out, bool tty) {
    *p = (lmb_progress){.total = total, .interval = interval > 0 ? interval : 10, .quiet = quiet, .out = out, .tty = tty};
    p->t0 = p->last = lmb_now();
}

void lmb_progress_init(lmb_progress *p, long total, double interval, bool quiet) {
    lmb_progress_init_to(p, total, interval, quiet, stderr, isatty(2));
}

static void draw(lmb_progress *p, bool final) {
    double el = lmb_now() - p->t0;
    double tps = el > 0 ? p->tokens / el : 0;
    long served = p->done - p->skipped;
    double eta = (p->total > 0 && served > 0) ? el / served * (double)(p->total - p->done) : -1;
    if (eta < 0 && p->total > 0 && p->done >= p->total) eta = 0;
    FILE *f = p->out;
    if (p->tty) {
        int width = 30, fill = p->total > 0 ? (int)(width * (double)p->done / p->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        if (p->total > 0) {
            fprintf(f, "\r[%s] %ld/%ld  errors %ld  %.1f tok/s  ETA ", bar, p->done, p->total, p->errors, tps);
            if (eta < 0)
                fprintf(f, "?      ");
            else
                fprintf(f, "%02d:%02d:%02d   ", (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
        } else {
            fprintf(f, "\r%ld done  errors %ld  %.1f tok/s   ", p->done, p->errors, tps);
        }
        if (final) fputc('\n', f);
    } else {
        fprintf(f,
                "{\"progress\":{\"done\":%ld,\"total\":%ld,\"skipped\":%ld,\"errors\":%ld,\"tokens\":%ld,\"elapsed_s\":%.1f,"
                "\"tok_per_s\":%.1f,\"eta_s\":%.1f,\"final\":%s}}\n",
                p->done, p->total, p->skipped, p->errors, p->tokens, el, tps, eta, final ? "true" : "false");
    }
    fflush(f);
}

void lmb_progress_update(lmb_progress *p, long done, long errors, long tokens) {
    p->done = done;
    p->errors = errors;
    p->tokens = tokens;
    if (p->quiet) return;
    double now = lmb_now();
    if (now - p->last >= (p->tty ? 0.2 : p->interval)) {
        p->last = now;
        draw(p, false);
    }
}

void lmb_progress_finish(lmb_progress *p) {
    if (!p->quiet) draw(p, true);
}

/* test_scheduler.c — continuous batching decisions on fake sequences: budgets, admission order, preemption. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../engine/scheduler.h"

static lmb_seq *mkseq(long arrival, int n_tokens) {
    lmb_seq *s = calloc(1, sizeof *s);
    s->id = (uint64_t)arrival;
    s->arrival = arrival;
    s->n_tokens = s->n_prompt = n_tokens;
    return s;
}

static void advance(lmb_sched_item *items, int n) {
    for (int i = 0; i < n; i++) {
        items[i].seq->n_computed += items[i].n_new;
        if (items[i].sample) items[i].seq->n_tokens++;
    }
}

Test(scheduler, prefill_chunks_under_the_token_budget) {
    lmb_kv_blocks kv;
    lmb_kv_blocks_init(&kv, 100, 4, NULL);
    lmb_scheduler s;
    lmb_scheduler_init(&s);
    lmb_seq *a = mkseq(0, 10), *b = mkseq(1, 3);
    lmb_scheduler_add(&s, a, NULL);
    lmb_scheduler_add(&s, b, NULL);
    lmb_sched_item items[8];
    int n = lmb_scheduler_plan(&s, &kv, 8, 8, items, NULL);
    cr_assert_eq(n, 1);
    cr_assert(items[0].seq == a && items[0].n_new == 8 && !items[0].sample);
    advance(items, n);
    n = lmb_scheduler_plan(&s, &kv, 8, 8, items, NULL);
    cr_assert_eq(n, 2);
    cr_assert(items[0].seq == a && items[0].n_new == 2 && items[0].sample);
    cr_assert(items[1].seq == b && items[1].n_new == 3 && items[1].sample);
    advance(items, n);
    n = lmb_scheduler_plan(&s, &kv, 8, 8, items, NULL); /* two decodes */
    cr_assert(n == 2 && items[0].n_new == 1 && items[1].n_new == 1);
    lmb_block_table_free(&a->blocks), lmb_block_table_free(&b->blocks);
    free(a), free(b);
    lmb_scheduler_free(&s);
    lmb_kv_blocks_free(&kv);
}

Test(scheduler, max_seqs_caps_admission) {
    lmb_kv_blocks kv;
    lmb_kv_blocks_init(&kv, 100, 4, NULL);
    lmb_scheduler s;
    lmb_scheduler_init(&s);
    lmb_seq *q[5];
    for (int i = 0; i < 5; i++) lmb_scheduler_add(&s, q[i] = mkseq(i, 2), NULL);
    lmb_sched_item items[8];
    cr_assert_eq(lmb_scheduler_plan(&s, &kv, 100, 3, items, NULL), 3);
    cr_assert_eq(s.n_waiting, 2);
    for (int i = 0; i < 5; i++) lmb_block_table_free(&q[i]->blocks), free(q[i]);
    lmb_scheduler_free(&s);
    lmb_kv_blocks_free(&kv);
}

Test(scheduler, out_of_blocks_preempts_the_youngest) {
    lmb_kv_blocks kv;
    lmb_kv_blocks_init(&kv, 4, 4, NULL); /* 16 tokens in all */
    lmb_scheduler s;
    lmb_scheduler_init(&s);
    lmb_seq *a = mkseq(0, 8), *b = mkseq(1, 8);
    lmb_scheduler_add(&s, a, NULL);
    lmb_scheduler_add(&s, b, NULL);
    lmb_sched_item items[8];
    int n = lmb_scheduler_plan(&s, &kv, 64, 8, items, NULL);
    cr_assert_eq(n, 2);
    advance(items, n); /* both have 9 tokens now: each needs a third block, only 0 free */
    cr_assert_eq(kv.n_free, 0);
    n = lmb_scheduler_plan(&s, &kv, 64, 8, items, NULL);
    cr_assert_eq(s.preemptions, 1);
    cr_assert_eq(n, 1);
    cr_assert(items[0].seq == a && items[0].n_new == 1);
    cr_assert(s.n_waiting == 1 && s.waiting[0] == b && b->n_computed == 0 && b->blocks.n == 0);
    lmb_block_table_free(&a->blocks), lmb_block_table_free(&b->blocks);
    free(a), free(b);
    lmb_scheduler_free(&s);
    lmb_kv_blocks_free(&kv);
}

Test(scheduler, blocks_are_conserved) {
    lmb_kv_blocks kv;
    lmb_kv_blocks_init(&kv, 6, 2, NULL);
    lmb_scheduler s;
    lmb_scheduler_init(&s);
    lmb_seq *q[4];
    for (int i = 0; i < 4; i++) lmb_scheduler_add(&s, q[i] = mkseq(i, 3), NULL);
    lmb_sched_item items[8];
    for (int step = 0; step < 30; step++) {
        int n = lmb_scheduler_plan(&s, &kv, 16, 8, items, NULL);
        cr_assert_geq(n, 1, "step %d scheduled nothing", step);
        advance(items, n);
        int held = 0;
        for (int i = 0; i < 4; i++) held += q[i]->blocks.n;
        cr_assert_eq(held + kv.n_free, 6);
        /* finish any sequence that reached 9 tokens */
        for (int i = 0; i < 4; i++)
            if (q[i]->n_tokens >= 9 && q[i]->n_computed > 0) {
                lmb_kv_blocks_release(&kv, &q[i]->blocks);
                lmb_scheduler_remove(&s, q[i]);
                q[i]->n_computed = -1000; /* never again */
            }
        if (s.n_running == 0 && s.n_waiting == 0) break;
    }
    cr_assert_eq(s.n_running + s.n_waiting, 0);
    for (int i = 0; i < 4; i++) lmb_block_table_free(&q[i]->blocks), free(q[i]);
    lmb_scheduler_free(&s);
    lmb_kv_blocks_free(&kv);
}

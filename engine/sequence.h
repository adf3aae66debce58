/* sequence.h — one request as the engine tracks it (internal to engine/).
 *
 * tokens = prompt followed by the generated tokens; the first n_computed of them have their K/V in the
 * cache (blocks).  A preempted sequence drops its blocks and n_computed returns to 0: it is recomputed
 * from its tokens, and since sampling draws depend only on (seed, token index) it continues identically.
 */
#ifndef LMB_SEQUENCE_H
#define LMB_SEQUENCE_H

#include <stdint.h>

#include "engine.h"
#include "kv_cache.h"

typedef struct lmb_seq {
    uint64_t id;
    long arrival; /* submission order: smaller = older */
    int32_t *tokens;
    int n_tokens, cap_tokens;
    int n_prompt;
    int n_computed;
    lmb_block_table blocks;
    lmb_sampling sampling;
    bool abort_requested;
    lmb_finish finish;
    char message[256];
} lmb_seq;

static inline int lmb_seq_generated(const lmb_seq *s) { return s->n_tokens - s->n_prompt; }

#endif

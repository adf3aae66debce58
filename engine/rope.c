/* rope.c — see rope.h.  The llama3 branch mirrors transformers' _compute_llama3_parameters. */
#include "rope.h"

#include <math.h>

void lmb_rope_inv_freq(const lmb_model_config *cfg, double *inv_freq) {
    int hd = cfg->head_dim;
    const lmb_rope *r = &cfg->rope;
    for (int i = 0; i < hd / 2; i++) {
        double f = 1.0 / pow(r->theta, (double)(2 * i) / hd);
        if (r->type == LMB_ROPE_LINEAR) {
            f /= r->factor;
        } else if (r->type == LMB_ROPE_LLAMA3) {
            double old_len = r->original_max_pos;
            double low_wavelen = old_len / r->low_freq_factor;
            double high_wavelen = old_len / r->high_freq_factor;
            double wavelen = 2 * M_PI / f;
            if (wavelen > low_wavelen) {
                f = f / r->factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (old_len / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
                f = (1 - smooth) * f / r->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

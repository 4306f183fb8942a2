/* The CPU hot loop of a batched word2vec step over candidate output rows, fused.
 *
 * An example is a bag of input rows (a CBOW window, or one word for skip-gram) and K
 * candidate output rows (target and noise words, or the inner nodes of a Huffman path),
 * some masked out (padding, accidental hits). The PyTorch path of train.sgd_step gathers
 * every candidate's output vector into a [B, K, dim] tensor, multiplies, and scatters the
 * steps back with index_add_: ~20 kernels a batch, each a pass over memory. These two
 * functions do the same arithmetic row by row, touching each row where it lies, as
 * word2vec's C loop does. The loss stays in Python (w2v_nce.objectives): forward gives
 * the scores, the objective turns them into a step on every score, backward applies it.
 *
 * Called through ctypes (w2v_nce/fused.py), which releases the GIL: Hogwild threads run
 * these at once on the same tables, as word2vec's threads do.
 *
 * Layout: tables are row-major float32 [rows, d]; ids are int64. Example b's context is
 * context[offsets[b] .. offsets[b+1]), its candidates cand[b*k .. b*k+k); mask (uint8,
 * NULL for all) is 0 for a candidate that is neither scored nor updated.
 */
#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
/* four independent 16-lane sums: one chain of FMAs would wait on its latency at every step */
static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int64_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= d; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= d; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}
#elif defined(__AVX2__) && defined(__FMA__)
static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int64_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    float r = _mm_cvtss_f32(q);
    for (; i < d; i++) r += a[i] * b[i];
    return r;
}
#else
static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int64_t d) {
    /* eight partial sums, so that the compiler can vectorise without -ffast-math */
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}
#endif

/* log(1 + t) for t in [0, 1] as 2 atanh(t / (2 + t)), five terms: within 1e-6 of log1pf, ~4x
 * cheaper (the loss is summed for every candidate, and log1pf was a quarter of the step). */
static inline float log1p_unit(float t) {
    float u = t / (2.0f + t), u2 = u * u;
    return 2.0f * u * (1.0f + u2 * (1.0f / 3 + u2 * (1.0f / 5 + u2 * (1.0f / 7 + u2 * (1.0f / 9)))));
}

/* e^x for x <= 0 as 2^n 2^f with 2^f's Taylor series to f^7: relative error under 4e-6, a
 * few ns against expf's ~15 (one per candidate, for σ). */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;  /* e^-87 ~ 2e-38, the smallest normal power of two left */
    float t = x * 1.44269504f, n = floorf(t), f = t - n;
    float p = 1.0f + f * (0.693147181f + f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f +
              f * (0.00133335581f + f * (0.000154035304f + f * 0.0000152527338f))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static void axpy(float alpha, const float *x, float *y, int64_t d) {
    for (int64_t i = 0; i < d; i++) y[i] += alpha * x[i];
}

/* h = mean of the input rows context[lo .. hi) */
static void bag_mean(const float *inp, const int64_t *context, int64_t lo, int64_t hi, int64_t d, int64_t ld, float *h) {
    memset(h, 0, (size_t)d * sizeof(float));
    for (int64_t e = lo; e < hi; e++) axpy(1.0f, inp + context[e] * ld, h, d);
    if (hi - lo > 1) {
        float inv = 1.0f / (float)(hi - lo);
        for (int64_t i = 0; i < d; i++) h[i] *= inv;
    }
}

/* h[b] = mean of the context rows of example b; scores[b, j] = h[b] . out[cand[b, j]] (+ bias),
 * 0 where masked. */
void bag_forward(const float *inp, const float *out, const float *bias, const int64_t *context,
                 const int64_t *offsets, const int64_t *cand, const uint8_t *mask, int64_t n, int64_t k,
                 int64_t d, int64_t ld, float *h, float *scores) {
    for (int64_t b = 0; b < n; b++) {
        float *hb = h + b * d;
        bag_mean(inp, context, offsets[b], offsets[b + 1], d, ld, hb);
        for (int64_t j = 0; j < k; j++) {
            if (mask && !mask[b * k + j]) {
                scores[b * k + j] = 0.0f;
                continue;
            }
            int64_t c = cand[b * k + j];
            float s = dot(hb, out + c * ld, d);
            scores[b * k + j] = bias ? s + bias[c] : s;
        }
    }
}

/* Apply `step` [n, k] (-lr x d loss / d score) the way train.sgd_step does:
 *   err[b]       = sum_j step[b, j] out[cand[b, j]]   (output rows as they were: first pass)
 *   out[c_bj]   += step[b, j] f_out[b, j] h[b]         bias[c_bj] += step[b, j] f_out[b, j]
 *   inp[ctx_e]  += f_in[e] err[b(e)]                   (every context word the whole error)
 * over the unmasked candidates. f_out / f_in are the update rule's per-entry factors
 * (w2v_nce.updates), NULL for 1.
 * err is an [n, d] workspace. */
void bag_backward(float *inp, float *out, float *bias, const int64_t *context, const int64_t *offsets,
                  const int64_t *cand, const uint8_t *mask, const float *h, const float *step, const float *f_out,
                  const float *f_in, int64_t n, int64_t k, int64_t d, int64_t ld, float *err) {
    for (int64_t b = 0; b < n; b++) {
        float *eb = err + b * d;
        memset(eb, 0, (size_t)d * sizeof(float));
        for (int64_t j = 0; j < k; j++)
            if (!mask || mask[b * k + j]) axpy(step[b * k + j], out + cand[b * k + j] * ld, eb, d);
    }
    for (int64_t b = 0; b < n; b++) {
        for (int64_t j = 0; j < k; j++) {
            if (mask && !mask[b * k + j]) continue;
            int64_t c = cand[b * k + j];
            float s = f_out ? step[b * k + j] * f_out[b * k + j] : step[b * k + j];
            axpy(s, h + b * d, out + c * ld, d);
            if (bias) bias[c] += s;
        }
    }
    for (int64_t b = 0; b < n; b++) {
        const float *eb = err + b * d;
        for (int64_t e = offsets[b]; e < offsets[b + 1]; e++)
            axpy(f_in ? f_in[e] : 1.0f, eb, inp + context[e] * ld, d);
    }
}

/* splitmix64: the kernel's random stream (alias_sample, window_sgd) */
static inline uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One draw from an alias table: a bucket by Lemire's multiply-shift on 32 random bits, then a
 * 24-bit coin against accept[bucket]. */
static inline int64_t alias_draw(const float *accept, const int64_t *alias, int64_t v, uint64_t *state) {
    uint64_t z = splitmix64(state);
    int64_t bucket = (int64_t)(((z >> 32) * (uint64_t)v) >> 32);
    float coin = (float)(z & 0xFFFFFF) * (1.0f / 16777216.0f);
    return coin < accept[bucket] ? bucket : alias[bucket];
}

/* count draws from an alias table (w2v_nce.sampler: accept [v], alias [v]) into out, from a
 * splitmix64 stream started at seed. A few ns a draw, against ~40 for the tensor version. */
void alias_sample(const float *accept, const int64_t *alias, int64_t v, int64_t count, uint64_t seed,
                  int64_t *out) {
    uint64_t state = seed;
    for (int64_t i = 0; i < count; i++) out[i] = alias_draw(accept, alias, v, &state);
}

/* The initial vectors of n-gram buckets (w2v_nce.subwords.bucket_init): row i of out (rows ld
 * floats apart) is bucket ids[i]'s draws ids[i]*dim + 1 .. ids[i]*dim + dim of splitmix64 started
 * at seed, 24 bits each, as uniform in [-1/dim, 1/dim). */
void bucket_init(float *out, int64_t ld, const int64_t *ids, int64_t n, int64_t dim, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t state = seed + (uint64_t)ids[i] * (uint64_t)dim * 0x9E3779B97F4A7C15ULL;
        float *row = out + i * ld;
        for (int64_t j = 0; j < dim; j++)
            row[j] = ((float)(splitmix64(&state) >> 40) * (1.0f / 8388608.0f) - 1.0f) / (float)dim;
    }
}

/* The logistic losses (negative sampling, NCE, hierarchical softmax): one example's candidates.
 * For bag vector h and every unmasked candidate c = cand[j], in order:
 *   y = h . out[c] (+ bias[c]) - row_offset[c] - const_offset      (NCE: log Z + log k q(c))
 *   g = σ(y) - labels[j]                                            (d loss / d y)
 *   loss += softplus(y) - labels[j] y                               (binary cross-entropy)
 *   err  -= lr g out[c];  out[c] -= lr g h;  bias[c] -= lr g
 * Output rows in [hot_lo, hot_lo + hot_n) are read and written in `hot` instead (a thread's
 * private copy of the hottest rows, added back at the end of the call: hot_begin, hot_end).
 * With saturated > 0 a candidate already classified beyond it on its label's side (y > saturated
 * for label 1, y < -saturated for label 0, so |g| < σ(-saturated)) takes no step: most of a
 * trained model's candidates, and their steps are tiny. word2vec.c's negative sampling does the
 * same at MAX_EXP = 6 (its g is 0 there), while its hierarchical softmax skips |y| >= 6 on either
 * side; here a candidate classified wrongly always steps, with its exact σ.
 * A candidate's step changes only its own row, so the scores of up to BLOCK candidates are taken
 * first and their σ and loss computed together (vectorised); a candidate whose row an earlier one
 * of the block moved (a repeated noise word) is scored again before its step, so the result is that
 * of the one-by-one loop. `distinct` (a Huffman path) says no candidate repeats.
 * Returns the loss; adds Σ g to *gtotal. */
#define BLOCK 64

static inline float score(const float *h, const float *row, const float *bias, const float *row_offset,
                          float const_offset, int64_t c, int64_t d) {
    float y = dot(h, row, d) - const_offset;
    if (bias) y += bias[c];
    if (row_offset) y -= row_offset[c];
    return y;
}

/* For score y and its label: e = e^-|y|, σ(y) and the binary cross-entropy softplus(y) - label y. */
static inline void logistic_terms(float y, float label, float *e, float *p, float *bce) {
    float ex = exp_nonpositive(-fabsf(y)), inv = 1.0f / (1.0f + ex);
    *e = ex;
    *p = y >= 0.0f ? inv : ex * inv;
    *bce = (y > 0.0f ? y : 0.0f) - label * y + log1p_unit(ex);
}

/* logistic_terms for y[0 .. m), sixteen at a time: the compiler's own vector loop leaves a block
 * shorter than its width (a negative-sampling example has six candidates) to scalar code. */
static void logistic_block(const float *y, const float *label, int64_t m, float *e, float *p, float *bce) {
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (int64_t j = 0; j < m; j += 16) {
        __mmask16 t = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1);
        __m512 yv = _mm512_maskz_loadu_ps(t, y + j), lv = _mm512_maskz_loadu_ps(t, label + j);
        /* exp_nonpositive(-|y|) */
        __m512 x = _mm512_max_ps(_mm512_sub_ps(zero, _mm512_abs_ps(yv)), _mm512_set1_ps(-87.0f));
        __m512 tt = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
        __m512 n = _mm512_roundscale_ps(tt, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), f = _mm512_sub_ps(tt, n);
        __m512 q = _mm512_set1_ps(0.0000152527338f);
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.000154035304f));
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.00133335581f));
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.00961812911f));
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.0555041087f));
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.240226507f));
        q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.693147181f));
        q = _mm512_fmadd_ps(q, f, one);
        __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
        __m512 ex = _mm512_mul_ps(q, _mm512_castsi512_ps(bits));
        __m512 inv = _mm512_div_ps(one, _mm512_add_ps(one, ex));
        __mmask16 pos = _mm512_cmp_ps_mask(yv, zero, _CMP_GE_OQ);
        __m512 pv = _mm512_mask_blend_ps(pos, _mm512_mul_ps(ex, inv), inv);
        /* log1p_unit(ex) */
        __m512 u = _mm512_div_ps(ex, _mm512_add_ps(_mm512_set1_ps(2.0f), ex)), u2 = _mm512_mul_ps(u, u);
        __m512 r = _mm512_fmadd_ps(u2, _mm512_set1_ps(1.0f / 9), _mm512_set1_ps(1.0f / 7));
        r = _mm512_fmadd_ps(u2, r, _mm512_set1_ps(1.0f / 5));
        r = _mm512_fmadd_ps(u2, r, _mm512_set1_ps(1.0f / 3));
        r = _mm512_fmadd_ps(u2, r, one);
        __m512 l1p = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), u), r);
        __m512 b = _mm512_add_ps(_mm512_sub_ps(_mm512_max_ps(yv, zero), _mm512_mul_ps(lv, yv)), l1p);
        _mm512_mask_storeu_ps(e + j, t, ex);
        _mm512_mask_storeu_ps(p + j, t, pv);
        _mm512_mask_storeu_ps(bce + j, t, b);
    }
#else
    for (int64_t j = 0; j < m; j++)  /* branch-free: the compiler vectorises it */
        logistic_terms(y[j], label[j], &e[j], &p[j], &bce[j]);
#endif
}

/* y[j] = h . rows[j] for n rows (NULL rows skipped, y left as is): up to eight rows a pass, so that
 * h is read once for all of them and their eight sums are independent chains. */
static void dots(const float *h, float *const *rows, int64_t n, int64_t d, float *y) {
#if defined(__AVX512F__)
    for (int64_t lo = 0; lo < n; lo += 8) {
        const float *r[8];
        int64_t live = 0, at[8];
        for (int64_t j = lo; j < n && j < lo + 8; j++)
            if (rows[j]) r[live] = rows[j], at[live++] = j;
        if (!live) continue;
        for (int64_t q = live; q < 8; q++) r[q] = h;  /* a spare lane: its sum is computed and dropped */
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        int64_t i = 0;
        for (; i + 16 <= d; i += 16) {
            __m512 x = _mm512_loadu_ps(h + i);
            a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[0] + i), a0);
            a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[1] + i), a1);
            a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[2] + i), a2);
            a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[3] + i), a3);
            a4 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[4] + i), a4);
            a5 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[5] + i), a5);
            a6 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[6] + i), a6);
            a7 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r[7] + i), a7);
        }
        if (i < d) {
            __mmask16 t = (__mmask16)((1u << (d - i)) - 1);
            __m512 x = _mm512_maskz_loadu_ps(t, h + i);
            a0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[0] + i), a0);
            a1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[1] + i), a1);
            a2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[2] + i), a2);
            a3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[3] + i), a3);
            a4 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[4] + i), a4);
            a5 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[5] + i), a5);
            a6 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[6] + i), a6);
            a7 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(t, r[7] + i), a7);
        }
        float sums[8] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                         _mm512_reduce_add_ps(a3), _mm512_reduce_add_ps(a4), _mm512_reduce_add_ps(a5),
                         _mm512_reduce_add_ps(a6), _mm512_reduce_add_ps(a7)};
        for (int64_t q = 0; q < live; q++) y[at[q]] = sums[q];
    }
#else
    for (int64_t j = 0; j < n; j++)
        if (rows[j]) y[j] = dot(h, rows[j], d);
#endif
}

/* The steps of n candidates, in order: err += step[q] rows[q] (each row as it was), rows[q] += step[q] h.
 * The rows are distinct, so one pass over the dimensions serves them all: h and err are read once
 * instead of once a row (the same arithmetic, in the same order, as one row after another). */
static void steps(const float *h, float *err, float *const *rows, const float *step, int64_t n, int64_t d) {
    if (!n) return;
#if defined(__AVX512F__)
    for (int64_t i = 0; i < d; i += 16) {
        __mmask16 t = d - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(t, h + i), e = _mm512_maskz_loadu_ps(t, err + i);
        for (int64_t q = 0; q < n; q++) {
            __m512 s = _mm512_set1_ps(step[q]), r = _mm512_maskz_loadu_ps(t, rows[q] + i);
            e = _mm512_fmadd_ps(s, r, e);
            _mm512_mask_storeu_ps(rows[q] + i, t, _mm512_fmadd_ps(s, x, r));
        }
        _mm512_mask_storeu_ps(err + i, t, e);
    }
#else
    for (int64_t q = 0; q < n; q++) {
        float *row = rows[q], st = step[q];
        for (int64_t i = 0; i < d; i++) {
            float r = row[i];
            err[i] += st * r;
            row[i] = r + st * h[i];
        }
    }
#endif
}

static double logistic_candidates(const float *h, float *err, float *out, float *bias, const int64_t *cand,
                                  const uint8_t *mask, const float *labels, int64_t k, const float *row_offset,
                                  float const_offset, int64_t d, int64_t ld, float lr, float saturated, int64_t distinct,
                                  double *gtotal, int64_t hot_lo, int64_t hot_n, float *hot) {
    double loss = 0.0, gsum = 0.0;
    float y[BLOCK], ex[BLOCK], p[BLOCK], bce[BLOCK], queued_step[BLOCK];
    float *rows[BLOCK], *queued[BLOCK];
    for (int64_t lo = 0; lo < k; lo += BLOCK) {
        int64_t m = k - lo < BLOCK ? k - lo : BLOCK;
        const int64_t *cb = cand + lo;
        const float *lb = labels + lo;
        for (int64_t j = 0; j < m; j++) {
            int64_t c = cb[j];
            if (mask && !mask[lo + j]) {
                rows[j] = NULL, y[j] = 0.0f;
                continue;
            }
            rows[j] = (uint64_t)(c - hot_lo) < (uint64_t)hot_n ? hot + (c - hot_lo) * ld : out + c * ld;
        }
        dots(h, rows, m, d, y);
        for (int64_t j = 0; j < m; j++) {
            if (!rows[j]) continue;
            int64_t c = cb[j];
            y[j] -= const_offset;
            if (bias) y[j] += bias[c];
            if (row_offset) y[j] -= row_offset[c];
        }
        logistic_block(y, lb, m, ex, p, bce);
        int64_t n_queued = 0;  /* steps taken but not yet applied to their rows */
        for (int64_t j = 0; j < m; j++) {
            float *row = rows[j];
            if (!row) continue;
            int64_t c = cb[j];
            float label = lb[j], yj = y[j], e = ex[j], pj = p[j], bj = bce[j];
            if (!distinct) {
                int repeated = 0;
                for (int64_t i = 0; i < j; i++) repeated |= rows[i] == row;
                if (repeated) {  /* its row has moved (or will): apply the steps so far, then score it again */
                    steps(h, err, queued, queued_step, n_queued, d);
                    n_queued = 0;
                    yj = score(h, row, bias, row_offset, const_offset, c, d);
                    logistic_terms(yj, label, &e, &pj, &bj);
                }
            }
            if (saturated > 0.0f && (label > 0.5f ? yj > saturated : yj < -saturated)) {
                loss += (double)e;  /* softplus(-|y|) = log1p(e) ≈ e, within e² / 2 */
                gsum += label > 0.5f ? -e : e;
                continue;
            }
            loss += (double)bj;
            float g = pj - label;
            gsum += g;
            float step = -lr * g;
            queued[n_queued] = row, queued_step[n_queued++] = step;
            if (bias) bias[c] += step;
        }
        steps(h, err, queued, queued_step, n_queued, d);
    }
    *gtotal += gsum;
    return loss;
}

/* Output rows hot_lo .. hot_lo + hot_n - 1 (the rows that nearly every example touches: the top of
 * the Huffman tree, the most frequent words) are trained in `hot` ([2, hot_n, d] workspace), a
 * private copy taken at the start, and their change is added to the shared rows at the end: Hogwild
 * threads that all write the same rows example after example spend their time passing cache lines
 * between cores (measured in docs/performance.md). With one thread the result is the same. */
static void hot_begin(const float *out, int64_t hot_lo, int64_t hot_n, int64_t ld, float *hot) {
    memcpy(hot, out + hot_lo * ld, (size_t)(hot_n * ld) * sizeof(float));
    memcpy(hot + hot_n * ld, hot, (size_t)(hot_n * ld) * sizeof(float));
}

static void hot_end(float *out, int64_t hot_lo, int64_t hot_n, int64_t ld, const float *hot) {
    const float *start = hot + hot_n * ld;
    for (int64_t i = 0; i < hot_n * ld; i++) out[hot_lo * ld + i] += hot[i] - start[i];
}

/* Ask for the cache lines of a d-float row ahead of its use (for writing: every row read here is
 * also stepped). A row is not line-aligned, so its last float's line is asked for too. */
static inline void prefetch_row(const float *row, int64_t d) {
    for (int64_t i = 0; i < d; i += 16) __builtin_prefetch(row + i, 1, 3);
    __builtin_prefetch(row + d - 1, 1, 3);
}

/* One centre word made ready to train: its window (context[0 .. n)), the input rows its examples
 * read (bag[0 .. n_bag): the window itself for words; with subwords, every row of every window word
 * for CBOW, the centre word's rows for skip-gram) and, for the sampled losses, every example's
 * candidates (cand/mask, k per example). */
typedef struct {
    int64_t target, n, *context, *cand;
    uint8_t *mask;
    const int64_t *rows;  /* its output rows: cand, or its path */
    int64_t n_rows, fetched;  /* prefetched so far: input rows, then output rows */
    const int64_t *bag;
    int64_t n_bag, *bag_space;  /* bag_space: where a CBOW bag of subword rows is gathered */
    int64_t at, left;  /* its position in ids; its window is positions at - left .. at - left + n, less at */
} Centre;

/* Prefetch centre c's rows up to the `upto`-th (its n_bag input rows, then its n_rows output rows),
 * skipping the repeated target and the hot rows (trained in their private copy). */
static void prefetch_centre(Centre *c, int64_t upto, const float *inp, const float *out, int64_t k, int64_t sampled,
                            int64_t hot_lo, int64_t hot_n, int64_t d, int64_t ld) {
    for (; c->fetched < upto; c->fetched++) {
        int64_t p = c->fetched;
        if (p < c->n_bag) {
            prefetch_row(inp + c->bag[p] * ld, d);
            continue;
        }
        p -= c->n_bag;
        int64_t row = c->rows[p];
        if ((sampled && p >= k && row == c->target) || (uint64_t)(row - hot_lo) < (uint64_t)hot_n) continue;
        prefetch_row(out + row * ld, d);
    }
}

/* The same training with the examples made here, as word2vec.c's threads make them: no example
 * arrays, no producer. ids[0 .. n_ids) is a subsampled chunk of the corpus (SENTENCE_END = -1
 * between sentences); the centre words at positions centres[0 .. n_centres) are trained in that
 * order. For each, a radius r = 1 + (u mod window) from the `seed ^ RADIUS_STREAM` stream; its
 * window is the words within r of it in its sentence (and in ids). cbow: one example, the bag is
 * the window. skipgram: one example per window word, left to right, the bag that word alone. Each
 * example's candidates are:
 *   sampled (accept != NULL): the centre word (label 1), then `negatives` draws from the alias table
 *     (label 0) from the `seed` stream, k = 1 + negatives per example in order; with skip_hits a
 *     draw equal to the centre word is skipped (word2vec's accidental hits; NCE keeps them);
 *   tree (points != NULL): the centre word's Huffman path, points/labels/mask rows [v, path_max].
 * The rows are random reads from tables larger than the cache, so the loop runs one centre ahead:
 * centre i + 1's window and draws are made (in the same stream order) and its rows prefetched
 * while centre i trains (for a tree, the path's ids are prefetched two centres ahead).
 * *examples receives the number of examples trained. h, err: [d]; context: [2, 2 window]; cand,
 * mask: [2, 2 window, 1 + negatives]; labels: [1 + negatives] workspaces (sampled losses).
 * saturated: see logistic_candidates (0: every candidate steps, as word2vec.c's loop written out).
 * row_offset may be NULL; *gsum receives Σ g (for a learnt log Z). Every input row of a bag moves by
 * its example's whole error (gensim's cbow_mean=1). Returns the summed loss.
 * Subwords (sub_offsets != NULL; w2v_nce.subwords): word w's input rows are sub_rows[sub_offsets[w] ..
 * sub_offsets[w + 1]). A CBOW bag is every row of every window word (gathered in bags: [2, bag_max]).
 * Skip-gram takes fastText's orientation: the centre word's rows are the bag of every example and
 * each window word in turn the target; sub_repeat[w] (NULL: 1) is Σ m² / n over the bag's distinct
 * rows, m copies of each. err_total: [d] workspace. */
#define RADIUS_STREAM 0x5DEECE66DULL

static void prepare_centre(Centre *c, const int32_t *ids, int64_t n_ids,
                           int64_t at, int64_t window, int64_t skipgram, int64_t k, int64_t skip_hits,
                           const float *accept, const int64_t *alias, int64_t vocab, const int64_t *points,
                           const uint8_t *path_mask, int64_t path_max, uint64_t *radii, uint64_t *noise, int64_t shared,
                           const int64_t *sub_offsets, const int64_t *sub_rows, int64_t cached) {
    int64_t target = ids[at];
    int64_t r = 1 + (int64_t)(splitmix64(radii) % (uint64_t)window);
    int64_t n = 0;
    for (int64_t p = at - 1; p >= 0 && p >= at - r && ids[p] >= 0; p--) n++;
    int64_t left = n;
    for (int64_t j = 0; j < left; j++) c->context[j] = ids[at - left + j];
    for (int64_t p = at + 1; p < n_ids && p <= at + r && ids[p] >= 0; p++) c->context[n++] = ids[p];
    c->target = target, c->n = n, c->fetched = 0, c->at = at, c->left = left;
    c->bag = c->context, c->n_bag = n;
    if (n == 0) {
        c->n_rows = c->n_bag = 0;
        return;
    }
    int64_t centre_input = skipgram && sub_offsets;  /* fastText's skip-gram: the centre predicts its window */
    if (centre_input) {
        c->bag = sub_rows + sub_offsets[target], c->n_bag = sub_offsets[target + 1] - sub_offsets[target];
    } else if (sub_offsets && cached) {
        /* its bag is read through the position cache (cached_cbow), not gathered: only its last window
         * word's rows are prefetched, the position most likely new to the cache */
        int64_t last = c->context[n - 1];
        c->bag = sub_rows + sub_offsets[last], c->n_bag = sub_offsets[last + 1] - sub_offsets[last];
    } else if (sub_offsets) {
        c->n_bag = 0;
        for (int64_t j = 0; j < n; j++)
            for (int64_t q = sub_offsets[c->context[j]]; q < sub_offsets[c->context[j] + 1]; q++)
                c->bag_space[c->n_bag++] = sub_rows[q];
        c->bag = c->bag_space;
    }
    if (accept) {
        int64_t draws = skipgram && !shared ? n : 1;  /* shared: one candidate list for all the window's examples */
        for (int64_t e = 0; e < draws; e++) {
            int64_t *cand = c->cand + e * k;
            uint8_t *mask = c->mask + e * k;
            int64_t label = centre_input ? c->context[e] : target;
            cand[0] = label;
            mask[0] = 1;
            for (int64_t j = 1; j < k; j++) {
                cand[j] = alias_draw(accept, alias, vocab, noise);
                mask[j] = !skip_hits || cand[j] != label;
            }
        }
        c->rows = c->cand, c->n_rows = draws * k;
    } else if (centre_input) {  /* a path per window word: not prefetched */
        c->rows = NULL, c->n_rows = 0;
    } else {
        const uint8_t *pmask = path_mask + target * path_max;
        c->rows = points + target * path_max, c->n_rows = 0;
        while (c->n_rows < path_max && pmask[c->n_rows]) c->n_rows++;
    }
}

/* Subword CBOW with cached bags (cache != NULL): consecutive centres share nearly all their window,
 * so each window position p keeps, in slot p mod (2 window + 1), S_p (the sum of its word's rows)
 * and pending_p (the error its rows still owe). h is Σ S_p / rows over the centre's window; each
 * example's err goes to pending_p, and Σ m² err to S_p (m copies of a row), so S_p follows the rows
 * as if they had moved already.
 * A position's rows get pending_p once, when it leaves the reach (window) of the centre trained or
 * at the end of the call: a row shared by two positions of one reach sees the other's steps late.
 * Slot layout: [2, ld] floats (S, pending); pos[slot] is its position or -1. */
static void bag_cache_flush(float *inp, const int32_t *ids, const int64_t *sub_offsets, const int64_t *sub_rows,
                            float *slot, int64_t *pos, int64_t d, int64_t ld) {
    int64_t w = ids[*pos];
    for (int64_t q = sub_offsets[w]; q < sub_offsets[w + 1]; q++) axpy(1.0f, slot + ld, inp + sub_rows[q] * ld, d);
    *pos = -1;
}

static void bag_cache_load(const float *inp, const int32_t *ids, const int64_t *sub_offsets, const int64_t *sub_rows,
                           float *slot, int64_t *pos, int64_t p, int64_t d, int64_t ld) {
    int64_t w = ids[p];
    memset(slot, 0, (size_t)(2 * ld) * sizeof(float));
    for (int64_t q = sub_offsets[w]; q < sub_offsets[w + 1]; q++) axpy(1.0f, inp + sub_rows[q] * ld, slot, d);
    *pos = p;
}

/* One cached CBOW example of centre c: returns its loss. */
static double cached_cbow(Centre *c, float *inp, float *out, float *bias, const int32_t *ids, const int64_t *sub_offsets,
                          const int64_t *sub_rows, const float *sub_repeat, float *cache, int64_t *cache_pos, int64_t window, float *h, float *err,
                          const int64_t *c_ids, const uint8_t *c_mask, const float *c_labels, int64_t k,
                          const float *row_offset, float const_offset, int64_t d, int64_t ld, float lr, float saturated,
                          int64_t distinct, double *gtotal, int64_t hot_lo, int64_t hot_n, float *hot) {
    int64_t slots = 2 * window + 1, at = c->at, lo = at - c->left, hi = lo + c->n + 1, total = 0;
    for (int64_t s = 0; s < slots; s++)
        if (cache_pos[s] >= 0 && (cache_pos[s] < at - window || cache_pos[s] > at + window))
            bag_cache_flush(inp, ids, sub_offsets, sub_rows, cache + s * 2 * ld, &cache_pos[s], d, ld);
    memset(h, 0, (size_t)d * sizeof(float));
    for (int64_t p = lo; p < hi; p++) {
        if (p == at) continue;
        int64_t s = p % slots;  /* the reach's 2 window + 1 positions have distinct slots */
        if (cache_pos[s] != p) bag_cache_load(inp, ids, sub_offsets, sub_rows, cache + s * 2 * ld, &cache_pos[s], p, d, ld);
        axpy(1.0f, cache + s * 2 * ld, h, d);
        total += sub_offsets[ids[p] + 1] - sub_offsets[ids[p]];
    }
    if (total > 1) {
        float inv = 1.0f / (float)total;
        for (int64_t i = 0; i < d; i++) h[i] *= inv;
    }
    memset(err, 0, (size_t)d * sizeof(float));
    double loss = logistic_candidates(h, err, out, bias, c_ids, c_mask, c_labels, k, row_offset, const_offset, d, ld,
                                      lr, saturated, distinct, gtotal, hot_lo, hot_n, hot);
    for (int64_t p = lo; p < hi; p++) {
        if (p == at) continue;
        float *slot = cache + (p % slots) * 2 * ld;
        int64_t w = ids[p];  /* Σ m² over its distinct rows (m copies each): how far S_p moves */
        float moves = (float)(sub_offsets[w + 1] - sub_offsets[w]) * (sub_repeat ? sub_repeat[w] : 1.0f);
        axpy(moves, err, slot, d);
        axpy(1.0f, err, slot + ld, d);
    }
    return loss;
}

double window_sgd(float *inp, float *out, float *bias, const int32_t *ids, int64_t n_ids, const int64_t *centres,
                  int64_t n_centres, int64_t window, int64_t skipgram, int64_t negatives, int64_t skip_hits,
                  const float *accept,
                  const int64_t *alias, int64_t vocab, const int64_t *points, const float *path_labels,
                  const uint8_t *path_mask, int64_t path_max, const float *row_offset, float const_offset,
                  int64_t d, int64_t ld, float lr, float saturated, uint64_t seed, float *h, float *err, int64_t *context, int64_t *cand,
                  float *labels, uint8_t *mask, double *gsum, int64_t *examples, int64_t hot_lo, int64_t hot_n,
                  float *hot, int64_t shared_noise, const int64_t *sub_offsets, const int64_t *sub_rows,
                  const float *sub_repeat, int64_t *bags, int64_t bag_max, float *err_total, float *cache,
                  int64_t *cache_pos) {
    double loss = 0.0, gtotal = 0.0;
    uint64_t noise = seed, radii = seed ^ RADIUS_STREAM;
    int64_t k = accept ? 1 + negatives : path_max, trained = 0, per = 2 * window * (accept ? k : 0);
    Centre ring[2] = {{0, 0, context, cand, mask, NULL, 0, 0, context, 0, bags},
                      {0, 0, context + 2 * window, cand + per, mask + per, NULL, 0, 0, context + 2 * window, 0,
                       bags + bag_max}};
    int64_t centre_input = skipgram && sub_offsets, slots = 2 * window + 1;
    if (skipgram || !sub_offsets) cache = NULL;
    if (cache)
        for (int64_t s = 0; s < slots; s++) cache_pos[s] = -1;
    shared_noise = shared_noise && !centre_input;  /* with subwords each window word is a target: its own draws */
    if (accept) {
        labels[0] = 1.0f;
        for (int64_t j = 1; j < k; j++) labels[j] = 0.0f;
    }
    hot_begin(out, hot_lo, hot_n, ld, hot);
#define PREPARE(slot, i) prepare_centre(&ring[slot], ids, n_ids, centres[i], window, skipgram, k, skip_hits, accept, \
                                        alias, vocab, points, path_mask, path_max, &radii, &noise, \
                                        shared_noise, sub_offsets, sub_rows, cache != NULL)
    if (n_centres > 0) {
        PREPARE(0, 0);
        prefetch_centre(&ring[0], ring[0].n_bag + ring[0].n_rows, inp, out, k, accept != NULL, hot_lo, hot_n, d, ld);
    }
    for (int64_t i = 0; i < n_centres; i++) {
        Centre *c = &ring[i & 1];
        if (i + 3 < n_centres) {  /* centres may be shuffled: their words are random reads too */
            __builtin_prefetch(ids + centres[i + 3], 0, 3);
        }
        if (points && i + 2 < n_centres) {
            int64_t ahead = ids[centres[i + 2]];
            for (int64_t j = 0; j < path_max; j += 8) __builtin_prefetch(points + ahead * path_max + j, 0, 3);
            __builtin_prefetch(path_mask + ahead * path_max, 0, 3);
            __builtin_prefetch(path_labels + ahead * path_max, 0, 3);
        }
        Centre *next = &ring[(i + 1) & 1];
        if (i + 1 < n_centres) PREPARE((i + 1) & 1, i + 1);
        else next->n = next->n_rows = next->n_bag = next->fetched = 0;
        if (c->n == 0) {
            prefetch_centre(next, next->n_bag + next->n_rows, inp, out, k, accept != NULL, hot_lo, hot_n, d, ld);
            continue;
        }
        int64_t n_examples = skipgram ? c->n : 1, ahead = next->n_bag + next->n_rows;
        if (centre_input) {
            bag_mean(inp, c->bag, 0, c->n_bag, d, ld, h);
            memset(err_total, 0, (size_t)d * sizeof(float));
        }
        for (int64_t e = 0; e < n_examples; e++) {
            /* the next centre's rows, spread over this centre's examples: a burst of hundreds of
             * prefetches would fill the line buffers and stall */
            prefetch_centre(next, (ahead * (e + 1) + n_examples - 1) / n_examples, inp, out, k, accept != NULL,
                            hot_lo, hot_n, d, ld);
            /* sampled: this example's draws (or the window's shared ones); tree: the target's path (the
             * centre word's, or with subwords in skip-gram, the window word's) */
            int64_t at = shared_noise ? 0 : e * k, label = centre_input ? c->context[e] : c->target;
            const int64_t *c_ids = accept ? c->rows + at : points + label * path_max;
            const float *c_labels = accept ? labels : path_labels + label * path_max;
            const uint8_t *c_mask = accept ? c->mask + at : path_mask + label * path_max;
            if (centre_input) {
                /* the bag's rows move once, after the centre's last example (each by the sum of the
                 * errors); meanwhile h follows the mean they would have: h += repeat err, exactly */
                memset(err, 0, (size_t)d * sizeof(float));
                loss += logistic_candidates(h, err, out, bias, c_ids, c_mask, c_labels, k, row_offset, const_offset,
                                            d, ld, lr, saturated, points != NULL, &gtotal, hot_lo, hot_n, hot);
                axpy(sub_repeat ? sub_repeat[c->target] : 1.0f, err, h, d);
                axpy(1.0f, err, err_total, d);
                trained++;
                continue;
            }
            if (cache) {
                loss += cached_cbow(c, inp, out, bias, ids, sub_offsets, sub_rows, sub_repeat, cache, cache_pos, window, h, err,
                                    c_ids, c_mask, c_labels, k, row_offset, const_offset, d, ld, lr, saturated,
                                    points != NULL, &gtotal, hot_lo, hot_n, hot);
                trained++;
                continue;
            }
            int64_t lo = skipgram ? e : 0, hi = skipgram ? e + 1 : c->n_bag;
            /* a bag of one is its row (the mean would copy it exactly); it moves only after the loop */
            const float *hv = h;
            if (hi - lo == 1)
                hv = inp + c->bag[lo] * ld;
            else
                bag_mean(inp, c->bag, lo, hi, d, ld, h);
            memset(err, 0, (size_t)d * sizeof(float));
            loss += logistic_candidates(hv, err, out, bias, c_ids, c_mask, c_labels, k, row_offset, const_offset, d, ld,
                                        lr, saturated, points != NULL, &gtotal, hot_lo, hot_n, hot);
            for (int64_t j = lo; j < hi; j++) axpy(1.0f, err, inp + c->bag[j] * ld, d);
            trained++;
        }
        if (centre_input)
            for (int64_t j = 0; j < c->n_bag; j++) axpy(1.0f, err_total, inp + c->bag[j] * ld, d);
    }
#undef PREPARE
    if (cache)
        for (int64_t s = 0; s < slots; s++)
            if (cache_pos[s] >= 0) bag_cache_flush(inp, ids, sub_offsets, sub_rows, cache + s * 2 * ld, &cache_pos[s], d, ld);
    hot_end(out, hot_lo, hot_n, ld, hot);
    *gsum = gtotal;
    *examples = trained;
    return loss;
}

/* Counters in shared memory for w2v_nce.hostsum: a rank publishes "exchange x is written" (or
 * "read") with a release store, and a reader that sees it with an acquire load also sees the
 * bytes written before it, on any processor (x86 orders them anyway; ARM does not). A rank that
 * must wait sleeps in a futex on the lagging counter (its low 32 bits: the counters rise by one):
 * polling would take the core from the very rank it waits for. */
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline uint32_t *low_half(const int64_t *counter) {
    return (uint32_t *)counter + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}
#endif

void counter_publish(int64_t *counter, int64_t value) {
    __atomic_store_n(counter, value, __ATOMIC_RELEASE);
#ifdef __linux__
    syscall(SYS_futex, low_half(counter), FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);  /* shared: not _PRIVATE */
#endif
}

int64_t counter_least(const int64_t *first, int64_t n, int64_t stride) {
    int64_t least = INT64_MAX;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = __atomic_load_n(first + i * stride, __ATOMIC_ACQUIRE);
        if (v < least) least = v;
    }
    return least;
}

/* Sleep until the least counter reaches x, or about timeout_us: returns the least counter. */
int64_t counter_wait(const int64_t *first, int64_t n, int64_t stride, int64_t x, int64_t timeout_us) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t *counter = first + i * stride;
        int64_t v = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
        if (v >= x) continue;
#ifdef __linux__
        struct timespec ts = {timeout_us / 1000000, (timeout_us % 1000000) * 1000};
        syscall(SYS_futex, low_half(counter), FUTEX_WAIT, (uint32_t)v, &ts, NULL, 0);  /* returns at once if moved */
#else
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
#endif
        break;
    }
    return counter_least(first, n, stride);
}

/* word2vec text: rows of float32 as printf's "%.9g" writes them (9 significant digits read back to
 * the same float32), ~10x faster than Python's formatting. For 1e-9 <= |x| < 1e9 the 9 digits are
 * x * 10^k rounded half to even, computed in long double, where the product is exact (x has 24
 * bits, 10^k = 5^k 2^k with k <= 17: 24 + 40 bits fit the 64-bit mantissa), so they are the
 * correctly rounded digits printf writes; everything else goes through snprintf itself. */
#include <float.h>
#include <stdio.h>

static char *format_g9(char *p, float x) {
    double a = fabs((double)x);
    if (isnan(x)) { memcpy(p, "nan", 3); return p + 3; }  /* as Python writes it, whatever its sign */
#if LDBL_MANT_DIG < 64  /* long double is double here (MSVC, Apple arm64): the product is not exact */
    return p + snprintf(p, 24, "%.9g", (double)x);
#endif
    if (!(a >= 1e-9 && a < 1e9)) return p + snprintf(p, 24, "%.9g", (double)x);
    static const long double ten[] = {1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L,
                                      1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L};
    int e = (int)floor(log10(a));
    long double m;
    for (;;) {  /* log10's floor may be one off at powers of ten: fix e so that 10^8 <= m < 10^9 */
        int k = 8 - e;  /* -1 ..= 18 */
        m = k >= 0 ? (long double)a * ten[k] : (long double)a / ten[-k];
        if (m < 99999999.5L) { e--; continue; }
        m = nearbyintl(m);
        if (m >= 1e9L) { e++; continue; }
        break;
    }
    uint64_t digits = (uint64_t)m;
    char d[9];
    for (int i = 8; i >= 0; i--) { d[i] = (char)('0' + digits % 10); digits /= 10; }
    int n = 9;
    while (n > 1 && d[n - 1] == '0') n--;  /* %g drops trailing zeros */
    if (x < 0) *p++ = '-';
    if (e >= -4 && e < 9) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) *p++ = i < n ? d[i] : '0';
            if (n > e + 1) { *p++ = '.'; for (int i = e + 1; i < n; i++) *p++ = d[i]; }
        } else {
            *p++ = '0'; *p++ = '.';
            for (int i = 0; i < -e - 1; i++) *p++ = '0';
            for (int i = 0; i < n; i++) *p++ = d[i];
        }
    } else {
        *p++ = d[0];
        if (n > 1) { *p++ = '.'; for (int i = 1; i < n; i++) *p++ = d[i]; }
        *p++ = 'e'; *p++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae >= 100) *p++ = (char)('0' + ae / 100);
        *p++ = (char)('0' + ae / 10 % 10); *p++ = (char)('0' + ae % 10);
    }
    return p;
}

/* Rows [0, rows) of m (row stride ld floats): " v1 v2 ... vd\n" each into out (room for rows *
 * (dim * 17 + 1) bytes); ends[r] is where row r's text ends. Returns the bytes written. */
int64_t format_rows(const float *m, int64_t rows, int64_t dim, int64_t ld, char *out, int64_t *ends) {
    char *p = out;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = m + r * ld;
        for (int64_t j = 0; j < dim; j++) { *p++ = ' '; p = format_g9(p, row[j]); }
        *p++ = '\n';
        ends[r] = p - out;
    }
    return p - out;
}

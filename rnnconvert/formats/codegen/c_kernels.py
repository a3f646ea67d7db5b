"""The C helpers the recurrent layers run on: two matrix products and a tanh that vectorizes.

`gemm_(Y, ldy, X, ldx, n, WT, ld, K, M)`: Y[t][j] += sum_k X[t][k] WT[k][j] for n rows (a whole
sequence's input projection: blocks of 4 rows x 32 columns held in registers while k runs, so that each
weight row is loaded once per 4 steps); `gemv_(y, WT, ld, K, M, v)`: y[j] += sum_k WT[k][j] v[k]
(64 columns held in registers while k runs); both row-major, unit stride along j, with fmaf where the
target has a fast one (FP_FAST_FMAF) and the compile-time trip counts gcc -O3 vectorizes without
fast-math.  With -DRNNC_USE_CBLAS they are cblas_sgemm / cblas_sgemv on the same arrays.
`tanh_` is the rational approximation onnxruntime's MLAS (and Eigen) use, clamped at +-9 (absolute
error under 4e-7, plain arithmetic so that loops calling it vectorize); `sigmoid_(x)` is
0.5 + 0.5 tanh_(x / 2) (absolute error under 3e-7).
"""
from __future__ import annotations

TANH = r"""/* tanh: a rational approximation (odd degree 13 over even degree 6, the one onnxruntime's MLAS uses),
 * absolute error under 4e-7; plain arithmetic, so that the loops calling it vectorize. */
static float tanh_(float x)
{
    float x2, p, q;
    x = x < -9.0f ? -9.0f : (x > 9.0f ? 9.0f : x);
    x2 = x * x;
    p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}
"""

SIGMOID = r"""static float sigmoid_(float x)
{
    return 0.5f + 0.5f * tanh_(0.5f * x);
}
"""

PRODUCTS = r"""#ifdef RNNC_USE_CBLAS
#include <cblas.h>

/* y[j] += sum_k WT[k][j] v[k], j < M, k < K (WT row-major with row stride ld) */
static void gemv_(float *restrict y, const float *restrict WT, int ld, int K, int M, const float *restrict v)
{
    cblas_sgemv(CblasRowMajor, CblasTrans, K, M, 1.0f, WT, ld, v, 1, 1.0f, y, 1);
}

/* Y[t][j] += sum_k X[t][k] WT[k][j], t < n, j < M, k < K */
static void gemm_(float *restrict Y, int ldy, const float *restrict X, int ldx, int n,
                  const float *restrict WT, int ld, int K, int M)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, M, K, 1.0f, X, ldx, WT, ld, 1.0f, Y, ldy);
}
#else
#if defined(FP_FAST_FMAF)
#define RNNC_MAC(w, v, a) fmaf(w, v, a)
#else
#define RNNC_MAC(w, v, a) ((w) * (v) + (a))
#endif
#define RNNC_NV 64   /* gemv_: columns held in registers */
#define RNNC_NM 32   /* gemm_: columns ... */
#define RNNC_TM 4    /* ... by rows held in registers */

/* y[j] += sum_k WT[k][j] v[k], j < M, k < K (WT row-major with row stride ld) */
static void gemv_(float *restrict y, const float *restrict WT, int ld, int K, int M, const float *restrict v)
{
    int j0 = 0, j, k;
    for (; j0 + RNNC_NV <= M; j0 += RNNC_NV) {
        float acc[RNNC_NV];
        for (j = 0; j < RNNC_NV; ++j) acc[j] = y[j0 + j];
        for (k = 0; k < K; ++k) {
            const float vk = v[k];
            const float *w = WT + (long)k * ld + j0;
            for (j = 0; j < RNNC_NV; ++j) acc[j] = RNNC_MAC(w[j], vk, acc[j]);
        }
        for (j = 0; j < RNNC_NV; ++j) y[j0 + j] = acc[j];
    }
    if (j0 < M)
        for (k = 0; k < K; ++k) {
            const float vk = v[k];
            const float *w = WT + (long)k * ld;
            for (j = j0; j < M; ++j) y[j] = RNNC_MAC(w[j], vk, y[j]);
        }
}

/* Y[t][j] += sum_k X[t][k] WT[k][j], t < n, j < M, k < K */
static void gemm_(float *restrict Y, int ldy, const float *restrict X, int ldx, int n,
                  const float *restrict WT, int ld, int K, int M)
{
    int t = 0, i, j0, j, k;
    for (; t + RNNC_TM <= n; t += RNNC_TM) {
        for (j0 = 0; j0 + RNNC_NM <= M; j0 += RNNC_NM) {
            float acc[RNNC_TM][RNNC_NM];
            for (i = 0; i < RNNC_TM; ++i)
                for (j = 0; j < RNNC_NM; ++j) acc[i][j] = Y[(long)(t + i) * ldy + j0 + j];
            for (k = 0; k < K; ++k) {
                const float *w = WT + (long)k * ld + j0;
                for (i = 0; i < RNNC_TM; ++i) {
                    const float xk = X[(long)(t + i) * ldx + k];
                    for (j = 0; j < RNNC_NM; ++j) acc[i][j] = RNNC_MAC(w[j], xk, acc[i][j]);
                }
            }
            for (i = 0; i < RNNC_TM; ++i)
                for (j = 0; j < RNNC_NM; ++j) Y[(long)(t + i) * ldy + j0 + j] = acc[i][j];
        }
        if (j0 < M)
            for (i = 0; i < RNNC_TM; ++i)
                for (k = 0; k < K; ++k) {
                    const float xk = X[(long)(t + i) * ldx + k];
                    const float *w = WT + (long)k * ld;
                    float *y = Y + (long)(t + i) * ldy;
                    for (j = j0; j < M; ++j) y[j] = RNNC_MAC(w[j], xk, y[j]);
                }
    }
    for (; t < n; ++t) gemv_(Y + (long)t * ldy, WT, ld, K, M, X + (long)t * ldx);
}
#endif
"""


def helpers(need: set[str], recurrent: bool) -> list[str]:
    """The helpers' C text: tanh_ / sigmoid_ when an activation calls them, the products for recurrent layers."""
    out = []
    if "tanh" in need or "sigmoid" in need:
        out.append(TANH)
    if "sigmoid" in need:
        out.append(SIGMOID)
    if recurrent:
        out.append(PRODUCTS)
    return out

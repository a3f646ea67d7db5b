"""The C helpers the recurrent layers run on: two matrix products and a tanh that vectorizes.

`gemm_(Y, ldy, X, ldx, n, WP, K, M)`: Y[t][j] += sum_k X[t][k] WT[k][j] for n rows (a whole
sequence's input projection: blocks of 4 rows x 32 columns held in registers while k runs, so that each
weight is loaded once per 4 steps); `gemv_(y, WP, K, M, v)`: y[j] += sum_k WT[k][j] v[k] (64 columns held
in registers while k runs).  WP is WT [K][M] in panels of 64 columns (`panels`), each a row-major [K][w]
block, so that the weights stream in order (a row-major WT with a 2-4 KB row stride was 4% slower at
[128][512] and 30% at [256][1024]); fmaf where the target has a fast one (FP_FAST_FMAF), and compile-time
trip counts that gcc -O3 vectorizes without fast-math.  With -DRNNC_USE_CBLAS they are cblas_sgemm /
cblas_sgemv per panel, on the same arrays.
`tanh_` is the rational approximation onnxruntime's MLAS (and Eigen) use, clamped at +-9 (absolute
error under 4e-7, plain arithmetic so that loops calling it vectorize); `sigmoid_(x)` is
0.5 + 0.5 tanh_(x / 2) (absolute error under 3e-7).
"""
from __future__ import annotations

import numpy as np

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

PRODUCTS = r"""/* A matrix WT [K][M] is stored in panels of RNNC_NP = 64 columns: panel p (columns 64p .. 64p + w - 1,
 * w = 64 or the columns left) is a row-major [K][w] block at WP + 64 p K, so that a product reads the
 * weights in order. */
#define RNNC_NP 64
#ifdef RNNC_USE_CBLAS
#include <cblas.h>

/* y[j] += sum_k WT[k][j] v[k], j < M, k < K */
static void gemv_(float *restrict y, const float *restrict WP, int K, int M, const float *restrict v)
{
    int j0, w;
    for (j0 = 0; j0 < M; j0 += RNNC_NP) {
        w = M - j0 < RNNC_NP ? M - j0 : RNNC_NP;
        cblas_sgemv(CblasRowMajor, CblasTrans, K, w, 1.0f, WP + (long)j0 * K, w, v, 1, 1.0f, y + j0, 1);
    }
}

/* Y[t][j] += sum_k X[t][k] WT[k][j], t < n, j < M, k < K */
static void gemm_(float *restrict Y, int ldy, const float *restrict X, int ldx, int n,
                  const float *restrict WP, int K, int M)
{
    int j0, w;
    for (j0 = 0; j0 < M; j0 += RNNC_NP) {
        w = M - j0 < RNNC_NP ? M - j0 : RNNC_NP;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, w, K, 1.0f, X, ldx, WP + (long)j0 * K, w,
                    1.0f, Y + j0, ldy);
    }
}
#else
#if defined(FP_FAST_FMAF)
#define RNNC_MAC(w, v, a) fmaf(w, v, a)
#else
#define RNNC_MAC(w, v, a) ((w) * (v) + (a))
#endif
#define RNNC_NM 32   /* gemm_: half a panel's columns ... */
#define RNNC_TM 4    /* ... by rows held in registers */

/* y[j] += sum_k WT[k][j] v[k], j < M, k < K; a whole panel's 64 sums are held in registers */
static void gemv_(float *restrict y, const float *restrict WP, int K, int M, const float *restrict v)
{
    int j0 = 0, j, k, w;
    for (; j0 + RNNC_NP <= M; j0 += RNNC_NP) {
        const float *p = WP + (long)j0 * K;
        float acc[RNNC_NP];
        for (j = 0; j < RNNC_NP; ++j) acc[j] = y[j0 + j];
        for (k = 0; k < K; ++k) {
            const float vk = v[k];
            const float *wk = p + (long)k * RNNC_NP;
            for (j = 0; j < RNNC_NP; ++j) acc[j] = RNNC_MAC(wk[j], vk, acc[j]);
        }
        for (j = 0; j < RNNC_NP; ++j) y[j0 + j] = acc[j];
    }
    w = M - j0;
    for (k = 0; k < K && w > 0; ++k) {
        const float vk = v[k];
        const float *wk = WP + (long)j0 * K + (long)k * w;
        for (j = 0; j < w; ++j) y[j0 + j] = RNNC_MAC(wk[j], vk, y[j0 + j]);
    }
}

/* Y[t][j] += sum_k X[t][k] WT[k][j], t < n, j < M, k < K: blocks of 4 rows by 32 columns in registers */
static void gemm_(float *restrict Y, int ldy, const float *restrict X, int ldx, int n,
                  const float *restrict WP, int K, int M)
{
    int t, i, j0, j, k, h, w;
    for (j0 = 0; j0 < M; j0 += RNNC_NP) {
        const float *p = WP + (long)j0 * K;
        w = M - j0 < RNNC_NP ? M - j0 : RNNC_NP;
        for (t = 0; t + RNNC_TM <= n; t += RNNC_TM) {
            if (w < RNNC_NP) {
                for (i = 0; i < RNNC_TM; ++i)
                    for (k = 0; k < K; ++k) {
                        const float xk = X[(long)(t + i) * ldx + k];
                        float *y = Y + (long)(t + i) * ldy + j0;
                        for (j = 0; j < w; ++j) y[j] = RNNC_MAC(p[(long)k * w + j], xk, y[j]);
                    }
                continue;
            }
            for (h = 0; h < RNNC_NP; h += RNNC_NM) {
                float acc[RNNC_TM][RNNC_NM];
                for (i = 0; i < RNNC_TM; ++i)
                    for (j = 0; j < RNNC_NM; ++j) acc[i][j] = Y[(long)(t + i) * ldy + j0 + h + j];
                for (k = 0; k < K; ++k) {
                    const float *wk = p + (long)k * RNNC_NP + h;
                    for (i = 0; i < RNNC_TM; ++i) {
                        const float xk = X[(long)(t + i) * ldx + k];
                        for (j = 0; j < RNNC_NM; ++j) acc[i][j] = RNNC_MAC(wk[j], xk, acc[i][j]);
                    }
                }
                for (i = 0; i < RNNC_TM; ++i)
                    for (j = 0; j < RNNC_NM; ++j) Y[(long)(t + i) * ldy + j0 + h + j] = acc[i][j];
            }
        }
    }
    for (t = n - n % RNNC_TM; t < n; ++t) gemv_(Y + (long)t * ldy, WP, K, M, X + (long)t * ldx);
}
#endif
"""

PANEL = 64


def panels(WT) -> np.ndarray:
    """WT [K][M] in the products' layout: panels of 64 columns, each a row-major [K][w] block, in order."""
    WT = np.asarray(WT, np.float32)
    return np.concatenate([WT[:, j:j + PANEL].ravel() for j in range(0, WT.shape[1], PANEL)])


def layout(K: int, M: int) -> str:
    """The array comment's description of the panel layout."""
    return f"[{K}][{M}] in panels of {PANEL} columns (a panel: [{K}][its width] row-major)"


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

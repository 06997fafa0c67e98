/* bimlp_runtime_testing.h -- single kernels of one instruction set, for tests (not a stable API).
 * isa: "portable", "avx2", "avx512" or "neon"; each function returns 0 or a BIMLP_E* code (see
 * bimlp_last_error()). Inputs are float arrays whose signs (x < 0 -> -1, else +1) are used.
 */
#ifndef BIMLP_RUNTIME_TESTING_H
#define BIMLP_RUNTIME_TESTING_H

#include "bimlp_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out (M, N) = sign(x) (M, K) @ sign(w)^T (N, K): packing, XNOR-popcount, plain epilogue. */
BIMLP_API int bimlp_testing_bgemm(const char* isa, const float* x, int64_t M, int64_t K, const float* w,
                                  int64_t N, float* out);
/* A binary 1x1 unit: dot = sign(x) (M, K) @ sign(w)^T (N, K), then the epilogue
 *   v = prelu(alpha * dot + beta + S(res), slope) + shift, S(r) = r (res_kind 1, res (M, N)) or
 *   r[n % res_channels] (res_kind 2, res (M, res_channels)), through prelu(res_scale * r + res_bias,
 *   res_slope) + res_shift when scale; res_kind 0: no shortcut,
 * out (M, N) = v and bits (M, ceil(N / 64)) of v + thresh < 0. params (9, N): alpha, beta, slope,
 * shift, res_scale, res_bias, res_slope, res_shift, thresh. With fused, the instruction set's
 * one-pass kernel where it has one and covers the case (*used_fused tells), else dots + epilogue. */
BIMLP_API int bimlp_testing_unit(const char* isa, int fused, const float* x, int64_t M, int64_t K, const float* w,
                                 int64_t N, const float* params, int res_kind, const float* res,
                                 int64_t res_channels, int scale, float* out, uint64_t* bits, int* used_fused);
/* out (M, N) = t(x) (M, K) @ sign(w)^T (N, K) with ternary activations t(x) = round(clip(x, -1, 1))
 * in {-1, 0, +1} (|x| <= 0.5 -> 0): sign and nonzero planes, ternary_dots, plain epilogue. */
BIMLP_API int bimlp_testing_tgemm(const char* isa, const float* x, int64_t M, int64_t K, const float* w,
                                  int64_t N, float* out);
/* Token conv of sign planes x (B, H, W, Cs) with taps sign(w) (T, Cs), padding T / 2 along W
 * (axis 0) or H (axis 1), pairs input channels per output: out (B * H * W, Cs / pairs). */
BIMLP_API int bimlp_testing_token_conv(const char* isa, const float* x, int64_t B, int64_t H, int64_t W,
                                       int64_t Cs, const float* w, int64_t T, int axis, int pairs, float* out);
/* The same with ternary planes t(x) = round(clip(x, -1, 1)) and real-valued taps w (T, Cs), summed in
 * float (official mode's token convs). */
BIMLP_API int bimlp_testing_token_conv_f32(const char* isa, const float* x, int64_t B, int64_t H, int64_t W,
                                           int64_t Cs, const float* w, int64_t T, int axis, int pairs, float* out);
/* Binary 3x3 conv, stride 1 or 2, zero padding 1, of sign(x) (B, H, W, C) with sign(w) (N, C, 3, 3):
 * out (B * Ho * Wo, N). pad_value (+1 or -1) is what the kernel pads the packed input with before
 * its exact correction to zero padding. */
BIMLP_API int bimlp_testing_bconv3x3(const char* isa, const float* x, int64_t B, int64_t H, int64_t W, int64_t C,
                                     const float* w, int64_t N, int stride, int pad_value, float* out);
/* out (M, N) = a (M, K) @ w^T (N, K) in float (the full-precision layers' GEMM). */
BIMLP_API int bimlp_testing_sgemm(const char* isa, const float* a, int64_t M, int64_t K, const float* w,
                                  int64_t N, float* out);
/* bits (M, ceil(C / 64)) of x + thresh < 0 (channel c in bit c % 64 of word c / 64). */
BIMLP_API int bimlp_testing_pack(const char* isa, const float* x, int64_t M, int64_t C, const float* thresh,
                                 uint64_t* out);
BIMLP_API int bimlp_testing_isa_supported(const char* isa);

#ifdef __cplusplus
}
#endif

#endif

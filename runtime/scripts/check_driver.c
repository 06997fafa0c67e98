/* check_driver.c -- the C driver of test_aarch64.sh, built for the host and for aarch64.
 *
 *   check_driver run MODEL.bimlp B H W OUT.f32   logits of a deterministic input, raw float32
 *                                               (the instruction set from BIMLP_ISA)
 *   check_driver isas                            the instruction sets this CPU and build support
 *   check_driver kernels SEED CASES              every supported instruction set's kernels on
 *                                               random shapes against portable (bit for bit)
 *                                               and the binary ones against an integer reference
 *                                               (the real-tap token conv: a double reference)
 *
 * Prints one line per mode; exits 0 only when everything matched.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bimlp_runtime.h"
#include "bimlp_runtime_testing.h"

static const char* const ISAS[] = {"portable", "avx2", "avx512", "neon"};
enum { NISA = 4 };

static unsigned long long rng_state;
static unsigned rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
  return (unsigned)((rng_state * 2685821657736338717ull) >> 32);
}
static int between(int lo, int hi) { return lo + (int)(rnd() % (unsigned)(hi - lo + 1)); }
static void fill(float* x, size_t n) { /* normal-ish values, about 1 in 16 exactly +-0 */
  for (size_t i = 0; i < n; ++i) {
    const unsigned r = rnd();
    x[i] = (r & 15) == 0 ? ((r & 16) ? -0.0f : 0.0f) : ((float)(r >> 8) / 8388608.0f - 1.0f);
  }
}
static int sgn(float v) { return v < 0.f ? -1 : 1; }
static int fused_runs[NISA]; /* fused-unit cases each instruction set ran in its one-pass kernel */

static int run_model(const char* path, long long B, long long H, long long W, const char* out_path) {
  bimlp_model* model = NULL;
  if (bimlp_load(path, 1, &model) != BIMLP_OK) {
    fprintf(stderr, "check_driver: %s\n", bimlp_last_error());
    return 1;
  }
  const int64_t shape[4] = {B, bimlp_in_channels(model), H, W};
  int64_t out_shape[2];
  if (bimlp_output_shape(model, shape, out_shape) != BIMLP_OK) {
    fprintf(stderr, "check_driver: %s\n", bimlp_last_error());
    return 1;
  }
  const size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]), classes = (size_t)(out_shape[0] * out_shape[1]);
  float* x = malloc(n * sizeof(float));
  float* y = malloc(classes * sizeof(float));
  if (!x || !y) return 1;
  for (size_t i = 0; i < n; ++i) x[i] = (float)((unsigned)((uint32_t)i * 2654435761u) % 1000u) / 500.0f - 1.0f;
  if (bimlp_run(model, x, shape, y, classes) != BIMLP_OK) {
    fprintf(stderr, "check_driver: %s\n", bimlp_last_error());
    return 1;
  }
  for (size_t i = 0; i < classes; ++i)
    if (!isfinite(y[i])) {
      fprintf(stderr, "check_driver: logit %zu of %s is not finite\n", i, path);
      return 1;
    }
  FILE* f = fopen(out_path, "wb");
  if (!f || fwrite(y, sizeof(float), classes, f) != classes || fclose(f)) {
    fprintf(stderr, "check_driver: cannot write %s\n", out_path);
    return 1;
  }
  printf("%s %s %lldx%lldx%lld: %zu logits\n", bimlp_isa(model), path, B, H, W, classes);
  free(x), free(y);
  bimlp_free(model);
  return 0;
}

/* a random token-conv case: shapes (maps smaller than the kernel included), inputs, taps, outputs */
#define TOKEN_CASE                                                                                 \
  const int B = between(1, 2), H = between(1, 12), W = between(1, 12), pairs = between(1, 2);       \
  const int Cs = pairs * between(1, 90), T = 2 * between(1, 4) + 1, axis = between(0, 1);          \
  const int M = B * H * W, N = Cs / pairs;                                                         \
  float* x = malloc(sizeof(float) * (size_t)(M * Cs));                                             \
  float* w = malloc(sizeof(float) * (size_t)(T * Cs));                                             \
  float* outs[NISA];                                                                               \
  for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(float) * (size_t)(M * N));                \
  fill(x, (size_t)(M * Cs)), fill(w, (size_t)(T * Cs));

/* out of every supported ISA must equal portable's bytes; returns the number of mismatches */
#define ALL_ISAS(call, outs, count)                                                              \
  for (int i = 0; i < NISA; ++i) {                                                               \
    if (!bimlp_testing_isa_supported(ISAS[i])) continue;                                         \
    const char* isa = ISAS[i];                                                                   \
    float* out = outs[i];                                                                        \
    if (call) {                                                                                  \
      fprintf(stderr, "%s: %s\n", isa, bimlp_last_error());                                      \
      return -1;                                                                                 \
    }                                                                                            \
    if (i && memcmp(out, outs[0], (count) * sizeof(float))) {                                    \
      fprintf(stderr, "MISMATCH %s vs portable: %s\n", isa, #call);                              \
      ++bad;                                                                                     \
    }                                                                                            \
  }

static int kernels(unsigned long long seed, int cases, int* isas_seen) {
  rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
  int bad = 0;
  *isas_seen = 0;
  for (int i = 0; i < NISA; ++i) *isas_seen += bimlp_testing_isa_supported(ISAS[i]);
  for (int it = 0; it < cases; ++it) {
    /* binary GEMM: K and N deliberately not multiples of 64 / 16 most of the time */
    {
      const int M = between(1, 30), K = it % 4 == 0 ? 64 * between(1, 6) : between(1, 1100), N = between(1, 70);
      float* x = malloc(sizeof(float) * (size_t)(M * K));
      float* w = malloc(sizeof(float) * (size_t)(N * K));
      float* outs[NISA];
      for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(float) * (size_t)(M * N));
      fill(x, (size_t)(M * K)), fill(w, (size_t)(N * K));
      ALL_ISAS(bimlp_testing_bgemm(isa, x, M, K, w, N, out), outs, (size_t)(M * N))
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          int ref = 0;
          for (int k = 0; k < K; ++k) ref += sgn(x[m * K + k]) * sgn(w[n * K + k]);
          if (outs[0][m * N + n] != (float)ref) {
            fprintf(stderr, "MISMATCH bgemm vs integer reference M=%d K=%d N=%d\n", M, K, N);
            ++bad, m = M, n = N;
          }
        }
      free(x), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* ternary GEMM: t(x) = round(clip(x, -1, 1)), values spread over [-1.5, 1.5] */
    {
      const int M = between(1, 30), K = it % 4 == 1 ? 64 * between(1, 6) : between(1, 1100), N = between(1, 70);
      float* x = malloc(sizeof(float) * (size_t)(M * K));
      float* w = malloc(sizeof(float) * (size_t)(N * K));
      float* outs[NISA];
      for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(float) * (size_t)(M * N));
      fill(x, (size_t)(M * K)), fill(w, (size_t)(N * K));
      for (int i = 0; i < M * K; ++i) x[i] *= 1.5f;
      ALL_ISAS(bimlp_testing_tgemm(isa, x, M, K, w, N, out), outs, (size_t)(M * N))
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          int ref = 0;
          for (int k = 0; k < K; ++k) {
            const float v = x[m * K + k];
            ref += (v < -0.5f ? -1 : v > 0.5f ? 1 : 0) * sgn(w[n * K + k]);
          }
          if (outs[0][m * N + n] != (float)ref) {
            fprintf(stderr, "MISMATCH tgemm vs integer reference M=%d K=%d N=%d\n", M, K, N);
            ++bad, m = M, n = N;
          }
        }
      free(x), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* token conv */
    {
      TOKEN_CASE
      ALL_ISAS(bimlp_testing_token_conv(isa, x, B, H, W, Cs, w, T, axis, pairs, out), outs, (size_t)(M * N))
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
          for (int xx = 0; xx < W; ++xx)
            for (int n = 0; n < N; ++n) {
              int ref = 0;
              for (int t = 0; t < T; ++t) {
                const int hh = axis ? h + t - T / 2 : h, ww = axis ? xx : xx + t - T / 2;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                for (int p = 0; p < pairs; ++p) {
                  const int c = n * pairs + p;
                  ref += sgn(x[((b * H + hh) * W + ww) * Cs + c]) * sgn(w[t * Cs + c]);
                }
              }
              if (outs[0][((b * H + h) * W + xx) * N + n] != (float)ref) {
                fprintf(stderr, "MISMATCH token conv vs integer reference\n");
                ++bad, b = B, h = H, xx = W, n = N;
              }
            }
      free(x), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* official mode's token conv: ternary planes against real-valued taps, summed in float (bit
       for bit across instruction sets; against a double reference within float rounding) */
    {
      TOKEN_CASE
      for (int i = 0; i < M * Cs; ++i) x[i] *= 1.5f;
      ALL_ISAS(bimlp_testing_token_conv_f32(isa, x, B, H, W, Cs, w, T, axis, pairs, out), outs, (size_t)(M * N))
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
          for (int xx = 0; xx < W; ++xx)
            for (int n = 0; n < N; ++n) {
              double ref = 0, mag = 0;
              for (int t = 0; t < T; ++t) {
                const int hh = axis ? h + t - T / 2 : h, ww = axis ? xx : xx + t - T / 2;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                for (int p = 0; p < pairs; ++p) {
                  const int c = n * pairs + p;
                  const float v = x[((b * H + hh) * W + ww) * Cs + c];
                  const double tv = v < -0.5f ? -1 : v > 0.5f ? 1 : 0;
                  ref += tv * w[t * Cs + c], mag += fabs(tv * w[t * Cs + c]);
                }
              }
              if (fabs(outs[0][((b * H + h) * W + xx) * N + n] - ref) > 1e-6 * (mag + 1)) {
                fprintf(stderr, "MISMATCH real-tap token conv vs double reference\n");
                ++bad, b = B, h = H, xx = W, n = N;
              }
            }
      free(x), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* binary 3x3 conv, stride 1 or 2, zero padding (either pad value the kernel may use) */
    {
      const int B = between(1, 2), H = between(1, 10), W = between(1, 10), C = between(1, 150), N = between(1, 40);
      const int stride = between(1, 2), pad = between(0, 1) ? 1 : -1;
      const int Ho = stride == 2 ? (H + 1) / 2 : H, Wo = stride == 2 ? (W + 1) / 2 : W, Mo = B * Ho * Wo;
      float* x = malloc(sizeof(float) * (size_t)(B * H * W * C));
      float* w = malloc(sizeof(float) * (size_t)(N * C * 9));
      float* outs[NISA];
      for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(float) * (size_t)(Mo * N));
      fill(x, (size_t)(B * H * W * C)), fill(w, (size_t)(N * C * 9));
      ALL_ISAS(bimlp_testing_bconv3x3(isa, x, B, H, W, C, w, N, stride, pad, out), outs, (size_t)(Mo * N))
      for (int m = 0; m < Mo; ++m)
        for (int n = 0; n < N; ++n) {
          const int b = m / (Ho * Wo), oy = (m / Wo) % Ho, ox = m % Wo;
          int ref = 0;
          for (int t = 0; t < 9; ++t) {
            const int iy = oy * stride - 1 + t / 3, ix = ox * stride - 1 + t % 3;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue; /* zero padding */
            for (int c = 0; c < C; ++c) ref += sgn(x[((b * H + iy) * W + ix) * C + c]) * sgn(w[(n * C + c) * 9 + t]);
          }
          if (outs[0][m * N + n] != (float)ref) {
            fprintf(stderr, "MISMATCH bconv3x3 vs integer reference\n");
            ++bad, m = Mo, n = N;
          }
        }
      free(x), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* the fused binary unit (the instruction set's one-pass kernel where it has one, else dots
     * + epilogue): outputs and packed sign bits bit for bit against portable's two passes */
    {
      const int M = between(1, 30), K = between(1, 700), N = 16 * between(1, 5) - (it % 3 == 0 ? between(0, 15) : 0);
      int kind = between(0, 2); /* no shortcut, identity, or a tile of 16 channels (N % 16 == 0) */
      if (kind == 2 && N % 16) kind = 1;
      const int Cr = kind == 2 ? 16 : N, scale = kind ? between(0, 1) : 0, KWn = (N + 63) / 64;
      float* x = malloc(sizeof(float) * (size_t)(M * K));
      float* w = malloc(sizeof(float) * (size_t)(N * K));
      float* params = malloc(sizeof(float) * (size_t)(9 * N));
      float* res = malloc(sizeof(float) * (size_t)(M * Cr));
      float* outs[NISA];
      uint64_t* bits[NISA];
      for (int i = 0; i < NISA; ++i)
        outs[i] = malloc(sizeof(float) * (size_t)(M * N)), bits[i] = calloc((size_t)(M * KWn), sizeof(uint64_t));
      fill(x, (size_t)(M * K)), fill(w, (size_t)(N * K)), fill(params, (size_t)(9 * N)), fill(res, (size_t)(M * Cr));
      for (int i = 0; i < NISA; ++i) {
        if (!bimlp_testing_isa_supported(ISAS[i])) continue;
        int used = 0;
        if (bimlp_testing_unit(ISAS[i], 1, x, M, K, w, N, params, kind, kind ? res : NULL, Cr, scale,
                               outs[i], bits[i], &used)) {
          fprintf(stderr, "%s: %s\n", ISAS[i], bimlp_last_error());
          return -1;
        }
        fused_runs[i] += used;
        if (i && (memcmp(outs[i], outs[0], sizeof(float) * (size_t)(M * N)) ||
                  memcmp(bits[i], bits[0], sizeof(uint64_t) * (size_t)(M * KWn)))) {
          fprintf(stderr, "MISMATCH %s vs portable: fused unit M=%d K=%d N=%d res %d scale %d\n", ISAS[i], M, K, N,
                  kind, scale);
          ++bad;
        }
      }
      free(x), free(w), free(params), free(res);
      for (int i = 0; i < NISA; ++i) free(outs[i]), free(bits[i]);
    }
    /* float GEMM: bit for bit across instruction sets */
    {
      const int M = between(1, 20), K = between(1, 300), N = between(1, 80);
      float* a = malloc(sizeof(float) * (size_t)(M * K));
      float* w = malloc(sizeof(float) * (size_t)(N * K));
      float* outs[NISA];
      for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(float) * (size_t)(M * N));
      fill(a, (size_t)(M * K)), fill(w, (size_t)(N * K));
      ALL_ISAS(bimlp_testing_sgemm(isa, a, M, K, w, N, out), outs, (size_t)(M * N))
      free(a), free(w);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
    /* sign packing with thresholds (words compared as floats' bytes: same size check) */
    {
      const int M = between(1, 6), C = between(1, 300), KW = (C + 63) / 64;
      float* x = malloc(sizeof(float) * (size_t)(M * C));
      float* thr = malloc(sizeof(float) * (size_t)C);
      float* outs[NISA];
      for (int i = 0; i < NISA; ++i) outs[i] = malloc(sizeof(uint64_t) * (size_t)(M * KW));
      fill(x, (size_t)(M * C)), fill(thr, (size_t)C);
      ALL_ISAS(bimlp_testing_pack(isa, x, M, C, thr, (uint64_t*)out), outs, (size_t)(2 * M * KW))
      free(x), free(thr);
      for (int i = 0; i < NISA; ++i) free(outs[i]);
    }
  }
  return bad;
}

int main(int argc, char** argv) {
  if (argc == 7 && !strcmp(argv[1], "run")) return run_model(argv[2], atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), argv[6]);
  if (argc == 2 && !strcmp(argv[1], "isas")) {
    for (int i = 0; i < NISA; ++i)
      if (bimlp_testing_isa_supported(ISAS[i])) printf("%s\n", ISAS[i]);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "kernels")) {
    int seen = 0;
    const int cases = atoi(argv[3]);
    const int bad = kernels(strtoull(argv[2], NULL, 10), cases, &seen);
    if (bad < 0) return 1;
    printf("kernels: %d random cases x 8 kernels, %d instruction sets (", cases, seen);
    for (int i = 0, first = 1; i < NISA; ++i)
      if (bimlp_testing_isa_supported(ISAS[i])) printf(first ? "%s" : " %s", ISAS[i]), first = 0;
    printf("): %d mismatches; one-pass unit kernel ran", bad);
    for (int i = 0; i < NISA; ++i)
      if (bimlp_testing_isa_supported(ISAS[i])) printf(" %s %d/%d", ISAS[i], fused_runs[i], cases);
    printf("\n");
    return bad != 0;
  }
  fprintf(stderr, "usage: %s run MODEL B H W OUT | isas | kernels SEED CASES\n", argv[0]);
  return 2;
}

// Native kernels of the packed BiMLP engine (CPU).
//
// Layout: activations are channels-last matrices (M = B*H*W rows, C columns, float32).
// Bit convention (shared with bimlp/deploy/pack.py): bit = 1 means the value is -1, bit = 0 means
// +1; channel c of a row lives in bit (c % 64) of 64-bit word (c / 64); bits past C are 0 in both
// activations and weights, so they never mismatch and dot = K - 2 * popcount(a XOR w) is exact.
//
// Binary 1x1 layers: XNOR-popcount GEMM, weights in panels of NR = 16 output channels
// (panel p, word k: 16 consecutive uint64, zero rows past N), with a fused per-channel epilogue
// (scale, bias, shortcut, PReLU, bias, residual mix). Three micro-kernels, chosen at run time:
// AVX-512 VPOPCNTDQ, AVX2 (nibble lookup popcount with vpshufb) and portable scalar popcount;
// the AVX-512 and AVX2 ones apply the epilogue in registers (AVX-512 buffers some rare tiles),
// the portable one from a buffer of popcounts.
// Spatial binary layers (depthwise and pair-grouped 1x7 / 7x1): int8 sign planes (±1), exact
// integer accumulation over the taps; padded taps are skipped, so they contribute 0.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#define BIMLP_X86 1
#include <immintrin.h>
#endif

namespace {

constexpr int NR = 16;  // output channels per weight panel

// ------------------------------------------------------------------------------------------
// ISA selection
enum Isa { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

bool isa_supported(int isa) {
  if (isa == ISA_PORTABLE) return true;
#ifdef BIMLP_X86
  __builtin_cpu_init();
  if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  if (isa == ISA_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
  return false;
}

int best_isa() {
  const char* env = std::getenv("BIMLP_ISA");
  if (env) {
    std::string s(env);
    int want = s == "avx512" ? ISA_AVX512 : s == "avx2" ? ISA_AVX2 : ISA_PORTABLE;
    if (isa_supported(want)) return want;
  }
  if (isa_supported(ISA_AVX512)) return ISA_AVX512;
  if (isa_supported(ISA_AVX2)) return ISA_AVX2;
  return ISA_PORTABLE;
}

int g_isa = -1;
int current_isa() {
  if (g_isa < 0) g_isa = best_isa();
  return g_isa;
}

// ------------------------------------------------------------------------------------------
// Epilogue: v = alpha[n] * dot + beta[n] + shortcut; y = prelu(v, slope[n]) + shift[n];
// out = base + gain * y + w1 * e1 + w2 * e2 (each term optional).
enum ResKind { RES_NONE = 0, RES_IDENTITY = 1, RES_TILE = 2, RES_GROUPMEAN = 3 };

struct Epilogue {
  const float* alpha = nullptr;
  const float* beta = nullptr;
  int res_kind = RES_NONE;
  const float* res = nullptr;   // shortcut source, row stride ld_res
  int64_t ld_res = 0;
  int res_channels = 0;         // tile: source channels (n % res_channels)
  int group = 1;                // group mean: consecutive channels per output
  const float* res_scale = nullptr;  // tile: prelu(res_scale * r + res_bias, res_slope) + res_shift
  const float* res_bias = nullptr;
  const float* res_slope = nullptr;
  const float* res_shift = nullptr;
  const float* slope = nullptr;  // null: no activation
  const float* shift = nullptr;
  const float* base = nullptr;   // rows of ld_out
  float gain = 1.f;
  const float* e1 = nullptr;
  float w1 = 0.f;
  const float* e2 = nullptr;
  float w2 = 0.f;
  float* out = nullptr;
  int64_t ld_out = 0;
  int K = 0;                     // true reduction length (dot = K - 2 * popcount)
  int N = 0;                     // output channels
};

inline float prelu(float v, float a) { return v >= 0.f ? v : a * v; }

// Element-wise loops are compiled twice (AVX2 and baseline) and picked by the loader (ifunc).
#if defined(BIMLP_X86) && defined(__GNUC__) && !defined(__clang__)
#define BIMLP_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define BIMLP_CLONES
#endif

// Finish `rows` full rows starting at row m0: dots[(m - m0) * ldd + n] holds popcounts
// (is_dot = false) or signed dots (is_dot = true) for all N columns. scratch: 2 * N floats.
BIMLP_CLONES void epilogue_rows(const Epilogue& e, int64_t m0, int64_t rows, const int32_t* dots,
                                int64_t ldd, bool is_dot, float* scratch) {
  const int N = e.N;
  float* __restrict v = scratch;
  float* __restrict t = scratch + N;
  const float* __restrict alpha = e.alpha;
  const float* __restrict beta = e.beta;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t m = m0 + i;
    const int32_t* __restrict d = dots + i * ldd;
    if (is_dot) {
      for (int n = 0; n < N; ++n) v[n] = alpha[n] * float(d[n]) + beta[n];
    } else {
      const int K = e.K;
      for (int n = 0; n < N; ++n) v[n] = alpha[n] * float(K - 2 * d[n]) + beta[n];
    }
    if (e.res_kind != RES_NONE) {
      const float* __restrict r = e.res + m * e.ld_res;
      const float* src = t;
      if (e.res_kind == RES_IDENTITY) {
        src = r;
      } else if (e.res_kind == RES_TILE) {
        const int C = e.res_channels;
        for (int k0 = 0; k0 < N; k0 += C) std::memcpy(t + k0, r, sizeof(float) * C);
      } else {  // mean of `group` consecutive channels
        const int G = e.group;
        for (int n = 0; n < N; ++n) {
          float acc = 0.f;
          for (int g = 0; g < G; ++g) acc += r[n * G + g];
          t[n] = acc / float(G);
        }
      }
      if (e.res_scale) {
        const float *sc = e.res_scale, *bi = e.res_bias, *sl = e.res_slope, *sh = e.res_shift;
        for (int n = 0; n < N; ++n) {
          const float q = sc[n] * src[n] + bi[n];
          t[n] = (q >= 0.f ? q : sl[n] * q) + sh[n];
        }
        src = t;
      }
      for (int n = 0; n < N; ++n) v[n] += src[n];
    }
    if (e.slope) {
      const float* __restrict sl = e.slope;
      const float* __restrict sh = e.shift;
      for (int n = 0; n < N; ++n) v[n] = (v[n] >= 0.f ? v[n] : sl[n] * v[n]) + sh[n];
    }
    float* __restrict o = e.out + m * e.ld_out;
    if (!e.base && !e.e1 && !e.e2 && e.gain == 1.f) {
      std::memcpy(o, v, sizeof(float) * N);
      continue;
    }
    const float gain = e.gain;
    for (int n = 0; n < N; ++n) v[n] = gain * v[n];
    if (e.e1) {
      const float* __restrict x1 = e.e1 + m * e.ld_out;
      const float w1 = e.w1;
      for (int n = 0; n < N; ++n) v[n] += w1 * x1[n];
    }
    if (e.e2) {
      const float* __restrict x2 = e.e2 + m * e.ld_out;
      const float w2 = e.w2;
      for (int n = 0; n < N; ++n) v[n] += w2 * x2[n];
    }
    if (e.base) {
      const float* bs = e.base + m * e.ld_out;  // may alias o (in-place residual update)
      for (int n = 0; n < N; ++n) o[n] = bs[n] + v[n];
    } else {
      std::memcpy(o, v, sizeof(float) * N);
    }
  }
}

// ------------------------------------------------------------------------------------------
// Packing: bits of (x + bias < 0) for P thresholds, optionally after a per-channel affine
// z = x * scale + shift (written to z_out).
void pack_row_portable(const float* x, const float* bias, int64_t C, uint64_t* dst) {
  const int64_t KW = (C + 63) / 64;
  for (int64_t w = 0; w < KW; ++w) {
    uint64_t word = 0;
    const int64_t c0 = w * 64, c1 = std::min<int64_t>(C, c0 + 64);
    for (int64_t c = c0; c < c1; ++c) word |= uint64_t((x[c] + bias[c]) < 0.f) << (c - c0);
    dst[w] = word;
  }
}

#ifdef BIMLP_X86
__attribute__((target("avx2"))) void pack_row_avx2(const float* x, const float* bias, int64_t C,
                                                   uint64_t* dst) {
  const int64_t KW = (C + 63) / 64;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t w = 0; w < KW; ++w) {
    const int64_t c0 = w * 64;
    if (c0 + 64 <= C) {
      uint64_t word = 0;
      for (int q = 0; q < 8; ++q) {
        const __m256 u = _mm256_add_ps(_mm256_loadu_ps(x + c0 + 8 * q), _mm256_loadu_ps(bias + c0 + 8 * q));
        const uint64_t mask = uint64_t(_mm256_movemask_ps(_mm256_cmp_ps(u, zero, _CMP_LT_OQ)));
        word |= mask << (8 * q);
      }
      dst[w] = word;
    } else {
      uint64_t word = 0;
      for (int64_t c = c0; c < C; ++c) word |= uint64_t((x[c] + bias[c]) < 0.f) << (c - c0);
      dst[w] = word;
    }
  }
}
#endif

void pack_row(const float* x, const float* bias, int64_t C, uint64_t* dst) {
#ifdef BIMLP_X86
  if (current_isa() >= ISA_AVX2) return pack_row_avx2(x, bias, C, dst);
#endif
  pack_row_portable(x, bias, C, dst);
}

BIMLP_CLONES void affine_row(const float* __restrict x, const float* __restrict s,
                             const float* __restrict t, float* __restrict z, int64_t C) {
  for (int64_t c = 0; c < C; ++c) z[c] = x[c] * s[c] + t[c];
}

// x: (M, C); biases: (P, C); out: (P, M, KW) int64. scale/shift (C) optional, z_out (M, C).
void pack_signs(const torch::Tensor& x, const torch::Tensor& biases, torch::Tensor& out,
                const c10::optional<torch::Tensor>& scale, const c10::optional<torch::Tensor>& shift,
                const c10::optional<torch::Tensor>& z_out) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == torch::kFloat, "x: (M, C) float32");
  const int64_t M = x.size(0), C = x.size(1), P = biases.size(0), KW = (C + 63) / 64;
  TORCH_CHECK(biases.dim() == 2 && biases.size(1) == C && biases.is_contiguous(), "biases: (P, C)");
  TORCH_CHECK(out.numel() >= P * M * KW && out.scalar_type() == torch::kLong && out.is_contiguous(),
              "out: (P, M, KW) int64");
  const bool affine = scale.has_value();
  TORCH_CHECK(!affine || (shift.has_value() && z_out.has_value()), "affine needs scale, shift, z_out");
  const float* xp = x.data_ptr<float>();
  const float* bp = biases.data_ptr<float>();
  uint64_t* op = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const float* sp = affine ? scale->data_ptr<float>() : nullptr;
  const float* tp = affine ? shift->data_ptr<float>() : nullptr;
  float* zp = affine ? z_out->data_ptr<float>() : nullptr;
  at::parallel_for(0, M, 64, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* row = xp + m * C;
      if (affine) {
        float* z = zp + m * C;
        affine_row(row, sp, tp, z, C);
        row = z;
      }
      for (int64_t p = 0; p < P; ++p) pack_row(row, bp + p * C, C, op + (p * M + m) * KW);
    }
  });
}

// ------------------------------------------------------------------------------------------
// XNOR-popcount micro-kernels: MR rows x NR columns, popcounts into pc[MR][NR].
template <int MR>
#ifdef BIMLP_X86
__attribute__((target("popcnt")))
#endif
void mk_portable(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int32_t* pc,
                 int64_t ldc) {
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      int32_t s = 0;
      for (int k = 0; k < KW; ++k) s += __builtin_popcountll(A[r * lda + k] ^ W[k * NR + j]);
      pc[r * ldc + j] = s;
    }
}

#ifdef BIMLP_X86
#define BIMLP_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vpopcntdq")))

// The AVX-512 core: popcounts of MR activation rows against one 16-column panel, as 64-bit counts
// in acc[r][0] (columns 0-7) and acc[r][1] (columns 8-15).
template <int MR>
BIMLP_AVX512 inline void xnor_counts512(const uint64_t* A, int64_t lda, const uint64_t* W, int KW,
                                        __m512i (&acc)[MR][2]) {
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int k = 0; k < KW; ++k) {
    const __m512i w0 = _mm512_loadu_si512(W + k * NR);
    const __m512i w1 = _mm512_loadu_si512(W + k * NR + 8);
    for (int r = 0; r < MR; ++r) {
      const __m512i a = _mm512_set1_epi64(static_cast<long long>(A[r * lda + k]));
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(a, w0)));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(a, w1)));
    }
  }
}

template <int MR>
BIMLP_AVX512 void mk_avx512(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int32_t* pc,
                            int64_t ldc) {
  __m512i acc[MR][2];
  xnor_counts512<MR>(A, lda, W, KW, acc);
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pc + r * ldc), _mm512_cvtepi64_epi32(acc[r][0]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pc + r * ldc + 8), _mm512_cvtepi64_epi32(acc[r][1]));
  }
}
#endif

#ifdef BIMLP_X86
// AVX-512 XNOR-popcount GEMM with the epilogue applied in registers: MR rows x one 16-column
// panel, popcounts never leave the registers. Each step is the same float operation, in the same
// order, as epilogue_rows (no FMA), so both paths give bit-identical outputs.
BIMLP_AVX512 inline __m512 prelu16(__m512 v, __m512 a) {
  return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, a);
}

BIMLP_AVX512 inline __m512 load16(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }

// The shortcut term for row m, columns [n0, n0 + 16) (before res_scale): identity, tile (source
// channels a multiple of 16) or mean of `group` consecutive channels (gathered).
BIMLP_AVX512 inline __m512 shortcut16(const Epilogue& e, int64_t m, int n0, __mmask16 k) {
  const float* r = e.res + m * e.ld_res;
  if (e.res_kind == RES_IDENTITY) return load16(r + n0, k);
  if (e.res_kind == RES_TILE) return load16(r + n0 % e.res_channels, k);
  const int G = e.group;
  if (G == 4 && k == __mmask16(0xffff)) {  // the channel MLP's 4C -> C: four loads, no gather
    const float* g0 = r + int64_t(n0) * 4;
    const __m512 v0 = _mm512_loadu_ps(g0), v1 = _mm512_loadu_ps(g0 + 16);
    const __m512 v2 = _mm512_loadu_ps(g0 + 32), v3 = _mm512_loadu_ps(g0 + 48);
    __m512 acc = _mm512_setzero_ps();
    for (int g = 0; g < 4; ++g) {  // lanes j: element 4j + g of the 64 (low half from v0:v1)
      const __m512i idx = _mm512_add_epi32(
          _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28), _mm512_set1_epi32(g));
      const __m512 lo = _mm512_permutex2var_ps(v0, idx, v1), hi = _mm512_permutex2var_ps(v2, idx, v3);
      acc = _mm512_add_ps(acc, _mm512_mask_blend_ps(__mmask16(0xff00), lo, hi));
    }
    return _mm512_div_ps(acc, _mm512_set1_ps(4.f));
  }
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(G));
  const float* base = r + int64_t(n0) * G;
  __m512 acc = _mm512_setzero_ps();
  for (int g = 0; g < G; ++g)
    acc = _mm512_add_ps(acc, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, base + g, 4));
  return _mm512_div_ps(acc, _mm512_set1_ps(float(G)));
}

// Columns [n0, n0 + 16) of row m (lanes past `k` unused): v = alpha * dot + beta, the epilogue's
// shortcut, activation and residual mix, stored to the output row.
BIMLP_AVX512 inline void finish16(const Epilogue& e, int64_t m, int n0, __mmask16 k, __m512 alpha,
                                  __m512 beta, __m512 dot) {
  __m512 v = _mm512_add_ps(_mm512_mul_ps(alpha, dot), beta);
  if (e.res_kind != RES_NONE) {
    __m512 t = shortcut16(e, m, n0, k);
    if (e.res_scale) {
      const __m512 q = _mm512_add_ps(_mm512_mul_ps(load16(e.res_scale + n0, k), t), load16(e.res_bias + n0, k));
      t = _mm512_add_ps(prelu16(q, load16(e.res_slope + n0, k)), load16(e.res_shift + n0, k));
    }
    v = _mm512_add_ps(v, t);
  }
  if (e.slope) v = _mm512_add_ps(prelu16(v, load16(e.slope + n0, k)), load16(e.shift + n0, k));
  const int64_t off = m * e.ld_out + n0;
  if (e.base || e.e1 || e.e2 || e.gain != 1.f) {
    v = _mm512_mul_ps(_mm512_set1_ps(e.gain), v);
    if (e.e1) v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(e.w1), load16(e.e1 + off, k)));
    if (e.e2) v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(e.w2), load16(e.e2 + off, k)));
    if (e.base) v = _mm512_add_ps(load16(e.base + off, k), v);
  }
  _mm512_mask_storeu_ps(e.out + off, k, v);
}

template <int MR>
BIMLP_AVX512 void mk_avx512_fused(const uint64_t* A, int64_t lda, const uint64_t* W, int KW,
                                  const Epilogue& e, int64_t m0, int n0) {
  __m512i acc[MR][2];
  xnor_counts512<MR>(A, lda, W, KW, acc);
  const int cols = std::min(NR, e.N - n0);
  const __mmask16 k = cols == NR ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __m512 alpha = load16(e.alpha + n0, k), beta = load16(e.beta + n0, k);
  const __m512i K = _mm512_set1_epi32(e.K);
  // the low 32 bits of each 64-bit count (counts < 2^32), columns 0-7 from acc[r][0], 8-15 from [1]
  const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int r = 0; r < MR; ++r) {
    const __m512i pc = _mm512_permutex2var_epi32(acc[r][0], low_halves, acc[r][1]);
    const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(K, _mm512_slli_epi32(pc, 1)));
    finish16(e, m0 + r, n0, k, alpha, beta, dot);
  }
}

// Rows split evenly over the threads; each thread walks its rows in blocks of MB whose packed
// bits stay in L1 and outputs in L2 while every weight panel passes over them, MR rows at a time.
void bgemm_avx512_fused(const uint64_t* A, int64_t M, int KW, const uint64_t* Wp, int N,
                        const Epilogue& e) {
  constexpr int MR = 6;
  const int panels = (N + NR - 1) / NR;
  // a block's bits ~32 KB (L1), its outputs ~128 KB (L2)
  const int64_t MB = std::max<int64_t>(MR, std::min(4096 / std::max(KW, 1), 32768 / N) / MR * MR);
  const int64_t groups = (M + MR - 1) / MR;
  const int64_t per_task = std::max<int64_t>(1, std::min<int64_t>(MB / MR, (groups + at::get_num_threads() - 1) / at::get_num_threads()));
  at::parallel_for(0, groups, per_task, [&](int64_t g0, int64_t g1) {
    for (int64_t b0 = g0 * MR; b0 < std::min(M, g1 * MR); b0 += MB) {
      const int64_t b1 = std::min({M, g1 * MR, b0 + MB});
      for (int p = 0; p < panels; ++p) {
        const uint64_t* W = Wp + int64_t(p) * KW * NR;
        int64_t m = b0;
        for (; m + MR <= b1; m += MR) mk_avx512_fused<MR>(A + m * KW, KW, W, KW, e, m, p * NR);
        for (; m < b1; ++m) mk_avx512_fused<1>(A + m * KW, KW, W, KW, e, m, p * NR);
      }
    }
  });
}
#endif

#ifdef BIMLP_X86
// AVX2 versions of the register epilogue and the fused GEMM: 8 columns per register, masked
// loads and stores for the columns past N. As on AVX-512, each step is the same float operation,
// in the same order, as epilogue_rows (no FMA), so every instruction set gives the same bits.
#define BIMLP_AVX2 __attribute__((target("avx2,popcnt")))
#define BIMLP_AVX2_INLINE __attribute__((target("avx2,popcnt"), always_inline)) inline

// The steps of an epilogue as compile-time flags of the AVX2 loops: the shortcut kind (RES_*, in
// the low two bits; a tile of a multiple of 8 source channels or a mean of 4 channels), whether
// it has res_scale (and its bias, slope, shift), an activation, a residual mix (gain, e1, e2,
// base). The combinations the engine uses get loops that test nothing per column; EPI_ANY reads
// the Epilogue's fields at run time and serves every other epilogue.
enum EpiFlags : int { EPI_SCALE = 4, EPI_ACT = 8, EPI_MIX = 16, EPI_ANY = 32 };

int epi_flags(const Epilogue& e) {
  if (e.res_kind == RES_TILE && e.res_channels % 8 != 0) return EPI_ANY;
  if (e.res_kind == RES_GROUPMEAN && e.group != 4) return EPI_ANY;
  return e.res_kind | (e.res_scale ? EPI_SCALE : 0) | (e.slope ? EPI_ACT : 0) |
         (e.base || e.e1 || e.e2 || e.gain != 1.f ? EPI_MIX : 0);
}

template <int F>
using Flags = std::integral_constant<int, F>;

// fn(Flags<F>()) with F = epi_flags(e) where that combination has its own loops: the engine's
// token convs and 1x1 layers (front units, projection, channel MLPs and the re-weighting MLP, with
// and without uni_shortcut), all with an activation, and the plain scaled dot; EPI_ANY otherwise.
template <class Fn>
void with_epi_flags(const Epilogue& e, Fn&& fn) {
  constexpr int ACT = EPI_ACT, SCALE = EPI_SCALE, MIX = EPI_MIX;
  switch (epi_flags(e)) {
    case RES_NONE: return fn(Flags<RES_NONE>());
    case RES_NONE | ACT: return fn(Flags<RES_NONE | ACT>());
    case RES_NONE | ACT | MIX: return fn(Flags<RES_NONE | ACT | MIX>());
    case RES_IDENTITY | ACT: return fn(Flags<RES_IDENTITY | ACT>());
    case RES_IDENTITY | ACT | MIX: return fn(Flags<RES_IDENTITY | ACT | MIX>());
    case RES_TILE | ACT: return fn(Flags<RES_TILE | ACT>());
    case RES_TILE | SCALE | ACT: return fn(Flags<RES_TILE | SCALE | ACT>());
    case RES_GROUPMEAN | SCALE | ACT: return fn(Flags<RES_GROUPMEAN | SCALE | ACT>());
    case RES_GROUPMEAN | ACT | MIX: return fn(Flags<RES_GROUPMEAN | ACT | MIX>());
    default: return fn(Flags<EPI_ANY>());
  }
}

// Lanes [0, cols) of 8 set: the mask of _mm256_maskload_ps / _mm256_maskstore_ps.
BIMLP_AVX2_INLINE __m256i lanes8(int cols) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 floats at p (FULL), or the lanes of mask k with zeros in the others (masked lanes are not read).
template <bool FULL>
BIMLP_AVX2_INLINE __m256 load8(const float* p, __m256i k) {
  return FULL ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, k);
}

BIMLP_AVX2_INLINE __m256 prelu8(__m256 v, __m256 a) {
  return _mm256_blendv_ps(v, _mm256_mul_ps(v, a), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
}

// The rare shortcuts, lane by lane into t[0, 8) (zeros past cols): a tile from a source whose
// channel count is not a multiple of 8 (tile = true, from source column tc on), or the sums, not
// yet divided, of `group` consecutive channels.
__attribute__((noinline)) void shortcut_lanes(bool tile, int channels, int group, const float* r,
                                              int n0, int tc, int cols, float* t) {
  for (int j = 0; j < 8; ++j) t[j] = 0.f;
  for (int j = 0; j < cols; ++j) {
    if (tile) {
      t[j] = r[(tc + j) % channels];
    } else {
      float acc = 0.f;
      for (int g = 0; g < group; ++g) acc += r[int64_t(n0 + j) * group + g];
      t[j] = acc;
    }
  }
}

// The shortcut term of columns [n0, n0 + cols) (before res_scale), r: the shortcut source's row,
// tc = n0 % res_channels for a tile (from the caller, to keep divisions out of the inner loops).
// Identity, a tile of a multiple of 8 source channels and the mean of 4 consecutive channels (the
// channel MLP's 4C -> C) stay in registers; other tiles and group sizes go lane by lane.
template <int F, bool FULL>
BIMLP_AVX2_INLINE __m256 shortcut8(const Epilogue& e, const float* r, int n0, int tc, int cols, __m256i k) {
  constexpr bool any = F == EPI_ANY;
  const int kind = any ? e.res_kind : F & 3;
  if (kind == RES_IDENTITY) return load8<FULL>(r + n0, k);
  if (kind == RES_TILE && (!any || e.res_channels % 8 == 0)) return load8<FULL>(r + tc, k);
  const int G = any ? e.group : 4;
  if (FULL && kind == RES_GROUPMEAN && G == 4) {
    // v[i] holds the 4 channels of outputs 2i (low 128 bits) and 2i + 1 (high 128 bits); a 4x4
    // transpose in each half puts channel g of outputs 0, 2, 4, 6 | 1, 3, 5, 7 in q[g]
    const float* g0 = r + int64_t(n0) * 4;
    const __m256 v0 = _mm256_loadu_ps(g0), v1 = _mm256_loadu_ps(g0 + 8);
    const __m256 v2 = _mm256_loadu_ps(g0 + 16), v3 = _mm256_loadu_ps(g0 + 24);
    const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    const __m256 q0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 q1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 q2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    const __m256 q3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    // the scalar order ((0 + r0) + r1) + r2) + r3 (0 + r0 turns -0 into +0, as there), then the
    // lanes (outputs 0, 2, 4, 6, 1, 3, 5, 7) put in order
    __m256 acc = _mm256_add_ps(_mm256_setzero_ps(), q0);
    acc = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc, q1), q2), q3);
    acc = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    return _mm256_div_ps(acc, _mm256_set1_ps(4.f));
  }
  alignas(32) float t[8];
  shortcut_lanes(kind == RES_TILE, e.res_channels, G, r, n0, tc, cols, t);
  return kind == RES_TILE ? _mm256_load_ps(t) : _mm256_div_ps(_mm256_load_ps(t), _mm256_set1_ps(float(G)));
}

// Columns [n0, n0 + 8) of row m (FULL), or those of mask k (the first `cols`): v = alpha * dot +
// beta, the epilogue's shortcut (tc: see shortcut8), activation and residual mix, stored to the
// output row. The steps are those of flags F (EPI_ANY: of the Epilogue's fields). Callers pass a
// local copy of the Epilogue, so that its fields are not reloaded after each store.
template <int F, bool FULL>
BIMLP_AVX2_INLINE void finish8(const Epilogue& e, int64_t m, int n0, int tc, int cols, __m256i k,
                               __m256 alpha, __m256 beta, __m256 dot) {
  constexpr bool any = F == EPI_ANY;
  __m256 v = _mm256_add_ps(_mm256_mul_ps(alpha, dot), beta);
  if (any ? e.res_kind != RES_NONE : (F & 3) != RES_NONE) {
    __m256 t = shortcut8<F, FULL>(e, e.res + m * e.ld_res, n0, tc, cols, k);
    if (any ? e.res_scale != nullptr : (F & EPI_SCALE) != 0) {
      const __m256 q = _mm256_add_ps(_mm256_mul_ps(load8<FULL>(e.res_scale + n0, k), t),
                                     load8<FULL>(e.res_bias + n0, k));
      t = _mm256_add_ps(prelu8(q, load8<FULL>(e.res_slope + n0, k)), load8<FULL>(e.res_shift + n0, k));
    }
    v = _mm256_add_ps(v, t);
  }
  if (any ? e.slope != nullptr : (F & EPI_ACT) != 0)
    v = _mm256_add_ps(prelu8(v, load8<FULL>(e.slope + n0, k)), load8<FULL>(e.shift + n0, k));
  const int64_t off = m * e.ld_out + n0;
  if (any ? (e.base || e.e1 || e.e2 || e.gain != 1.f) : (F & EPI_MIX) != 0) {
    v = _mm256_mul_ps(_mm256_set1_ps(e.gain), v);
    if (e.e1) v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(e.w1), load8<FULL>(e.e1 + off, k)));
    if (e.e2) v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(e.w2), load8<FULL>(e.e2 + off, k)));
    if (e.base) v = _mm256_add_ps(load8<FULL>(e.base + off, k), v);
  }
  if (FULL) _mm256_storeu_ps(e.out + off, v);
  else _mm256_maskstore_ps(e.out + off, k, v);
}

// MR rows x one 16-column panel. Popcounts with the nibble lookup (vpshufb) into byte counters,
// which hold at most 31 words (31 * 8 = 248), then summed per column by vpsadbw; columns 4j to
// 4j + 3 are the 64-bit lanes of tot[r][j]. The epilogue (flags F) is applied in registers; tc:
// the tile shortcut's source columns of the panel's two halves.
template <int F, int MR>
BIMLP_AVX2_INLINE void mk_avx2_fused(const uint64_t* A, int64_t lda, const uint64_t* W, int KW,
                                     const Epilogue& e, int64_t m0, int n0, const int tc[2]) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i tot[MR][4];
  for (int k0 = 0; k0 < KW; k0 += 31) {
    const int k1 = std::min(KW, k0 + 31);
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] = zero;
    for (int k = k0; k < k1; ++k) {
      for (int r = 0; r < MR; ++r) {
        const __m256i a = _mm256_set1_epi64x(static_cast<long long>(A[r * lda + k]));
        for (int j = 0; j < 4; ++j) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + k * NR + 4 * j));
          const __m256i x = _mm256_xor_si256(a, w);
          const __m256i lo = _mm256_and_si256(x, low);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
          acc[r][j] = _mm256_add_epi8(
              acc[r][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi)));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) {
        const __m256i s = _mm256_sad_epu8(acc[r][j], zero);
        tot[r][j] = k0 == 0 ? s : _mm256_add_epi64(tot[r][j], s);
      }
  }
  const __m256i K = _mm256_set1_epi32(e.K);
  __m256 dot[MR][2];
  for (int r = 0; r < MR; ++r)
    for (int h = 0; h < 2; ++h) {
      // columns 0-3 (64-bit lanes of tot[r][2h]) and 4-7 (tot[r][2h + 1]) of this half panel to
      // 32-bit lanes: interleaved as 0, 4, 1, 5 | 2, 6, 3, 7, then put in order
      const __m256i mixed = _mm256_blend_epi32(tot[r][2 * h], _mm256_slli_epi64(tot[r][2 * h + 1], 32), 0xAA);
      const __m256i pc = _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
      dot[r][h] = _mm256_cvtepi32_ps(_mm256_sub_epi32(K, _mm256_slli_epi32(pc, 1)));
    }
  const int cols = std::min(NR, e.N - n0);
  if (cols == NR) {
    const __m256i all = _mm256_set1_epi32(-1);
    for (int h = 0; h < 2; ++h) {
      const __m256 alpha = _mm256_loadu_ps(e.alpha + n0 + 8 * h), beta = _mm256_loadu_ps(e.beta + n0 + 8 * h);
      for (int r = 0; r < MR; ++r)
        finish8<F, true>(e, m0 + r, n0 + 8 * h, tc[h], 8, all, alpha, beta, dot[r][h]);
    }
  } else {  // the last panel: columns past N masked
    for (int h = 0; h < 2 && 8 * h < cols; ++h) {
      const int c = std::min(8, cols - 8 * h);
      const __m256i k = lanes8(c);
      const __m256 alpha = _mm256_maskload_ps(e.alpha + n0 + 8 * h, k);
      const __m256 beta = _mm256_maskload_ps(e.beta + n0 + 8 * h, k);
      for (int r = 0; r < MR; ++r)
        finish8<F, false>(e, m0 + r, n0 + 8 * h, tc[h], c, k, alpha, beta, dot[r][h]);
    }
  }
}

constexpr int MR_AVX2 = 2;  // rows per AVX2 micro-kernel

// Rows [b0, b1), MR_AVX2 at a time, each through every weight panel, so that output rows are
// written front to back (which the hardware prefetchers follow; panel by panel over a block of
// rows, the stores jump a row apart and miss the cache when the outputs are cold). The panels
// are re-read from L1/L2 for every row group, cheaply next to the popcounts. Epilogue flags F; a
// local copy of the epilogue (see finish8).
template <int F>
BIMLP_AVX2 void bgemm_avx2_rows(const uint64_t* A, int KW, const uint64_t* Wp, const Epilogue& epi,
                                int64_t b0, int64_t b1) {
  const Epilogue e = epi;
  const int panels = (e.N + NR - 1) / NR;
  const bool tile = (F == EPI_ANY ? e.res_kind : F & 3) == RES_TILE;
  const int tc1 = tile ? 8 % e.res_channels : 0;
  for (int64_t m = b0; m < b1; m += MR_AVX2) {
    int tc[2] = {0, tc1};  // tile: the source columns of the panel's two halves
    for (int p = 0; p < panels; ++p) {
      const uint64_t* W = Wp + int64_t(p) * KW * NR;
      if (m + MR_AVX2 <= b1) mk_avx2_fused<F, MR_AVX2>(A + m * KW, KW, W, KW, e, m, p * NR, tc);
      else
        for (int64_t r = m; r < b1; ++r) mk_avx2_fused<F, 1>(A + r * KW, KW, W, KW, e, r, p * NR, tc);
      if (tile)
        for (int h = 0; h < 2; ++h)
          for (tc[h] += NR; tc[h] >= e.res_channels;) tc[h] -= e.res_channels;
    }
  }
}

// Row groups split evenly over the threads.
void bgemm_avx2_fused(const uint64_t* A, int64_t M, int KW, const uint64_t* Wp, const Epilogue& e) {
  constexpr int MR = MR_AVX2;
  const int64_t groups = (M + MR - 1) / MR;
  const int64_t per_task = std::max<int64_t>(1, (groups + at::get_num_threads() - 1) / at::get_num_threads());
  with_epi_flags(e, [&](auto flags) {
    at::parallel_for(0, groups, per_task, [&](int64_t g0, int64_t g1) {
      bgemm_avx2_rows<decltype(flags)::value>(A, KW, Wp, e, g0 * MR, std::min(M, g1 * MR));
    });
  });
}
#endif

using Micro = void (*)(const uint64_t*, int64_t, const uint64_t*, int, int32_t*, int64_t);

struct Kernels {
  int mr;
  Micro full;
  Micro one;
};

Kernels kernels_for(int isa) {
#ifdef BIMLP_X86
  if (isa == ISA_AVX512) return {6, mk_avx512<6>, mk_avx512<1>};
#endif
  return {4, mk_portable<4>, mk_portable<1>};
}

// A: (M, KW) packed activations; Wp: panels (ceil(N / NR), KW, NR); out via the epilogue.
// Rows are processed in blocks: popcounts of a block for all N columns go to a small int32
// buffer (kept in L1/L2), then the epilogue finishes the block's rows while they are hot.
void bgemm_impl(const uint64_t* A, int64_t M, int KW, const uint64_t* Wp, int N, const Epilogue& e) {
#ifdef BIMLP_X86
  if (current_isa() == ISA_AVX512 && (e.res_kind != RES_TILE || e.res_channels % NR == 0))
    return bgemm_avx512_fused(A, M, KW, Wp, N, e);
  if (current_isa() == ISA_AVX2) return bgemm_avx2_fused(A, M, KW, Wp, e);
#endif
  const Kernels ker = kernels_for(current_isa());
  const int panels = (N + NR - 1) / NR;
  const int64_t ldd = int64_t(panels) * NR;
  int64_t MB = std::max<int64_t>(1, 16384 / ldd) * ker.mr;  // ~64 KB of popcounts per block
  MB = std::min<int64_t>(MB, 120);
  const int64_t blocks = (M + MB - 1) / MB;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int32_t> dots(MB * ldd);
    std::vector<float> scratch(2 * ldd);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * MB, r1 = std::min(M, r0 + MB);
      for (int p = 0; p < panels; ++p) {
        const uint64_t* W = Wp + int64_t(p) * KW * NR;
        int32_t* d = dots.data() + p * NR;
        int64_t m = r0;
        for (; m + ker.mr <= r1; m += ker.mr) ker.full(A + m * KW, KW, W, KW, d + (m - r0) * ldd, ldd);
        for (; m < r1; ++m) ker.one(A + m * KW, KW, W, KW, d + (m - r0) * ldd, ldd);
      }
      epilogue_rows(e, r0, r1 - r0, dots.data(), ldd, false, scratch.data());
    }
  });
}

const float* opt_ptr(const c10::optional<torch::Tensor>& t) {
  return t.has_value() ? t->data_ptr<float>() : nullptr;
}

Epilogue make_epilogue(const torch::Tensor& alpha, const torch::Tensor& beta, int64_t res_kind,
                       const c10::optional<torch::Tensor>& res, int64_t group,
                       const c10::optional<torch::Tensor>& res_params,
                       const c10::optional<torch::Tensor>& act,
                       const c10::optional<torch::Tensor>& base, double gain,
                       const c10::optional<torch::Tensor>& e1, double w1,
                       const c10::optional<torch::Tensor>& e2, double w2, torch::Tensor& out) {
  const int64_t N = alpha.numel();
  TORCH_CHECK(out.dim() == 2 && out.size(1) == N && out.is_contiguous() &&
                  out.scalar_type() == torch::kFloat, "out: (M, N) float32");
  TORCH_CHECK(beta.numel() == N, "beta must have N entries");
  Epilogue e;
  e.alpha = alpha.data_ptr<float>();
  e.beta = beta.data_ptr<float>();
  e.res_kind = int(res_kind);
  if (res_kind != RES_NONE) {
    TORCH_CHECK(res.has_value() && res->dim() == 2 && res->is_contiguous() &&
                    res->size(0) == out.size(0), "shortcut source: (M, C) contiguous");
    e.res = res->data_ptr<float>();
    e.ld_res = res->size(1);
    e.res_channels = int(res->size(1));
    e.group = int(group);
    if (res_kind == RES_IDENTITY) TORCH_CHECK(res->size(1) == N, "identity shortcut needs N channels");
    if (res_kind == RES_GROUPMEAN) TORCH_CHECK(res->size(1) == N * group, "group mean: C = N * group");
    if (res_kind == RES_TILE) TORCH_CHECK(N % res->size(1) == 0, "tile: N must be a multiple of C");
    if (res_params.has_value()) {
      TORCH_CHECK(res_params->numel() == 4 * N, "shortcut params: (4, N)");
      const float* rp = res_params->data_ptr<float>();
      e.res_scale = rp;
      e.res_bias = rp + N;
      e.res_slope = rp + 2 * N;
      e.res_shift = rp + 3 * N;
    }
  }
  if (act.has_value()) {
    TORCH_CHECK(act->numel() == 2 * N, "act: (2, N) slope and shift");
    e.slope = act->data_ptr<float>();
    e.shift = e.slope + N;
  }
  e.base = opt_ptr(base);
  e.gain = float(gain);
  e.e1 = opt_ptr(e1);
  e.w1 = float(w1);
  e.e2 = opt_ptr(e2);
  e.w2 = float(w2);
  for (const auto* t : {&base, &e1, &e2})
    if (t->has_value()) TORCH_CHECK((*t)->sizes() == out.sizes() && (*t)->is_contiguous(), "mix terms: (M, N)");
  e.out = out.data_ptr<float>();
  e.ld_out = N;
  e.N = int(N);
  return e;
}

// ------------------------------------------------------------------------------------------
// Python-facing ops

// weight bits (N, KW) int64 -> panels (ceil(N/NR), KW, NR), zero rows past N.
torch::Tensor make_panels(const torch::Tensor& wbits) {
  TORCH_CHECK(wbits.dim() == 2 && wbits.scalar_type() == torch::kLong, "wbits: (N, KW) int64");
  const int64_t N = wbits.size(0), KW = wbits.size(1), P = (N + NR - 1) / NR;
  auto w = wbits.contiguous();
  auto out = torch::zeros({P, KW, NR}, wbits.options());
  const int64_t* s = w.data_ptr<int64_t>();
  int64_t* d = out.data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < KW; ++k) d[((n / NR) * KW + k) * NR + n % NR] = s[n * KW + k];
  return out;
}

void bgemm(const torch::Tensor& abits, const torch::Tensor& panels, int64_t K,
           const torch::Tensor& alpha, const torch::Tensor& beta, int64_t res_kind,
           const c10::optional<torch::Tensor>& res, int64_t group,
           const c10::optional<torch::Tensor>& res_params, const c10::optional<torch::Tensor>& act,
           const c10::optional<torch::Tensor>& base, double gain,
           const c10::optional<torch::Tensor>& e1, double w1, const c10::optional<torch::Tensor>& e2,
           double w2, torch::Tensor out) {
  TORCH_CHECK(abits.dim() == 2 && abits.is_contiguous() && abits.scalar_type() == torch::kLong,
              "abits: (M, KW) int64");
  const int64_t M = abits.size(0), KW = abits.size(1);
  TORCH_CHECK(KW == (K + 63) / 64, "abits words do not match K");
  TORCH_CHECK(panels.dim() == 3 && panels.size(1) == KW && panels.size(2) == NR, "panels: (P, KW, 16)");
  TORCH_CHECK(out.size(0) == M, "out rows must equal abits rows");
  Epilogue e = make_epilogue(alpha, beta, res_kind, res, group, res_params, act, base, gain, e1, w1,
                             e2, w2, out);
  TORCH_CHECK(panels.size(0) * NR >= out.size(1), "not enough weight panels");
  e.K = int(K);
  bgemm_impl(reinterpret_cast<const uint64_t*>(abits.data_ptr<int64_t>()), M, int(KW),
             reinterpret_cast<const uint64_t*>(panels.data_ptr<int64_t>()), int(out.size(1)), e);
}

// ------------------------------------------------------------------------------------------
// Spatial binary conv (1x7 along W or 7x1 along H, padding 3), int8 sign planes.
// planes: (B, H, W, Cs) int8 ±1; weights: (T, Cs) int8 ±1; pairs = Cs / N (1 depthwise, 2 for
// the pair-grouped 2C -> C conv whose output k reads channels 2k and 2k + 1).
BIMLP_CLONES void accumulate_portable(int8_t* acc, const int8_t* s, const int8_t* w, int64_t Cs) {
  for (int64_t c = 0; c < Cs; ++c) acc[c] = int8_t(acc[c] + s[c] * w[c]);
}

// The taps of output pixel x of image row (b, h) that read inside the image, [t0, t1) (padded
// taps contribute 0), the plane offset between neighbouring taps and the address of tap t0's
// channel 0 in the (B, H, W, Cs) sign planes.
struct TapRange {
  int64_t t0, t1, step;
  const int8_t* first;
};

inline TapRange tap_range(const int8_t* sp, int64_t b, int64_t h, int64_t x, int64_t H, int64_t W,
                          int64_t Cs, int64_t T, int axis) {
  const int64_t pad = T / 2, pos = axis == 0 ? x : h, len = axis == 0 ? W : H;
  TapRange r;
  r.t0 = std::max<int64_t>(0, pad - pos);
  r.t1 = std::min<int64_t>(T, len + pad - pos);
  r.step = axis == 0 ? Cs : W * Cs;
  r.first = sp + ((b * H + h) * W + x) * Cs + (r.t0 - pad) * r.step;
  return r;
}

#ifdef BIMLP_X86
// AVX-512 token conv: 64 channels per register, the taps' products (s XOR w) | 1 = s * w for
// s, w in {-1, +1} accumulated in int8 registers (|sum| <= 7), pairs summed by maddubs, and the
// epilogue applied in registers (finish16).
BIMLP_AVX512 void sconv_row_avx512(const int8_t* sp, const int8_t* wp, int64_t b, int64_t h,
                                   int64_t H, int64_t W, int64_t Cs, int64_t T, int axis, int pairs,
                                   const Epilogue& e) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t x = 0; x < W; ++x) {
    const int64_t m = (b * H + h) * W + x;
    const TapRange tr = tap_range(sp, b, h, x, H, W, Cs, T, axis);
    const int64_t t0 = tr.t0, t1 = tr.t1, step = tr.step;
    const int8_t* first = tr.first;
    for (int64_t c0 = 0; c0 < Cs; c0 += 64) {
      const int64_t cn = std::min<int64_t>(64, Cs - c0);
      const __mmask64 km = cn == 64 ? ~__mmask64(0) : ((__mmask64(1) << cn) - 1);
      __m512i acc = _mm512_setzero_si512();
      for (int64_t t = t0; t < t1; ++t) {
        const __m512i sv = _mm512_maskz_loadu_epi8(km, first + (t - t0) * step + c0);
        const __m512i wv = _mm512_maskz_loadu_epi8(km, wp + t * Cs + c0);
        acc = _mm512_add_epi8(acc, _mm512_ternarylogic_epi32(sv, wv, ones, 0xBE));  // (a ^ b) | c
      }
      if (pairs == 2) {  // outputs c0/2 .. c0/2 + 31: acc[2n] + acc[2n + 1] as int16
        const __m512i s16 = _mm512_maddubs_epi16(ones, acc);
        for (int q = 0; q < 2; ++q) {
          const int n0 = int(c0 / 2) + 16 * q;
          if (n0 >= e.N) break;
          const int cols = std::min(16, e.N - n0);
          const __mmask16 k = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
          const __m512i d = _mm512_cvtepi16_epi32(q == 0 ? _mm512_castsi512_si256(s16)
                                                         : _mm512_extracti64x4_epi64(s16, 1));
          finish16(e, m, n0, k, load16(e.alpha + n0, k), load16(e.beta + n0, k), _mm512_cvtepi32_ps(d));
        }
      } else {
        for (int q = 0; q < 4; ++q) {
          const int n0 = int(c0) + 16 * q;
          if (n0 >= e.N) break;
          const int cols = std::min(16, e.N - n0);
          const __mmask16 k = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
          const __m128i part = q == 0 ? _mm512_castsi512_si128(acc)
                             : q == 1 ? _mm512_extracti32x4_epi32(acc, 1)
                             : q == 2 ? _mm512_extracti32x4_epi32(acc, 2)
                                      : _mm512_extracti32x4_epi32(acc, 3);
          finish16(e, m, n0, k, load16(e.alpha + n0, k), load16(e.beta + n0, k),
                   _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(part)));
        }
      }
    }
  }
}

BIMLP_AVX2_INLINE __m256i load32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// AVX2 token conv: 32 channels per register, the taps' products s * w = vpsignb(s, w) for s, w in
// {-1, +1} accumulated in int8 registers (|sum| <= 7), pairs summed by maddubs, and the epilogue
// applied in registers (finish8, epilogue flags F).
template <int PAIRS, int F>
BIMLP_AVX2 void sconv_row_avx2(const int8_t* sp, const int8_t* wp, int64_t b, int64_t h, int64_t H,
                               int64_t W, int64_t Cs, int64_t T, int axis, const Epilogue& epi) {
  const Epilogue e = epi;  // a local copy: see finish8
  const int64_t full = Cs / 32 * 32;  // channels in whole registers
  const bool tile = (F == EPI_ANY ? e.res_kind : F & 3) == RES_TILE;
  const __m256i ones = _mm256_set1_epi8(1);
  const __m256i all = _mm256_set1_epi32(-1);
  for (int64_t x = 0; x < W; ++x) {
    const int64_t m = (b * H + h) * W + x;
    const TapRange tr = tap_range(sp, b, h, x, H, W, Cs, T, axis);
    const int64_t t0 = tr.t0, t1 = tr.t1, step = tr.step;
    const int8_t* first = tr.first;
    for (int64_t c0 = 0; c0 < Cs; c0 += 32) {
      __m256i acc = _mm256_setzero_si256();
      if (c0 < full) {
        for (int64_t t = t0; t < t1; ++t)
          acc = _mm256_add_epi8(
              acc, _mm256_sign_epi8(load32(first + (t - t0) * step + c0), load32(wp + t * Cs + c0)));
      } else {  // the last Cs % 32 channels: scalar sums, zeros past Cs
        alignas(32) int8_t tail[32] = {};
        for (int64_t t = t0; t < t1; ++t) {
          const int8_t* sv = first + (t - t0) * step + c0;
          const int8_t* wv = wp + t * Cs + c0;
          for (int64_t c = 0; c < Cs - c0; ++c) tail[c] = int8_t(tail[c] + sv[c] * wv[c]);
        }
        acc = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail));
      }
      // d[q]: the sums of output channels c0 / PAIRS + 8q + (0 .. 7)
      constexpr int groups = 4 / PAIRS;
      __m256i d[groups];
      if (PAIRS == 2) {  // acc[2n] + acc[2n + 1] as int16, in order
        const __m256i s16 = _mm256_maddubs_epi16(ones, acc);
        d[0] = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16));
        d[groups - 1] = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16, 1));
      } else {
        const __m128i lo = _mm256_castsi256_si128(acc), hi = _mm256_extracti128_si256(acc, 1);
        d[0] = _mm256_cvtepi8_epi32(lo);
        d[1 % groups] = _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8));
        d[2 % groups] = _mm256_cvtepi8_epi32(hi);
        d[3 % groups] = _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8));
      }
      for (int q = 0; q < groups; ++q) {
        const int n0 = int(c0 / PAIRS) + 8 * q;
        const int tc = tile ? n0 % e.res_channels : 0;
        if (n0 + 8 <= e.N) {
          finish8<F, true>(e, m, n0, tc, 8, all, _mm256_loadu_ps(e.alpha + n0),
                           _mm256_loadu_ps(e.beta + n0), _mm256_cvtepi32_ps(d[q]));
        } else if (n0 < e.N) {  // the last N % 8 outputs
          const __m256i k = lanes8(e.N - n0);
          finish8<F, false>(e, m, n0, tc, e.N - n0, k, _mm256_maskload_ps(e.alpha + n0, k),
                            _mm256_maskload_ps(e.beta + n0, k), _mm256_cvtepi32_ps(d[q]));
        }
      }
    }
  }
}
#endif

void sconv(const torch::Tensor& planes, const torch::Tensor& weights, int64_t axis, int64_t pairs,
           const torch::Tensor& alpha, const torch::Tensor& beta, int64_t res_kind,
           const c10::optional<torch::Tensor>& res, int64_t group,
           const c10::optional<torch::Tensor>& act, torch::Tensor out) {
  TORCH_CHECK(planes.dim() == 4 && planes.is_contiguous() && planes.scalar_type() == torch::kChar,
              "planes: (B, H, W, Cs) int8");
  TORCH_CHECK(weights.dim() == 2 && weights.scalar_type() == torch::kChar && weights.is_contiguous(),
              "weights: (T, Cs) int8");
  const int64_t B = planes.size(0), H = planes.size(1), W = planes.size(2), Cs = planes.size(3);
  const int64_t T = weights.size(0), N = Cs / pairs;
  TORCH_CHECK(weights.size(1) == Cs && T % 2 == 1 && Cs % pairs == 0 && (pairs == 1 || pairs == 2),
              "weights do not match planes");
  TORCH_CHECK(T * 1 < 128, "too many taps for int8 accumulation");
  Epilogue e = make_epilogue(alpha, beta, res_kind, res, group, c10::nullopt, act, c10::nullopt, 1.0,
                             c10::nullopt, 0.0, c10::nullopt, 0.0, out);
  TORCH_CHECK(out.size(0) == B * H * W && out.size(1) == N, "out: (B*H*W, N)");
  const int8_t* sp = planes.data_ptr<int8_t>();
  const int8_t* wp = weights.data_ptr<int8_t>();
#ifdef BIMLP_X86
  if (current_isa() == ISA_AVX512 && (res_kind == RES_NONE || res_kind == RES_IDENTITY)) {
    at::parallel_for(0, B * H, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q)
        sconv_row_avx512(sp, wp, q / H, q % H, H, W, Cs, T, int(axis), int(pairs), e);
    });
    return;
  }
  if (current_isa() >= ISA_AVX2) {  // AVX2, or AVX-512 with a shortcut kind finish16 lacks
    with_epi_flags(e, [&](auto flags) {
      constexpr int F = decltype(flags)::value;
      at::parallel_for(0, B * H, 1, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q)
          if (pairs == 2) sconv_row_avx2<2, F>(sp, wp, q / H, q % H, H, W, Cs, T, int(axis), e);
          else sconv_row_avx2<1, F>(sp, wp, q / H, q % H, H, W, Cs, T, int(axis), e);
      });
    });
    return;
  }
#endif
  at::parallel_for(0, B * H, 1, [&](int64_t q0, int64_t q1) {
    std::vector<int8_t> acc(Cs);
    std::vector<int32_t> dot(W * N);
    std::vector<float> scratch(2 * N);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t b = q / H, h = q % H;
      for (int64_t x = 0; x < W; ++x) {
        std::fill(acc.begin(), acc.end(), int8_t(0));
        const TapRange tr = tap_range(sp, b, h, x, H, W, Cs, T, int(axis));
        for (int64_t t = tr.t0; t < tr.t1; ++t)
          accumulate_portable(acc.data(), tr.first + (t - tr.t0) * tr.step, wp + t * Cs, Cs);
        int32_t* d = dot.data() + x * N;
        if (pairs == 2)
          for (int64_t n = 0; n < N; ++n) d[n] = int32_t(acc[2 * n]) + int32_t(acc[2 * n + 1]);
        else
          for (int64_t n = 0; n < N; ++n) d[n] = acc[n];
      }
      epilogue_rows(e, q * W, W, dot.data(), N, true, scratch.data());
    }
  });
}

// Sign plane of x + bias: (M, C) float -> (M, C) int8 ±1 (sign(0) = +1).
BIMLP_CLONES void sign_row(const float* __restrict x, const float* __restrict b, int8_t* __restrict o,
                           int64_t C) {
  for (int64_t c = 0; c < C; ++c) o[c] = (x[c] + b[c]) < 0.f ? int8_t(-1) : int8_t(1);
}

void sign_plane(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor out) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && out.is_contiguous() &&
                  out.scalar_type() == torch::kChar && out.numel() == x.numel(), "bad sign_plane args");
  const int64_t M = x.size(0), C = x.size(1);
  const float* xp = x.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  int8_t* op = out.data_ptr<int8_t>();
  at::parallel_for(0, M, 256, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) sign_row(xp + m * C, bp, op + m * C, C);
  });
}

// sin and cos of one float: reduction by pi/2 in three parts (exact products for |x| < 2^13),
// minimax polynomials on [-pi/4, pi/4] (Cephes single-precision coefficients), quadrant fix-up.
// Branch-free so the row loop vectorizes; about 1 ulp from the correctly rounded values.
inline void sincos_f(float x, float& s, float& c) {
  const float j = std::nearbyint(x * 0.636619772367581343f);
  const float y = ((x - j * 1.5703125f) - j * 4.837512969970703125e-4f) - j * 7.54978995489188216e-8f;
  const float z = y * y;
  const float sp = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * y + y;
  const float cp = (((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z) - 0.5f * z + 1.0f;
  const int q = int(j) & 3;
  const float s0 = (q & 1) ? cp : sp;
  const float c0 = (q & 1) ? sp : cp;
  s = (q & 2) ? -s0 : s0;
  c = ((q + 1) & 2) ? -c0 : c0;
}

BIMLP_CLONES void wave_row(const float* __restrict a, const float* __restrict th,
                           const float* __restrict bp, float* __restrict u, int8_t* __restrict s,
                           float* __restrict pm, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    float sv, cv;
    sincos_f(th[c], sv, cv);
    const float pc = a[c] * cv;
    const float ps = a[c] * sv;
    u[c] = pc + bp[c];
    u[C + c] = ps + bp[C + c];
  }
  for (int64_t j = 0; j < 2 * C; ++j) s[j] = u[j] < 0.f ? int8_t(-1) : int8_t(1);
  for (int64_t k = 0; k < C; ++k) pm[k] = (u[2 * k] + u[2 * k + 1]) / 2.f;
}

// PATM token-mixing input: u = [amp * cos(theta) ; amp * sin(theta)] + bias (2C channels), its
// sign plane (M, 2C) int8 and the pair mean (u[2k] + u[2k+1]) / 2 (M, C).
void wave_prep(const torch::Tensor& amp, const torch::Tensor& theta, const torch::Tensor& bias,
               torch::Tensor planes, torch::Tensor pair_mean) {
  const int64_t M = amp.size(0), C = amp.size(1);
  TORCH_CHECK(amp.is_contiguous() && theta.is_contiguous() && planes.is_contiguous() &&
                  pair_mean.is_contiguous() && theta.sizes() == amp.sizes(), "wave_prep: contiguous (M, C) inputs");
  TORCH_CHECK(bias.numel() == 2 * C && planes.numel() == 2 * M * C && pair_mean.numel() == M * C,
              "wave_prep: shapes");
  const float* a = amp.data_ptr<float>();
  const float* th = theta.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  int8_t* sp = planes.data_ptr<int8_t>();
  float* pm = pair_mean.data_ptr<float>();
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / C), [&](int64_t m0, int64_t m1) {
    std::vector<float> u(2 * C);
    for (int64_t m = m0; m < m1; ++m)
      wave_row(a + m * C, th + m * C, bp, u.data(), sp + m * 2 * C, pm + m * C, C);
  });
}

// Element-wise sin and cos (for tests of the polynomial against torch).
void sincos_values(const torch::Tensor& x, torch::Tensor s, torch::Tensor c) {
  const float* xp = x.data_ptr<float>();
  float *sp = s.data_ptr<float>(), *cp = c.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) sincos_f(xp[i], sp[i], cp[i]);
}

BIMLP_CLONES void rprelu_row(float* __restrict x, const float* __restrict b1,
                             const float* __restrict sl, const float* __restrict b2, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const float v = x[c] + b1[c];
    x[c] = (v >= 0.f ? v : sl[c] * v) + b2[c];
  }
}

// In-place RPReLU with folded biases: x = prelu(x + b1, slope) + b2, per channel of (M, C).
void rprelu_(torch::Tensor x, const torch::Tensor& params) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && params.numel() == 3 * x.size(1), "rprelu_ args");
  const int64_t M = x.size(0), C = x.size(1);
  float* xp = x.data_ptr<float>();
  const float* b1 = params.data_ptr<float>();
  const float* sl = b1 + C;
  const float* b2 = b1 + 2 * C;
  at::parallel_for(0, M, 256, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) rprelu_row(xp + m * C, b1, sl, b2, C);
  });
}

BIMLP_CLONES void mix_row(const float* __restrict a0, const float* __restrict a1,
                          const float* __restrict a2, const float* __restrict h,
                          const float* __restrict w, const float* __restrict c,
                          const float* __restrict z, float* __restrict m, int64_t C) {
  for (int64_t k = 0; k < C; ++k) m[k] = a0[k] * h[k] + a1[k] * w[k] + a2[k] * c[k] + z[k];
}

// m = a0 * h + a1 * w + a2 * c + z, where (a0, a1, a2) = softmax of the re-weighting logits
// r[b, 3c + k] over k (per sample b and channel c); rows of sample b are [b * HW, (b + 1) * HW).
// Also packs the bits of m + bias for the projection.
void patm_mix(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& c,
              const torch::Tensor& z, const torch::Tensor& logits, int64_t HW,
              const torch::Tensor& bias, torch::Tensor m_out, torch::Tensor bits) {
  const int64_t M = h.size(0), C = h.size(1), B = M / HW, KW = (C + 63) / 64;
  TORCH_CHECK(logits.numel() == 3 * B * C && M % HW == 0 && logits.is_contiguous(), "patm_mix: shapes");
  for (const torch::Tensor* t : {&h, &w, &c, &z, static_cast<const torch::Tensor*>(&m_out)})
    TORCH_CHECK(t->is_contiguous() && t->sizes() == h.sizes(), "patm_mix: (M, C) contiguous inputs");
  TORCH_CHECK(bits.numel() >= M * KW && bias.numel() == C, "patm_mix: bits / bias");
  // softmax over the three branch weights of each (sample, channel): a[k][b * C + c]
  std::vector<float> a(3 * B * C);
  const float* lp = logits.data_ptr<float>();
  for (int64_t i = 0; i < B * C; ++i) {
    const float* l = lp + 3 * i;
    const float mx = std::max(l[0], std::max(l[1], l[2]));
    const float e0 = std::exp(l[0] - mx), e1 = std::exp(l[1] - mx), e2 = std::exp(l[2] - mx);
    const float sum = e0 + e1 + e2;
    a[i] = e0 / sum;
    a[B * C + i] = e1 / sum;
    a[2 * B * C + i] = e2 / sum;
  }
  const float *hp = h.data_ptr<float>(), *wp = w.data_ptr<float>(), *cp = c.data_ptr<float>();
  const float *zp = z.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* mp = m_out.data_ptr<float>();
  uint64_t* op = reinterpret_cast<uint64_t*>(bits.data_ptr<int64_t>());
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / HW;
      const float *a0 = a.data() + b * C, *a1 = a.data() + (B + b) * C, *a2 = a.data() + (2 * B + b) * C;
      const int64_t o = r * C;
      mix_row(a0, a1, a2, hp + o, wp + o, cp + o, zp + o, mp + o, C);
      pack_row(mp + o, bp, C, op + r * KW);
    }
  });
}

// Per-sample channel sums of h + w + c + z: (B, C) means over HW rows.
void pooled_sum(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& c,
                const torch::Tensor& z, int64_t HW, torch::Tensor out) {
  const int64_t M = h.size(0), C = h.size(1), B = M / HW;
  const float *hp = h.data_ptr<float>(), *wp = w.data_ptr<float>(), *cp = c.data_ptr<float>();
  const float* zp = z.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> acc(C);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = b * HW; r < (b + 1) * HW; ++r)
        for (int64_t k = 0; k < C; ++k) {
          const int64_t i = r * C + k;
          acc[k] += double(((hp[i] + wp[i]) + cp[i]) + zp[i]);
        }
      for (int64_t k = 0; k < C; ++k) op[b * C + k] = float(acc[k] / double(HW));
    }
  });
}

BIMLP_CLONES void max_into(float* __restrict m, const float* __restrict x, int64_t C) {
  for (int64_t c = 0; c < C; ++c) m[c] = m[c] > x[c] ? m[c] : x[c];
}

BIMLP_CLONES void add_into(float* __restrict s, const float* __restrict x, int64_t C) {
  for (int64_t c = 0; c < C; ++c) s[c] += x[c];
}

// BiMLP downsampling pool: mean of TF-SAME max-pools with kernels 2, 3, 5, 7, stride 2, -inf
// padding (top/left gets floor(total / 2)). x: (B, H, W, C) -> out: (B, ceil(H/2), ceil(W/2), C).
void pool_mix(const torch::Tensor& x, torch::Tensor out) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && out.is_contiguous(), "pool_mix: (B, H, W, C)");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2;
  TORCH_CHECK(out.numel() == B * Ho * Wo * C, "pool_mix: out shape");
  const int ks[4] = {2, 3, 5, 7};
  int ph[4], pw[4];
  for (int i = 0; i < 4; ++i) {
    ph[i] = int(std::max<int64_t>((Ho - 1) * 2 + ks[i] - H, 0) / 2);
    pw[i] = int(std::max<int64_t>((Wo - 1) * 2 + ks[i] - W, 0) / 2);
  }
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B * Ho, 1, [&](int64_t q0, int64_t q1) {
    std::vector<float> mx(C), sum(C);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t b = q / Ho, i = q % Ho;
      for (int64_t j = 0; j < Wo; ++j) {
        std::fill(sum.begin(), sum.end(), 0.f);
        for (int t = 0; t < 4; ++t) {
          std::fill(mx.begin(), mx.end(), -std::numeric_limits<float>::infinity());
          const int64_t h0 = std::max<int64_t>(2 * i - ph[t], 0), h1 = std::min<int64_t>(2 * i - ph[t] + ks[t], H);
          const int64_t w0 = std::max<int64_t>(2 * j - pw[t], 0), w1 = std::min<int64_t>(2 * j - pw[t] + ks[t], W);
          for (int64_t hh = h0; hh < h1; ++hh)
            for (int64_t ww = w0; ww < w1; ++ww) max_into(mx.data(), xp + ((b * H + hh) * W + ww) * C, C);
          if (t == 0) std::copy(mx.begin(), mx.end(), sum.begin());
          else add_into(sum.data(), mx.data(), C);
        }
        float* o = op + ((b * Ho + i) * Wo + j) * C;
        for (int64_t c = 0; c < C; ++c) o[c] = sum[c] / 4.f;
      }
    }
  });
}

int64_t isa() { return current_isa(); }

// How many distinct threads at::parallel_for really uses for `n` one-item chunks. Without
// -fopenmp the OpenMP backend's parallel_for silently runs serially; this makes that visible.
int64_t parallel_threads(int64_t n) {
  std::vector<int> seen(std::max(at::get_num_threads(), 1), 0);
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    const int t = at::get_thread_num();
    if (t >= 0 && t < int(seen.size())) seen[t] = 1;
  });
  int64_t count = 0;
  for (int v : seen) count += v;
  return count;
}

void set_isa(int64_t want) {
  TORCH_CHECK(isa_supported(int(want)), "instruction set ", want, " not supported on this CPU");
  g_isa = int(want);
}

bool supported(int64_t want) { return isa_supported(int(want)); }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "bimlp packed 1-bit CPU kernels";
  m.def("pack_signs", &pack_signs);
  m.def("make_panels", &make_panels);
  m.def("bgemm", &bgemm);
  m.def("sconv", &sconv);
  m.def("sign_plane", &sign_plane);
  m.def("wave_prep", &wave_prep);
  m.def("sincos", &sincos_values);
  m.def("rprelu_", &rprelu_);
  m.def("patm_mix", &patm_mix);
  m.def("pooled_sum", &pooled_sum);
  m.def("pool_mix", &pool_mix);
  m.def("isa", &isa);
  m.def("parallel_threads", &parallel_threads);
  m.def("set_isa", &set_isa);
  m.def("supported", &supported);
}

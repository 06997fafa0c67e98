// The kernel interface of the runtime: data layouts, the shared epilogue description and the one
// dispatch table per instruction set (portable, AVX2, AVX-512 VPOPCNTDQ, and NEON on aarch64),
// chosen once at load.
//
// Layouts. Activations are channels-last float32 matrices (M = B*H*W rows, C columns). Packed
// signs: bit = 1 means -1, bit = 0 means +1 (sign(0) = +1); channel c of a row is bit (c % 64) of
// word (c / 64); bits past C are 0 in activations and weights alike, so they never mismatch and
// dot = K - 2 * popcount(a ^ w) is exact. Binary 1x1 weights sit in panels of NR = 16 output
// channels (panel p, word k: 16 consecutive uint64, zero rows past N). Token-conv sign planes are
// int8 (+1/-1) (B, H, W, Cs), their weights (T, Cs) int8.
//
// Every kernel in the table is single-threaded over the rows it is given; the executor splits
// rows between threads. Each instruction set runs the same float operations in the same order
// (compiled with -ffp-contract=off, no FMA), so all tables give bit-identical outputs.
#pragma once

#include <cstdint>

namespace bimlp::kernels {

constexpr int NR = 16;        // output channels per binary weight panel
constexpr int SGEMM_NB = 32;  // output channels per float weight panel

enum Res : int { RES_NONE = 0, RES_IDENTITY = 1, RES_TILE = 2, RES_GROUPMEAN = 3 };

// The output transform of a binary layer, row by row (all row pointers at the block's row 0):
//   v   = alpha[n] * dot + beta[n]
//   v  += S(res)                 shortcut: identity, tile (n % res_channels) or mean of `group`
//                                consecutive channels, optionally through
//                                prelu(res_scale * s + res_bias, res_slope) + res_shift
//   v   = prelu(v, slope) + shift                        (when slope)
//   v   = base + (gain * v + w1 * e1 + w2 * e2)          (when mixing: any of base, e1, e2, gain != 1)
//   out = v                                              (when out)
// and the tail, which folds the next layer's input preparation into this pass:
//   z   = v * norm_scale + norm_shift (or v)             (written to z_out when set)
//   bits of z + pack_thresh[p] < 0 for p < pack_count    (pack_out + p * pack_plane, ld_pack words/row)
//   int8 signs of z + sign_thresh[s] for s < sign_count  (sign_out + s * sign_plane, ld_sign bytes/row)
// With `ternary` (official mode) the activation of u = z + thresh is t = round(clip(u, -1, 1)):
// -1 for u < -0.5, +1 for u > 0.5, else 0 (round half to even). A packed row is then two planes
// of ceil(C / 64) words each, the sign plane S (bit 1: t = -1) followed by the nonzero plane Z
// (bit 1: t != 0), so ld_pack is twice the words of a binary row; int8 planes hold t itself.
struct Tail {
  const float* norm_scale = nullptr;
  const float* norm_shift = nullptr;
  float* z_out = nullptr;
  int64_t ld_z = 0;
  int pack_count = 0;
  const float* pack_thresh = nullptr;  // (pack_count, C)
  uint64_t* pack_out = nullptr;
  int64_t pack_plane = 0;  // words between planes
  int64_t ld_pack = 0;     // words per row
  int sign_count = 0;
  const float* sign_thresh = nullptr;  // (sign_count, C)
  int8_t* sign_out = nullptr;
  int64_t sign_plane = 0;
  int64_t ld_sign = 0;
  bool ternary = false;

  bool active() const { return z_out || pack_count || sign_count; }
};

struct Epilogue {
  const float* alpha = nullptr;
  const float* beta = nullptr;
  int N = 0;
  int res_kind = RES_NONE;
  const float* res = nullptr;
  int64_t ld_res = 0;
  int res_channels = 0;
  int group = 1;
  const float* res_scale = nullptr;
  const float* res_bias = nullptr;
  const float* res_slope = nullptr;
  const float* res_shift = nullptr;
  const float* slope = nullptr;
  const float* shift = nullptr;
  const float* base = nullptr;
  float gain = 1.f;
  const float* e1 = nullptr;
  float w1 = 0.f;
  const float* e2 = nullptr;
  float w2 = 0.f;
  float* out = nullptr;
  int64_t ld_out = 0;  // also the row stride of base, e1, e2
  Tail tail;

  bool mixes() const { return base || e1 || e2 || gain != 1.f; }
  // The same epilogue for the block of rows that starts at row m0.
  Epilogue at(int64_t m0) const {
    Epilogue e = *this;
    if (e.res) e.res += m0 * ld_res;
    if (e.base) e.base += m0 * ld_out;
    if (e.e1) e.e1 += m0 * ld_out;
    if (e.e2) e.e2 += m0 * ld_out;
    if (e.out) e.out += m0 * ld_out;
    if (e.tail.z_out) e.tail.z_out += m0 * tail.ld_z;
    if (e.tail.pack_out) e.tail.pack_out += m0 * tail.ld_pack;
    if (e.tail.sign_out) e.tail.sign_out += m0 * tail.ld_sign;
    return e;
  }
};

// Scratch a kernel call may use: `floats` floats and `ints` int32 (sizes in kernel_scratch()).
struct Scratch {
  float* f = nullptr;
  int32_t* i = nullptr;
  int8_t* b = nullptr;
  float* fd = nullptr;  // token_conv_f32: W * N float dots, then Cs float sums
};

struct Table {
  const char* name;
  // dots[r * ldd + n] = K - 2 * popcount(A[r] ^ W[n]) for rows r < rows, n < N.
  void (*xnor_dots)(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW,
                    int N, int K, int32_t* dots, int64_t ldd);
  // The epilogue of `rows` rows from signed dots (see Epilogue); scratch: 2 * N floats.
  void (*epilogue_rows)(const Epilogue& e, int64_t rows, const int32_t* dots, int64_t ldd, float* scratch);
  // The same from float dots (official mode's token convs, whose weights are real-valued).
  void (*epilogue_rows_f32)(const Epilogue& e, int64_t rows, const float* dots, int64_t ldd, float* scratch);
  // The tail alone on float rows x (M, C): norm, packing, sign planes.
  void (*tail_rows)(const Tail& t, const float* x, int64_t ldx, int64_t rows, int C);
  // Token conv (1 x T along W for axis 0, T x 1 along H for axis 1, padding T / 2, groups = N,
  // `pairs` input channels per group) of image rows q in [q0, q1) (q = b * H + h).
  // scratch: W * N int32, Cs int8, 2 * N floats.
  void (*token_conv)(const int8_t* planes, const int8_t* taps, int64_t H, int64_t W, int Cs, int T,
                     int axis, int pairs, const Epilogue& e, int64_t q0, int64_t q1, Scratch s);
  // The same with real-valued taps (T, Cs) on ternary int8 planes (official mode: the release's
  // per-tap weight scales make these weights full precision). Each output sums its products
  // t * w in float in a fixed order (taps in order, then the pair), exact in the products
  // (t in {-1, 0, +1}). scratch: s.fd W * N + Cs floats, s.f 2 * N floats.
  void (*token_conv_f32)(const int8_t* planes, const float* taps, int64_t H, int64_t W, int Cs, int T,
                         int axis, int pairs, const Epilogue& e, int64_t q0, int64_t q1, Scratch s);
  // out[r * ldo + n] = sum_k A[r * lda + k] * Wp[k, n] (+ bias[n]); Wp: float panels of SGEMM_NB
  // columns (panel p: K x SGEMM_NB floats, zero past N).
  void (*sgemm)(const float* A, int64_t lda, int64_t rows, int K, const float* panels, int N,
                const float* bias, float* out, int64_t ldo);
  // x = prelu(x + b1, slope) + b2 per channel, on rows of C.
  void (*rprelu_rows)(float* x, int64_t rows, int C, const float* b1, const float* slope, const float* b2);
  // PATM token-mixing input of rows: u = [amp cos(theta) ; amp sin(theta)] + bias (2C channels),
  // its int8 sign plane (rows, 2C) and the pair mean (u[2k] + u[2k+1]) / 2 (rows, C).
  // ternary: the plane holds round(clip(u, -1, 1)) instead of sign(u).
  void (*wave_rows)(const float* amp, const float* theta, int64_t rows, int C, const float* bias,
                    int8_t* planes, float* pair_mean, float* scratch, bool ternary);
  // m = a0 * h + a1 * w + a2 * c + z (per-channel weights of one sample), and the bits of m + bias
  // (ternary: the S and Z planes of each row, 2 * ceil(C / 64) words).
  void (*mix_rows)(const float* h, const float* w, const float* c, const float* z, int64_t rows, int C,
                   const float* a0, const float* a1, const float* a2, const float* bias, float* m,
                   uint64_t* bits, bool ternary);
  // acc[k] += ((h + w) + c) + z summed over rows, in double.
  void (*sum4_rows)(const float* h, const float* w, const float* c, const float* z, int64_t rows,
                    int C, double* acc);
  // BiMLP downsampling pool (mean of TF-SAME max-pools 2, 3, 5, 7, stride 2) of output rows
  // q = b * Ho + i in [q0, q1); x (B, H, W, C) -> out (B, Ho, Wo, C). scratch: 2 * C floats.
  void (*pool_rows)(const float* x, int64_t H, int64_t W, int C, float* out, int64_t q0, int64_t q1,
                    float* scratch);
  // Ternary activations t in {-1, 0, +1} against +-1 weights (official mode's 1x1 layers):
  // dots[r * ldd + n] = sum_k t[r, k] * w[n, k] = popcount(Z) - 2 * popcount(Z & (S ^ W)), where
  // S (bit 1: t = -1) and Z (bit 1: t != 0) are two planes of lda words per row, bits past K zero
  // in both (so S may hold anything where Z is 0), and W the binary panels of xnor_dots.
  void (*ternary_dots)(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                       int KW, int N, int32_t* dots, int64_t ldd);
  // Optional (null where an instruction set has none): xnor_dots and epilogue_rows of `rows` rows
  // (N = e.N) in one pass, the dots never stored; the same bits. Returns false, having done
  // nothing, for an epilogue it does not cover (the caller then runs the two kernels).
  bool (*xnor_unit)(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int K,
                    const Epilogue& e);
};

enum Isa : int { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_NEON = 3 };
constexpr int ISA_COUNT = 4;

const char* isa_name(int isa);
bool isa_supported(int isa);
// The table for BIMLP_ISA (portable | avx2 | avx512 | neon) or the best supported one. Throws
// std::runtime_error for an unknown name or one this CPU does not support.
const Table& select_table(int* isa_out);
const Table& table_for(int isa);  // throws when unsupported

}  // namespace bimlp::kernels

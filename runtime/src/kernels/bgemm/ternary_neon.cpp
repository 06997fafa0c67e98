// Ternary-activation dot products with NEON (see ternary_portable.cpp): the XNOR GEMM's vcntq_u8
// byte popcounts of Z & (S ^ W), byte counters of at most 31 words widened pairwise to 64 bits.
#include <arm_neon.h>

#include "../kernels.h"

namespace bimlp::kernels::neon {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  uint64x2_t tot[MR][8];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < 8; ++j) tot[r][j] = vdupq_n_u64(0);
  for (int k0 = 0; k0 < KW; k0 += 31) {
    const int k1 = KW < k0 + 31 ? KW : k0 + 31;
    uint8x16_t acc[MR][8];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 8; ++j) acc[r][j] = vdupq_n_u8(0);
    for (int k = k0; k < k1; ++k) {
      uint64x2_t w[8];
      for (int j = 0; j < 8; ++j) w[j] = vld1q_u64(W + k * NR + 2 * j);
      for (int r = 0; r < MR; ++r) {
        const uint64x2_t s = vdupq_n_u64(S[r * lda + k]);
        const uint64x2_t z = vdupq_n_u64(Z[r * lda + k]);
        for (int j = 0; j < 8; ++j)
          acc[r][j] = vaddq_u8(acc[r][j], vcntq_u8(vreinterpretq_u8_u64(vandq_u64(z, veorq_u64(s, w[j])))));
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 8; ++j) tot[r][j] = vpadalq_u32(tot[r][j], vpaddlq_u16(vpaddlq_u8(acc[r][j])));
  }
  for (int r = 0; r < MR; ++r) {
    uint64_t pc[NR];
    for (int j = 0; j < 8; ++j) vst1q_u64(pc + 2 * j, tot[r][j]);
    for (int j = 0; j < cols; ++j) d[r * ldd + j] = nz[r] - 2 * int32_t(pc[j]);
  }
}

inline int32_t count(const uint64_t* z, int KW) {
  uint64x2_t n = vdupq_n_u64(0);
  int k = 0;
  for (; k + 2 <= KW; k += 2) n = vpadalq_u32(n, vpaddlq_u16(vpaddlq_u8(vcntq_u8(vreinterpretq_u8_u64(vld1q_u64(z + k))))));
  int32_t c = int32_t(vaddvq_u64(n));
  for (; k < KW; ++k) c += __builtin_popcountll(z[k]);
  return c;
}
}  // namespace

void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd) {
  constexpr int MR = 2;
  const int P = (N + NR - 1) / NR;
  int64_t r = 0;
  int32_t nz[MR];
  for (; r + MR <= rows; r += MR) {
    for (int i = 0; i < MR; ++i) nz[i] = count(Z + (r + i) * lda, KW);
    for (int p = 0; p < P; ++p)
      tile<MR>(S + r * lda, Z + r * lda, lda, panels + int64_t(p) * KW * NR, KW, nz, dots + r * ldd + p * NR,
               ldd, N - p * NR < NR ? N - p * NR : NR);
  }
  for (; r < rows; ++r) {
    nz[0] = count(Z + r * lda, KW);
    for (int p = 0; p < P; ++p)
      tile<1>(S + r * lda, Z + r * lda, lda, panels + int64_t(p) * KW * NR, KW, nz, dots + r * ldd + p * NR,
              ldd, N - p * NR < NR ? N - p * NR : NR);
  }
}

}  // namespace bimlp::kernels::neon

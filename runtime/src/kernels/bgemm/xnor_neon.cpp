// XNOR-popcount dot products with NEON: vcntq_u8 byte popcounts of a ^ w summed in byte counters,
// which hold at most 31 words (31 * 8 = 248), then widened pairwise (u8 -> u16 -> u32) into one
// 64-bit total per column. MR rows x one 16-column panel (8 registers of 2 columns) per step.
#include <arm_neon.h>

#include "../kernels.h"

namespace bimlp::kernels::neon {

namespace {
template <int MR>
inline void tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, int32_t* d,
                 int64_t ldd, int cols) {
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
        const uint64x2_t a = vdupq_n_u64(A[r * lda + k]);
        for (int j = 0; j < 8; ++j)
          acc[r][j] = vaddq_u8(acc[r][j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a, w[j]))));
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 8; ++j) tot[r][j] = vpadalq_u32(tot[r][j], vpaddlq_u16(vpaddlq_u8(acc[r][j])));
  }
  for (int r = 0; r < MR; ++r) {
    uint64_t pc[NR];
    for (int j = 0; j < 8; ++j) vst1q_u64(pc + 2 * j, tot[r][j]);
    for (int j = 0; j < cols; ++j) d[r * ldd + j] = K - 2 * int32_t(pc[j]);
  }
}
}  // namespace

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd) {
  constexpr int MR = 2;
  const int P = (N + NR - 1) / NR;
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    for (int p = 0; p < P; ++p)
      tile<MR>(A + r * lda, lda, panels + int64_t(p) * KW * NR, KW, K, dots + r * ldd + p * NR, ldd,
               N - p * NR < NR ? N - p * NR : NR);
  for (; r < rows; ++r)
    for (int p = 0; p < P; ++p)
      tile<1>(A + r * lda, lda, panels + int64_t(p) * KW * NR, KW, K, dots + r * ldd + p * NR, ldd,
              N - p * NR < NR ? N - p * NR : NR);
}

}  // namespace bimlp::kernels::neon

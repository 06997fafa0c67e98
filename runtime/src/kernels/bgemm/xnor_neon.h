// The XNOR-popcount inner loop with NEON, shared by the dot-product, ternary and fused unit
// kernels: MR rows x one 16-column panel (8 registers of 2 columns). vcntq_u8 byte popcounts of
// a ^ w go into byte counters, which hold at most 31 words (31 * 8 = 248), then are widened
// pairwise (u8 -> u16 -> u32) into 64-bit totals: tot[r][j] holds the popcounts of columns 2j and
// 2j + 1 of row r. With TERNARY (official mode: S the sign plane in A, Z the nonzero plane) each
// word's XOR is ANDed with Z before the popcount.
#pragma once
#include <arm_neon.h>

#include <cstdint>

#include "../kernels.h"

namespace bimlp::kernels::neon {

template <int MR, bool TERNARY = false>
inline void xnor_popcounts(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, uint64x2_t (&tot)[MR][8],
                           const uint64_t* Z = nullptr) {
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
        const uint64x2_t z = TERNARY ? vdupq_n_u64(Z[r * lda + k]) : a;
        for (int j = 0; j < 8; ++j) {
          uint64x2_t x = veorq_u64(a, w[j]);
          if (TERNARY) x = vandq_u64(z, x);
          acc[r][j] = vaddq_u8(acc[r][j], vcntq_u8(vreinterpretq_u8_u64(x)));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 8; ++j) tot[r][j] = vpadalq_u32(tot[r][j], vpaddlq_u16(vpaddlq_u8(acc[r][j])));
  }
}

// The popcounts of columns 4q .. 4q + 3 (q = 0..3) of one row as 4 uint32 (they fit in 32 bits).
inline uint32x4_t columns4(const uint64x2_t (&t)[8], int q) {
  return vcombine_u32(vmovn_u64(t[2 * q]), vmovn_u64(t[2 * q + 1]));
}

// d[j] = base - 2 * popcount of column j, for the first `cols` columns of one row's tile t (the
// signed dot products: base = K for XNOR, the row's nonzero count for ternary activations).
inline void store_dots(int32_t* d, int cols, const uint64x2_t (&t)[8], int32_t base) {
  for (int q = 0; q < 4 && 4 * q < cols; ++q) {
    const int32x4_t dots = vsubq_s32(vdupq_n_s32(base), vshlq_n_s32(vreinterpretq_s32_u32(columns4(t, q)), 1));
    if (cols >= 4 * q + 4) {
      vst1q_s32(d + 4 * q, dots);
    } else {
      int32_t part[4];
      vst1q_s32(part, dots);
      for (int j = 0; j < cols - 4 * q; ++j) d[4 * q + j] = part[j];
    }
  }
}

}  // namespace bimlp::kernels::neon

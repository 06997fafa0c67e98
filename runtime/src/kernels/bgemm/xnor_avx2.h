// The XNOR-popcount inner loop with AVX2, shared by the dot-product kernel and the fused unit
// kernel: MR rows x one 16-column panel. Nibble-lookup popcounts (vpshufb) go into byte counters,
// which hold at most 31 words (31 * 8 = 248), summed per column by vpsadbw into 64-bit counts:
// tot[r][j] holds the popcounts of columns 4j .. 4j + 3 of row r. With TERNARY (official mode: S
// the sign plane in A, Z the nonzero plane) each word's XOR is ANDed with Z before the popcount.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "../kernels.h"

namespace bimlp::kernels::avx2 {

template <int MR, bool TERNARY = false>
inline void xnor_popcounts(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, __m256i (&tot)[MR][4],
                           const uint64_t* Z = nullptr) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < 4; ++j) tot[r][j] = zero;
  for (int k0 = 0; k0 < KW; k0 += 31) {
    const int k1 = KW < k0 + 31 ? KW : k0 + 31;
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] = zero;
    for (int k = k0; k < k1; ++k) {
      for (int r = 0; r < MR; ++r) {
        const __m256i a = _mm256_set1_epi64x(static_cast<long long>(A[r * lda + k]));
        const __m256i z = TERNARY ? _mm256_set1_epi64x(static_cast<long long>(Z[r * lda + k])) : a;
        for (int j = 0; j < 4; ++j) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + k * NR + 4 * j));
          __m256i x = _mm256_xor_si256(a, w);
          if (TERNARY) x = _mm256_and_si256(z, x);
          const __m256i lo = _mm256_and_si256(x, low);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
          acc[r][j] = _mm256_add_epi8(acc[r][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                                                                 _mm256_shuffle_epi8(lut, hi)));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) tot[r][j] = _mm256_add_epi64(tot[r][j], _mm256_sad_epu8(acc[r][j], zero));
  }
}

// The popcounts of columns 8h .. 8h + 7 (h = 0, 1) of one row as 8 int32 (the counts fit in 32
// bits: the low halves of the 64-bit lanes, in column order).
inline __m256i columns8(const __m256i (&t)[4], int h) {
  const __m256 a = _mm256_castsi256_ps(t[2 * h]), b = _mm256_castsi256_ps(t[2 * h + 1]);
  const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // columns 0 1 4 5 | 2 3 6 7
  return _mm256_permute4x64_epi64(_mm256_castps_si256(s), _MM_SHUFFLE(3, 1, 2, 0));
}

// Lanes [0, cols) of 8 as a load/store mask (cols may be <= 0 or >= 8).
inline __m256i lanes8(int cols) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// d[j] = base - 2 * popcount of column j, for the first `cols` columns of one row's tile t (the
// signed dot products: base = K for XNOR, the row's nonzero count for ternary activations).
inline void store_dots(int32_t* d, int cols, const __m256i (&t)[4], __m256i base) {
  for (int h = 0; h < 2; ++h) {
    const __m256i dots = _mm256_sub_epi32(base, _mm256_slli_epi32(columns8(t, h), 1));
    int* dst = reinterpret_cast<int*>(d + 8 * h);
    if (cols >= 8 * (h + 1)) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), dots);
    else _mm256_maskstore_epi32(dst, lanes8(cols - 8 * h), dots);
  }
}

}  // namespace bimlp::kernels::avx2

// The XNOR-popcount inner loop with AVX-512 VPOPCNTDQ, shared by the dot-product kernel and the
// fused unit kernel: MR rows x one 16-column panel, the 64-bit counts of columns 0-7 and 8-15 in
// two registers per row, narrowed to 16 int32 popcounts per row.
#pragma once
// GCC 12 warns that the undefined pass-through vector inside _mm512_slli_epi32 and
// _mm512_cvtepi32_ps is uninitialized (a false positive of its own headers).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "../kernels.h"

namespace bimlp::kernels::avx512 {

// With Z (official mode's ternary activations: S the sign plane in A, Z the nonzero plane) each
// word's XOR is ANDed with Z before the popcount.
template <int MR, bool TERNARY = false>
inline void xnor_popcounts(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, __m512i (&pc)[MR],
                           const uint64_t* Z = nullptr) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int k = 0; k < KW; ++k) {
    const __m512i w0 = _mm512_loadu_si512(W + k * NR);
    const __m512i w1 = _mm512_loadu_si512(W + k * NR + 8);
    for (int r = 0; r < MR; ++r) {
      const __m512i a = _mm512_set1_epi64(static_cast<long long>(A[r * lda + k]));
      __m512i x0 = _mm512_xor_si512(a, w0), x1 = _mm512_xor_si512(a, w1);
      if (TERNARY) {
        const __m512i z = _mm512_set1_epi64(static_cast<long long>(Z[r * lda + k]));
        x0 = _mm512_and_si512(z, x0), x1 = _mm512_and_si512(z, x1);
      }
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(x0));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(x1));
    }
  }
  const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int r = 0; r < MR; ++r) pc[r] = _mm512_permutex2var_epi32(acc[r][0], low, acc[r][1]);
}

// Lanes [0, cols) of a 16-column panel.
inline __mmask16 lanes(int cols) { return cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1); }

}  // namespace bimlp::kernels::avx512

// Ternary-activation dot products with AVX-512 VPOPCNTDQ (see ternary_portable.cpp): the XNOR
// GEMM's tile with the nonzero plane ANDed in before the popcount.
#include <immintrin.h>

#include "../kernels.h"

namespace bimlp::kernels::avx512 {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int k = 0; k < KW; ++k) {
    const __m512i w0 = _mm512_loadu_si512(W + k * NR);
    const __m512i w1 = _mm512_loadu_si512(W + k * NR + 8);
    for (int r = 0; r < MR; ++r) {
      const __m512i s = _mm512_set1_epi64(static_cast<long long>(S[r * lda + k]));
      const __m512i z = _mm512_set1_epi64(static_cast<long long>(Z[r * lda + k]));
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_and_si512(z, _mm512_xor_si512(s, w0))));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_and_si512(z, _mm512_xor_si512(s, w1))));
    }
  }
  const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __mmask16 m = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  for (int r = 0; r < MR; ++r) {
    const __m512i pc = _mm512_permutex2var_epi32(acc[r][0], low, acc[r][1]);
    _mm512_mask_storeu_epi32(d + r * ldd, m, _mm512_sub_epi32(_mm512_set1_epi32(nz[r]), _mm512_slli_epi32(pc, 1)));
  }
}

inline int32_t count(const uint64_t* z, int KW) {
  int32_t n = 0;
  for (int k = 0; k < KW; ++k) n += int32_t(_mm_popcnt_u64(z[k]));
  return n;
}
}  // namespace

void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd) {
  constexpr int MR = 6;
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

}  // namespace bimlp::kernels::avx512

// XNOR-popcount dot products with AVX-512 VPOPCNTDQ: MR rows x one 16-column panel per step, the
// 64-bit counts of columns 0-7 and 8-15 in two registers per row, narrowed to int32 dots.
#include <immintrin.h>

#include "../kernels.h"

namespace bimlp::kernels::avx512 {

namespace {
template <int MR>
inline void tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, int32_t* d,
                 int64_t ldd, int cols) {
  __m512i acc[MR][2];
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
  const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i kk = _mm512_set1_epi32(K);
  const __mmask16 m = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  for (int r = 0; r < MR; ++r) {
    const __m512i pc = _mm512_permutex2var_epi32(acc[r][0], low, acc[r][1]);
    _mm512_mask_storeu_epi32(d + r * ldd, m, _mm512_sub_epi32(kk, _mm512_slli_epi32(pc, 1)));
  }
}
}  // namespace

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd) {
  constexpr int MR = 6;
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

}  // namespace bimlp::kernels::avx512

// XNOR-popcount dot products with AVX-512 VPOPCNTDQ: MR rows x one 16-column panel per step.
#include "xnor_avx512.h"

namespace bimlp::kernels::avx512 {

namespace {
template <int MR>
inline void tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, int32_t* d,
                 int64_t ldd, int cols) {
  __m512i pc[MR];
  xnor_popcounts<MR>(A, lda, W, KW, pc);
  const __m512i kk = _mm512_set1_epi32(K);
  const __mmask16 m = lanes(cols);
  for (int r = 0; r < MR; ++r) _mm512_mask_storeu_epi32(d + r * ldd, m, _mm512_sub_epi32(kk, _mm512_slli_epi32(pc[r], 1)));
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

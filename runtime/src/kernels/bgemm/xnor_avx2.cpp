// XNOR-popcount dot products with AVX2 (the popcount loop: xnor_avx2.h).
#include "xnor_avx2.h"

namespace bimlp::kernels::avx2 {

namespace {
template <int MR>
inline void tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, int32_t* d,
                 int64_t ldd, int cols) {
  __m256i tot[MR][4];
  xnor_popcounts<MR>(A, lda, W, KW, tot);
  for (int r = 0; r < MR; ++r) store_dots(d + r * ldd, cols, tot[r], _mm256_set1_epi32(K));
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

}  // namespace bimlp::kernels::avx2

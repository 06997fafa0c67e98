// XNOR-popcount dot products with NEON (the popcount loop: xnor_neon.h).
#include "xnor_neon.h"

namespace bimlp::kernels::neon {

namespace {
template <int MR>
inline void tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, int32_t* d,
                 int64_t ldd, int cols) {
  uint64x2_t tot[MR][8];
  xnor_popcounts<MR>(A, lda, W, KW, tot);
  for (int r = 0; r < MR; ++r) store_dots(d + r * ldd, cols, tot[r], K);
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

// Ternary-activation dot products with AVX2 (see ternary_portable.cpp): the XNOR GEMM's popcount
// loop (xnor_avx2.h) with the nonzero plane ANDed in, popcounts of Z & (S ^ W).
#include "xnor_avx2.h"

namespace bimlp::kernels::avx2 {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  __m256i tot[MR][4];
  xnor_popcounts<MR, true>(S, lda, W, KW, tot, Z);
  for (int r = 0; r < MR; ++r) store_dots(d + r * ldd, cols, tot[r], _mm256_set1_epi32(nz[r]));
}

inline int32_t count(const uint64_t* z, int KW) {
  int32_t n = 0;
  for (int k = 0; k < KW; ++k) n += int32_t(_mm_popcnt_u64(z[k]));
  return n;
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

}  // namespace bimlp::kernels::avx2

// Ternary-activation dot products with AVX-512 VPOPCNTDQ (see ternary_portable.cpp): the XNOR
// GEMM's tile with the nonzero plane ANDed in before the popcount.
#include "xnor_avx512.h"

namespace bimlp::kernels::avx512 {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  __m512i pc[MR];
  xnor_popcounts<MR, true>(S, lda, W, KW, pc, Z);
  const __mmask16 m = lanes(cols);
  for (int r = 0; r < MR; ++r)
    _mm512_mask_storeu_epi32(d + r * ldd, m, _mm512_sub_epi32(_mm512_set1_epi32(nz[r]), _mm512_slli_epi32(pc[r], 1)));
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

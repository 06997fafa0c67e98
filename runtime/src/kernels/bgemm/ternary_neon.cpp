// Ternary-activation dot products with NEON (see ternary_portable.cpp): the XNOR GEMM's vcntq_u8
// byte popcounts of Z & (S ^ W) (the popcount loop: xnor_neon.h).
#include "xnor_neon.h"

namespace bimlp::kernels::neon {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  uint64x2_t tot[MR][8];
  xnor_popcounts<MR, true>(S, lda, W, KW, tot, Z);
  for (int r = 0; r < MR; ++r) store_dots(d + r * ldd, cols, tot[r], nz[r]);
}

inline int32_t count(const uint64_t* z, int KW) {
  uint64x2_t n = vdupq_n_u64(0);
  int k = 0;
  for (; k + 2 <= KW; k += 2) n = vpadalq_u32(n, vpaddlq_u16(vpaddlq_u8(vcntq_u8(vreinterpretq_u8_u64(vld1q_u64(z + k))))));
  int32_t c = int32_t(vaddvq_u64(n));
  for (; k < KW; ++k) c += __builtin_popcountll(z[k]);
  return c;
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

}  // namespace bimlp::kernels::neon

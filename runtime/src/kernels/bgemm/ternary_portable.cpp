// Ternary-activation dot products, portable C++ (the reference every other instruction set
// matches): activations t in {-1, 0, +1} as a sign plane S and a nonzero plane Z, +-1 weights as
// packed signs W; sum_k t_k w_k = popcount(Z) - 2 * popcount(Z & (S ^ W)), which is the
// 2 * popcount(Z & ~(S ^ W)) - popcount(Z) of the issue (matches minus mismatches among nonzeros).
#include "../kernels.h"

namespace bimlp::kernels::portable {

void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd) {
  const int P = (N + NR - 1) / NR;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* s = S + r * lda;
    const uint64_t* z = Z + r * lda;
    int32_t nz = 0;
    for (int k = 0; k < KW; ++k) nz += __builtin_popcountll(z[k]);
    for (int p = 0; p < P; ++p) {
      const uint64_t* W = panels + int64_t(p) * KW * NR;
      const int cols = N - p * NR < NR ? N - p * NR : NR;
      int32_t pc[NR] = {};
      for (int k = 0; k < KW; ++k)
        for (int j = 0; j < NR; ++j) pc[j] += __builtin_popcountll(z[k] & (s[k] ^ W[k * NR + j]));
      for (int j = 0; j < cols; ++j) dots[r * ldd + p * NR + j] = nz - 2 * pc[j];
    }
  }
}

}  // namespace bimlp::kernels::portable

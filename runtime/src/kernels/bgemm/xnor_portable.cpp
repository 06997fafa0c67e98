// XNOR-popcount dot products, portable C++ (the reference every other instruction set matches).
#include "../kernels.h"

namespace bimlp::kernels::portable {

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd) {
  const int P = (N + NR - 1) / NR;
  for (int p = 0; p < P; ++p) {
    const uint64_t* W = panels + int64_t(p) * KW * NR;
    const int cols = N - p * NR < NR ? N - p * NR : NR;
    for (int64_t r = 0; r < rows; ++r) {
      int32_t pc[NR] = {};
      const uint64_t* a = A + r * lda;
      for (int k = 0; k < KW; ++k)
        for (int j = 0; j < NR; ++j) pc[j] += __builtin_popcountll(a[k] ^ W[k * NR + j]);
      for (int j = 0; j < cols; ++j) dots[r * ldd + p * NR + j] = K - 2 * pc[j];
    }
  }
}

}  // namespace bimlp::kernels::portable

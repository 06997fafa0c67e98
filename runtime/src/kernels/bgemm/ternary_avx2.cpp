// Ternary-activation dot products with AVX2 (see ternary_portable.cpp): the XNOR GEMM's nibble-
// lookup popcounts (vpshufb) of Z & (S ^ W) into byte counters of at most 31 words, vpsadbw sums.
#include <immintrin.h>

#include "../kernels.h"

namespace bimlp::kernels::avx2 {

namespace {
template <int MR>
inline void tile(const uint64_t* S, const uint64_t* Z, int64_t lda, const uint64_t* W, int KW,
                 const int32_t* nz, int32_t* d, int64_t ldd, int cols) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i tot[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < 4; ++j) tot[r][j] = zero;
  for (int k0 = 0; k0 < KW; k0 += 31) {
    const int k1 = KW < k0 + 31 ? KW : k0 + 31;
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] = zero;
    for (int k = k0; k < k1; ++k) {
      for (int r = 0; r < MR; ++r) {
        const __m256i s = _mm256_set1_epi64x(static_cast<long long>(S[r * lda + k]));
        const __m256i z = _mm256_set1_epi64x(static_cast<long long>(Z[r * lda + k]));
        for (int j = 0; j < 4; ++j) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + k * NR + 4 * j));
          const __m256i x = _mm256_and_si256(z, _mm256_xor_si256(s, w));
          const __m256i lo = _mm256_and_si256(x, low);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
          acc[r][j] = _mm256_add_epi8(acc[r][j], _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                                                                 _mm256_shuffle_epi8(lut, hi)));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) tot[r][j] = _mm256_add_epi64(tot[r][j], _mm256_sad_epu8(acc[r][j], zero));
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) int64_t pc[NR];
    for (int j = 0; j < 4; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(pc + 4 * j), tot[r][j]);
    for (int j = 0; j < cols; ++j) d[r * ldd + j] = nz[r] - 2 * int32_t(pc[j]);
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

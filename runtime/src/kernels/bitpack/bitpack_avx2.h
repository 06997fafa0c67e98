// Sign packing of up to 64 channels with AVX2 compares and movemask (same bits as portable).
#pragma once
#include <immintrin.h>
#include <cstdint>

namespace {
inline uint64_t pack64(const float* z, const float* thr, int n) {
  if (n == 64) {
    uint64_t word = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (int q = 0; q < 8; ++q) {
      const __m256 u = _mm256_add_ps(_mm256_loadu_ps(z + 8 * q), _mm256_loadu_ps(thr + 8 * q));
      word |= uint64_t(unsigned(_mm256_movemask_ps(_mm256_cmp_ps(u, zero, _CMP_LT_OQ)))) << (8 * q);
    }
    return word;
  }
  uint64_t word = 0;
  for (int c = 0; c < n; ++c) word |= uint64_t((z[c] + thr[c]) < 0.f) << c;
  return word;
}
}  // namespace

// Sign packing of up to 64 channels with AVX2 compares and movemask (same bits as portable).
#pragma once
#include <immintrin.h>
#include <cstdint>

#include "ternary_scalar.h"

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

// The ternary planes (see ternary_scalar.h): full words with two compares and movemasks per 8
// lanes, a partial word with the portable loop.
inline void pack_ternary64(const float* z, const float* thr, int n, uint64_t& s, uint64_t& nz) {
  uint64_t sw = 0, zw = 0;
  if (n == 64) {
    const __m256 lo = _mm256_set1_ps(-0.5f), hi = _mm256_set1_ps(0.5f);
    for (int q = 0; q < 8; ++q) {
      const __m256 u = _mm256_add_ps(_mm256_loadu_ps(z + 8 * q), _mm256_loadu_ps(thr + 8 * q));
      const unsigned neg = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(u, lo, _CMP_LT_OQ)));
      const unsigned pos = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(u, hi, _CMP_GT_OQ)));
      sw |= uint64_t(neg) << (8 * q);
      zw |= uint64_t(neg | pos) << (8 * q);
    }
    s = sw, nz = zw;
    return;
  }
  pack_ternary64_scalar(z, thr, n, s, nz);
}
}  // namespace

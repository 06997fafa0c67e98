// Sign packing of up to 64 channels with AVX-512 mask compares (same bits as portable).
#pragma once
#include <immintrin.h>
#include <cstdint>

namespace {
inline uint64_t pack64(const float* z, const float* thr, int n) {
  uint64_t word = 0;
  const __m512 zero = _mm512_setzero_ps();
  for (int q = 0; q < 4 && 16 * q < n; ++q) {
    const int cols = n - 16 * q < 16 ? n - 16 * q : 16;
    const __mmask16 k = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
    const __m512 u = _mm512_add_ps(_mm512_maskz_loadu_ps(k, z + 16 * q), _mm512_maskz_loadu_ps(k, thr + 16 * q));
    word |= uint64_t(_mm512_mask_cmp_ps_mask(k, u, zero, _CMP_LT_OQ)) << (16 * q);
  }
  return word;
}

// The ternary planes (see ternary_scalar.h) from the same add and two mask compares per 16 lanes.
inline void pack_ternary64(const float* z, const float* thr, int n, uint64_t& s, uint64_t& nz) {
  uint64_t sw = 0, zw = 0;
  const __m512 lo = _mm512_set1_ps(-0.5f), hi = _mm512_set1_ps(0.5f);
  for (int q = 0; q < 4 && 16 * q < n; ++q) {
    const int cols = n - 16 * q < 16 ? n - 16 * q : 16;
    const __mmask16 k = cols == 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
    const __m512 u = _mm512_add_ps(_mm512_maskz_loadu_ps(k, z + 16 * q), _mm512_maskz_loadu_ps(k, thr + 16 * q));
    const __mmask16 neg = _mm512_mask_cmp_ps_mask(k, u, lo, _CMP_LT_OQ);
    const __mmask16 pos = _mm512_mask_cmp_ps_mask(k, u, hi, _CMP_GT_OQ);
    sw |= uint64_t(neg) << (16 * q);
    zw |= uint64_t(__mmask16(neg | pos)) << (16 * q);
  }
  s = sw, nz = zw;
}
}  // namespace

// Sign packing of up to 64 channels with NEON compares: four lanes at a time, each lane's compare
// mask ANDed with its bit weight and summed across the vector (same bits as portable).
#pragma once
#include <arm_neon.h>
#include <cstdint>

#include "ternary_scalar.h"

namespace {
inline uint64_t pack64(const float* z, const float* thr, int n) {
  uint64_t word = 0;
  int c = 0;
  if (n == 64) {
    const uint32x4_t weight = {1u, 2u, 4u, 8u};
    for (; c < 64; c += 4) {
      const float32x4_t u = vaddq_f32(vld1q_f32(z + c), vld1q_f32(thr + c));
      word |= uint64_t(vaddvq_u32(vandq_u32(vcltzq_f32(u), weight))) << c;
    }
    return word;
  }
  for (; c < n; ++c) word |= uint64_t((z[c] + thr[c]) < 0.f) << c;
  return word;
}

// The ternary planes (see ternary_scalar.h): full words four lanes at a time as pack64, a
// partial word with the portable loop.
inline void pack_ternary64(const float* z, const float* thr, int n, uint64_t& s, uint64_t& nz) {
  if (n != 64) return pack_ternary64_scalar(z, thr, n, s, nz);
  uint64_t sw = 0, zw = 0;
  const uint32x4_t weight = {1u, 2u, 4u, 8u};
  const float32x4_t lo = vdupq_n_f32(-0.5f), hi = vdupq_n_f32(0.5f);
  for (int c = 0; c < 64; c += 4) {
    const float32x4_t u = vaddq_f32(vld1q_f32(z + c), vld1q_f32(thr + c));
    const uint32x4_t neg = vcltq_f32(u, lo), pos = vcgtq_f32(u, hi);
    sw |= uint64_t(vaddvq_u32(vandq_u32(neg, weight))) << c;
    zw |= uint64_t(vaddvq_u32(vandq_u32(vorrq_u32(neg, pos), weight))) << c;
  }
  s = sw, nz = zw;
}
}  // namespace

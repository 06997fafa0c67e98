// Sign packing of up to 64 channels with NEON compares: four lanes at a time, each lane's compare
// mask ANDed with its bit weight and summed across the vector (same bits as portable).
#pragma once
#include <arm_neon.h>
#include <cstdint>

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
}  // namespace

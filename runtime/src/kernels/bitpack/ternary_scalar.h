// Official mode's ternary activation t = round(clip(u, -1, 1)) of u = z + thr, packed as two words
// of up to 64 channels: S (bit 1: t = -1, u < -0.5) and Z (bit 1: t != 0, u < -0.5 or u > 0.5).
// The plain loop that every instruction set's pack_ternary64 matches bit for bit (and uses for a
// partial word where it has no masked loads).
#pragma once
#include <cstdint>

namespace {
inline void pack_ternary64_scalar(const float* z, const float* thr, int n, uint64_t& s, uint64_t& nz) {
  uint64_t sw = 0, zw = 0;
  for (int c = 0; c < n; ++c) {
    const float u = z[c] + thr[c];
    sw |= uint64_t(u < -0.5f) << c;
    zw |= uint64_t(u < -0.5f || u > 0.5f) << c;
  }
  s = sw, nz = zw;
}
}  // namespace

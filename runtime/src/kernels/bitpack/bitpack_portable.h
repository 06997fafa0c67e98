// Sign packing of up to 64 channels: bit c of the word = (z[c] + thr[c] < 0). Portable C++.
#pragma once
#include <cstdint>

#include "ternary_scalar.h"

namespace {
inline uint64_t pack64(const float* z, const float* thr, int n) {
  uint64_t word = 0;
  for (int c = 0; c < n; ++c) word |= uint64_t((z[c] + thr[c]) < 0.f) << c;
  return word;
}

inline void pack_ternary64(const float* z, const float* thr, int n, uint64_t& s, uint64_t& nz) {
  pack_ternary64_scalar(z, thr, n, s, nz);
}
}  // namespace

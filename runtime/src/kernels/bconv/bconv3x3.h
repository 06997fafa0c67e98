// Binary 3x3 convolution (ReActNet-A's, stride 1 or 2, padding 1) as a bit im2col in front of any
// instruction set's XNOR-popcount GEMM (Table::xnor_dots), with the exact zero-padding correction.
//
// Layout. The input is packed signs, one row of KWc = ceil(C / 64) words per pixel of a
// channels-last (B, H, W, C) map. An output pixel's im2col row is the 9 taps' words in tap order
// t = 3 * ky + kx (9 * KWc words); the weights of output channel n use the same order, so the
// GEMM's K is 9 * C with every tap's bits past C zero in both. A tap outside the map is filled
// with pad_value (+1: bits 0; -1: bits 1 for channels < C) and the row remembers it in a 9-bit
// mask.
//
// Padding. The PyTorch model zero-pads the already-signed input (a padded tap adds 0), so after
// the GEMM every row with a mask gets dot -= pad_value * sum over its padded taps t of
// tapsum[t][n] (the sum of output channel n's weight signs at tap t). Integers throughout: exact
// for either pad value, on every instruction set.
#pragma once

#include <cstdint>

namespace bimlp::kernels {

// Rows [m0, m0 + rows) of the output map (Ho x Wo per image) into cols (rows, 9 * KWc words);
// masks[r] gets the padded taps of row r.
inline void bit_im2col3x3(const uint64_t* bits, int64_t H, int64_t W, int C, int stride, int pad_value,
                          int64_t Ho, int64_t Wo, int64_t m0, int64_t rows, uint64_t* cols, uint16_t* masks) {
  const int KWc = (C + 63) / 64;
  const uint64_t last = C % 64 ? (uint64_t(1) << (C % 64)) - 1 : ~uint64_t(0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = m0 + r, b = m / (Ho * Wo), oy = (m / Wo) % Ho, ox = m % Wo;
    uint64_t* dst = cols + r * 9 * KWc;
    uint16_t mask = 0;
    for (int t = 0; t < 9; ++t) {
      const int64_t iy = oy * stride - 1 + t / 3, ix = ox * stride - 1 + t % 3;
      uint64_t* d = dst + t * KWc;
      if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
        const uint64_t* src = bits + ((b * H + iy) * W + ix) * KWc;
        for (int w = 0; w < KWc; ++w) d[w] = src[w];
      } else {
        mask = uint16_t(mask | (1u << t));
        for (int w = 0; w < KWc; ++w) d[w] = pad_value > 0 ? 0 : (w + 1 == KWc ? last : ~uint64_t(0));
      }
    }
    masks[r] = mask;
  }
}

// dots (rows, ldd) of the GEMM over padded rows -> the zero-padded conv's dots.
inline void pad_correct3x3(int32_t* dots, int64_t ldd, int64_t rows, const uint16_t* masks, const int32_t* tapsum,
                           int N, int pad_value) {
  for (int64_t r = 0; r < rows; ++r) {
    if (!masks[r]) continue;
    int32_t* d = dots + r * ldd;
    for (int t = 0; t < 9; ++t) {
      if (!((masks[r] >> t) & 1)) continue;
      const int32_t* ts = tapsum + int64_t(t) * N;
      for (int n = 0; n < N; ++n) d[n] -= pad_value * ts[n];
    }
  }
}

}  // namespace bimlp::kernels

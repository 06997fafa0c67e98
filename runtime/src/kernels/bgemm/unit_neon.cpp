// A binary 1x1 layer and its epilogue in one pass (NEON), as unit_avx2.cpp: each MR x 16 tile of
// popcounts goes through the epilogue as four quarters of 4 columns while it is still in
// registers, with the panel's per-channel parameters loaded once for its MR rows, and its sign
// bits are stored as the panel's two bytes of the packed row. The float operations are those of
// the shared epilogue (epilogue.inc) in the same order (mul then add, no FMA: the library is built
// with -ffp-contract=off), so the result is the same bits. Covered: shortcut none, identity or
// tile (optionally through its affine and PReLU), PReLU, output, packed planes -- the epilogues
// of the MBB front units and the channel MLP's fc1.
#include "xnor_neon.h"

namespace bimlp::kernels::neon {

namespace {

inline float32x4_t prelu(float32x4_t v, float32x4_t a) {  // v >= 0 ? v : a * v (NaN: a * v)
  return vbslq_f32(vcgeq_f32(v, vdupq_n_f32(0.f)), v, vmulq_f32(a, v));
}

// Lanes [0, n) of 4 floats at p (n may be <= 0 or >= 4), the others 0.
inline float32x4_t load4(const float* p, int n) {
  if (n >= 4) return vld1q_f32(p);
  float part[4] = {0.f, 0.f, 0.f, 0.f};
  for (int j = 0; j < n; ++j) part[j] = p[j];
  return vld1q_f32(part);
}

inline void store4(float* p, int n, float32x4_t v) {
  if (n >= 4) return vst1q_f32(p, v);
  float part[4];
  vst1q_f32(part, v);
  for (int j = 0; j < n; ++j) p[j] = part[j];
}

template <int MR, int RES, bool SCALE>
inline void unit_tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, const Epilogue& e,
                      int64_t m, int p) {
  uint64x2_t tot[MR][8];
  xnor_popcounts<MR>(A, lda, W, KW, tot);
  const int n0 = p * NR;
  const int64_t c0 = RES == RES_TILE ? n0 % e.res_channels : n0;  // panels never straddle a tile
  const int32x4_t kk = vdupq_n_s32(K);
  const uint32x4_t bit = {1u, 2u, 4u, 8u};
  // locals: the stores below may alias anything, so fields read in the loop would be reloaded
  const float* res = RES != RES_NONE ? e.res + m * e.ld_res + c0 : nullptr;
  float* out = e.out + m * e.ld_out + n0;
  const int64_t ld_res = e.ld_res, ld_out = e.ld_out;
  const Tail& t = e.tail;
  const int64_t ld_bytes = 8 * t.ld_pack;
  for (int h = 0; h < 2; ++h) {  // columns n0 + 8h .. n0 + 8h + 7, as two quarters of 4
    float32x4_t v[MR][2];
    for (int i = 0; i < 2; ++i) {
      const int q = 2 * h + i, o = 4 * q;
      const int valid = e.N - n0 - o;  // <= 0: a quarter past N (its bits are still written, as 0)
      const float32x4_t alpha = load4(e.alpha + n0 + o, valid), beta = load4(e.beta + n0 + o, valid);
      const float32x4_t slope = load4(e.slope + n0 + o, valid), shift = load4(e.shift + n0 + o, valid);
      float32x4_t rs = vdupq_n_f32(0.f), rb = rs, rl = rs, rh = rs;
      if (SCALE) {
        rs = load4(e.res_scale + n0 + o, valid), rb = load4(e.res_bias + n0 + o, valid);
        rl = load4(e.res_slope + n0 + o, valid), rh = load4(e.res_shift + n0 + o, valid);
      }
      for (int r = 0; r < MR; ++r) {
        const int32x4_t pc = vreinterpretq_s32_u32(columns4(tot[r], q));
        const float32x4_t d = vcvtq_f32_s32(vsubq_s32(kk, vshlq_n_s32(pc, 1)));
        float32x4_t x = vaddq_f32(vmulq_f32(alpha, d), beta);
        if (RES != RES_NONE) {
          float32x4_t s = load4(res + r * ld_res + o, valid);
          if (SCALE) s = vaddq_f32(prelu(vaddq_f32(vmulq_f32(rs, s), rb), rl), rh);
          x = vaddq_f32(x, s);
        }
        x = vaddq_f32(prelu(x, slope), shift);
        store4(out + r * ld_out + o, valid, x);
        v[r][i] = x;
      }
    }
    const int valid = e.N - n0 - 8 * h;
    const unsigned keep = valid >= 8 ? 0xffu : valid > 0 ? (1u << valid) - 1 : 0u;
    for (int q = 0; q < t.pack_count; ++q) {  // byte 2p + h of each packed plane's rows
      const float* thr_row = t.pack_thresh + int64_t(q) * e.N + n0 + 8 * h;
      const float32x4_t thr0 = load4(thr_row, valid), thr1 = load4(thr_row + 4, valid - 4);
      uint8_t* bytes = reinterpret_cast<uint8_t*>(t.pack_out + q * t.pack_plane + m * t.ld_pack) + 2 * p + h;
      for (int r = 0; r < MR; ++r) {
        const uint32x4_t neg0 = vcltq_f32(vaddq_f32(v[r][0], thr0), vdupq_n_f32(0.f));
        const uint32x4_t neg1 = vcltq_f32(vaddq_f32(v[r][1], thr1), vdupq_n_f32(0.f));
        const unsigned b = vaddvq_u32(vandq_u32(neg0, bit)) | (vaddvq_u32(vandq_u32(neg1, bit)) << 4);
        bytes[r * ld_bytes] = static_cast<uint8_t>(b & keep);
      }
    }
  }
}

constexpr int kUnitRows = 2;  // the popcount loop's accumulators and totals fill half the registers

}  // namespace

#include "unit_rows.inc"

}  // namespace bimlp::kernels::neon

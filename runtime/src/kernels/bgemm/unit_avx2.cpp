// A binary 1x1 layer and its epilogue in one pass (AVX2), as unit_avx512.cpp: each MR x 16 tile of
// popcounts goes through the epilogue as two halves of 8 columns while it is still in registers,
// with the panel's per-channel parameters loaded once for its MR rows, and its sign bits are
// stored as the panel's two bytes of the packed row. The float operations are those of the shared
// epilogue (epilogue.inc) in the same order (mul then add, no FMA), so the result is the same bits.
// Covered: shortcut none, identity or tile (optionally through its affine and PReLU), PReLU,
// output, packed planes -- the epilogues of the MBB front units and the channel MLP's fc1.
#include "xnor_avx2.h"

namespace bimlp::kernels::avx2 {

namespace {

inline __m256 prelu(__m256 v, __m256 a) {  // v >= 0 ? v : a * v, as the scalar code (NaN: a * v)
  const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NGE_UQ);
  return _mm256_blendv_ps(v, _mm256_mul_ps(v, a), neg);
}

template <int MR, int RES, bool SCALE>
inline void unit_tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, const Epilogue& e,
                      int64_t m, int p) {
  __m256i tot[MR][4];
  xnor_popcounts<MR>(A, lda, W, KW, tot);
  const int n0 = p * NR;
  const int64_t c0 = RES == RES_TILE ? n0 % e.res_channels : n0;  // panels never straddle a tile
  const __m256i kk = _mm256_set1_epi32(K);
  // locals: the stores below may alias anything, so fields read in the loop would be reloaded
  const float* res = RES != RES_NONE ? e.res + m * e.ld_res + c0 : nullptr;
  float* out = e.out + m * e.ld_out + n0;
  const int64_t ld_res = e.ld_res, ld_out = e.ld_out;
  const Tail& t = e.tail;
  const int64_t ld_bytes = 8 * t.ld_pack;
  for (int h = 0; h < 2; ++h) {  // columns n0 + 8h .. n0 + 8h + 7
    const int valid = e.N - n0 - 8 * h;  // <= 0: a half past N (its bits are still written, as 0)
    const __m256i k = lanes8(valid);
    const int64_t o = 8 * h;
    const __m256 alpha = _mm256_maskload_ps(e.alpha + n0 + o, k), beta = _mm256_maskload_ps(e.beta + n0 + o, k);
    const __m256 slope = _mm256_maskload_ps(e.slope + n0 + o, k), shift = _mm256_maskload_ps(e.shift + n0 + o, k);
    __m256 rs = _mm256_setzero_ps(), rb = rs, rl = rs, rh = rs;
    if (SCALE) {
      rs = _mm256_maskload_ps(e.res_scale + n0 + o, k), rb = _mm256_maskload_ps(e.res_bias + n0 + o, k);
      rl = _mm256_maskload_ps(e.res_slope + n0 + o, k), rh = _mm256_maskload_ps(e.res_shift + n0 + o, k);
    }
    __m256 v[MR];
    for (int r = 0; r < MR; ++r) {
      const __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(kk, _mm256_slli_epi32(columns8(tot[r], h), 1)));
      v[r] = _mm256_add_ps(_mm256_mul_ps(alpha, d), beta);
      if (RES != RES_NONE) {
        __m256 s = _mm256_maskload_ps(res + r * ld_res + o, k);
        if (SCALE) s = _mm256_add_ps(prelu(_mm256_add_ps(_mm256_mul_ps(rs, s), rb), rl), rh);
        v[r] = _mm256_add_ps(v[r], s);
      }
      v[r] = _mm256_add_ps(prelu(v[r], slope), shift);
      _mm256_maskstore_ps(out + r * ld_out + o, k, v[r]);
    }
    const int keep = valid >= 8 ? 0xff : valid > 0 ? (1 << valid) - 1 : 0;
    for (int q = 0; q < t.pack_count; ++q) {  // byte 2p + h of each packed plane's rows
      const __m256 thr = _mm256_maskload_ps(t.pack_thresh + int64_t(q) * e.N + n0 + o, k);
      uint8_t* bytes = reinterpret_cast<uint8_t*>(t.pack_out + q * t.pack_plane + m * t.ld_pack) + 2 * p + h;
      for (int r = 0; r < MR; ++r) {
        const __m256 neg = _mm256_cmp_ps(_mm256_add_ps(v[r], thr), _mm256_setzero_ps(), _CMP_LT_OQ);
        bytes[r * ld_bytes] = static_cast<uint8_t>(_mm256_movemask_ps(neg) & keep);
      }
    }
  }
}

constexpr int kUnitRows = 2;  // the popcount loop's accumulators fill the 16 registers at 2 rows

}  // namespace

#include "unit_rows.inc"

}  // namespace bimlp::kernels::avx2

// A binary 1x1 layer and its epilogue in one pass (AVX-512 VPOPCNTDQ): each MR x 16 tile of dot
// products goes through the epilogue while it is still in registers, with the panel's per-channel
// parameters loaded once for its MR rows, and its sign bits are stored as the panel's 16 bits of
// the packed row. The dots never reach memory. The float operations are those of the shared
// epilogue (epilogue.inc) in the same order (mul then add, no FMA), so the result is the same bits.
// It covers the epilogues of the MBB front units and the channel MLP's fc1: shortcut none,
// identity or tile (optionally through its affine and PReLU), PReLU, output, packed planes.
#include "xnor_avx512.h"

namespace bimlp::kernels::avx512 {

namespace {

inline __m512 prelu(__m512 v, __m512 a) {  // v >= 0 ? v : a * v, as the scalar code (NaN: a * v)
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NGE_UQ);
  return _mm512_mask_mul_ps(v, neg, v, a);
}

template <int MR, int RES, bool SCALE>
inline void unit_tile(const uint64_t* A, int64_t lda, const uint64_t* W, int KW, int K, const Epilogue& e,
                      int64_t m, int p) {
  __m512i pc[MR];
  xnor_popcounts<MR>(A, lda, W, KW, pc);
  const int n0 = p * NR;
  const __mmask16 k = lanes(e.N - n0);
  const __m512 alpha = _mm512_maskz_loadu_ps(k, e.alpha + n0), beta = _mm512_maskz_loadu_ps(k, e.beta + n0);
  const __m512 slope = _mm512_maskz_loadu_ps(k, e.slope + n0), shift = _mm512_maskz_loadu_ps(k, e.shift + n0);
  __m512 rs = _mm512_setzero_ps(), rb = rs, rl = rs, rh = rs;
  if (SCALE) {
    rs = _mm512_maskz_loadu_ps(k, e.res_scale + n0), rb = _mm512_maskz_loadu_ps(k, e.res_bias + n0);
    rl = _mm512_maskz_loadu_ps(k, e.res_slope + n0), rh = _mm512_maskz_loadu_ps(k, e.res_shift + n0);
  }
  const int64_t c0 = RES == RES_TILE ? n0 % e.res_channels : n0;  // panels never straddle a tile
  const __m512i kk = _mm512_set1_epi32(K);
  // locals: the vector stores below may alias anything, so fields read in the loop would be reloaded
  const float* res = RES != RES_NONE ? e.res + m * e.ld_res + c0 : nullptr;
  float* out = e.out + m * e.ld_out + n0;
  const int64_t ld_res = e.ld_res, ld_out = e.ld_out;
  const Tail& t = e.tail;
  const int64_t ld_bits = 4 * t.ld_pack;
  __m512 v[MR];
  for (int r = 0; r < MR; ++r) {
    const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(kk, _mm512_slli_epi32(pc[r], 1)));
    v[r] = _mm512_add_ps(_mm512_mul_ps(alpha, d), beta);
    if (RES != RES_NONE) {
      __m512 s = _mm512_maskz_loadu_ps(k, res + r * ld_res);
      if (SCALE) s = _mm512_add_ps(prelu(_mm512_add_ps(_mm512_mul_ps(rs, s), rb), rl), rh);
      v[r] = _mm512_add_ps(v[r], s);
    }
    v[r] = _mm512_add_ps(prelu(v[r], slope), shift);
    _mm512_mask_storeu_ps(out + r * ld_out, k, v[r]);
  }
  for (int q = 0; q < t.pack_count; ++q) {  // the panel's 16 bits of each packed plane's rows
    const __m512 thr = _mm512_maskz_loadu_ps(k, t.pack_thresh + int64_t(q) * e.N + n0);
    uint16_t* bits = reinterpret_cast<uint16_t*>(t.pack_out + q * t.pack_plane + m * t.ld_pack) + p;
    for (int r = 0; r < MR; ++r)
      bits[r * ld_bits] = _mm512_mask_cmp_ps_mask(k, _mm512_add_ps(v[r], thr), _mm512_setzero_ps(), _CMP_LT_OQ);
  }
}

constexpr int kUnitRows = 8;  // the panel's parameters serve more rows (5 % faster than 6 here)

}  // namespace

#include "unit_rows.inc"

}  // namespace bimlp::kernels::avx512

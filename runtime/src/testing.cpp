// Single kernels of one instruction set behind a C interface, for the tests.
#include "bimlp_runtime_testing.h"

#include <string>
#include <vector>

#include "artifact.h"
#include "kernels/bconv/bconv3x3.h"
#include "kernels/kernels.h"

using namespace bimlp::kernels;

namespace {

int lookup(const char* isa, const Table** t) {
  if (!isa) return -1;
  for (int i = 0; i < ISA_COUNT; ++i)
    if (std::string(isa) == isa_name(i)) {
      if (!isa_supported(i)) return -2;
      *t = &table_for(i);
      return 0;
    }
  return -1;
}

bool bad_dims(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims)
    if (d < 1 || d > (1 << 20)) return true;
  return false;
}

int fail(const char* msg);  // sets the API's last error (api.cpp)

#define BIMLP_TESTING_PROLOGUE(...)                                                     \
  const Table* t = nullptr;                                                             \
  if (const int rc = lookup(isa, &t))                                                   \
    return fail(rc == -1 ? "unknown instruction set" : "instruction set not supported"); \
  if (bad_dims({__VA_ARGS__})) return fail("dimension out of range");

std::vector<uint64_t> pack_rows(const Table& t, const float* x, int64_t M, int64_t C, const float* thresh) {
  const int64_t KW = (C + 63) / 64;
  std::vector<uint64_t> bits(size_t(M * KW));
  Tail tail;
  tail.pack_count = 1, tail.pack_thresh = thresh, tail.pack_out = bits.data(), tail.ld_pack = KW;
  t.tail_rows(tail, x, C, M, int(C));
  return bits;
}

// The binary weight panels of sign(w) (N, K): NR output channels per panel, KW words each.
std::vector<uint64_t> weight_panels(const Table& t, const float* w, int64_t N, int64_t K) {
  const std::vector<float> zero(size_t(K), 0.f);
  const auto Wb = pack_rows(t, w, N, K, zero.data());
  const int64_t KW = (K + 63) / 64, P = (N + NR - 1) / NR;
  std::vector<uint64_t> panels(size_t(P * KW * NR), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < KW; ++k) panels[size_t(((n / NR) * KW + k) * NR + n % NR)] = Wb[size_t(n * KW + k)];
  return panels;
}

const char* token_conv_args(const float* x, const float* w, const float* out, int64_t Cs, int64_t T, int axis,
                            int pairs) {
  if (!x || !w || !out) return "null pointer";
  if ((pairs != 1 && pairs != 2) || Cs % pairs || T % 2 == 0 || T > 63 || (axis != 0 && axis != 1))
    return "bad token conv arguments";
  return nullptr;
}

}  // namespace

extern "C" int bimlp_testing_set_error(const char* msg);
namespace {
int fail(const char* msg) { return bimlp_testing_set_error(msg); }
}  // namespace

extern "C" {

int bimlp_testing_isa_supported(const char* isa) {
  const Table* t = nullptr;
  return lookup(isa, &t) == 0;
}

int bimlp_testing_pack(const char* isa, const float* x, int64_t M, int64_t C, const float* thresh, uint64_t* out) {
  BIMLP_TESTING_PROLOGUE(M, C)
  if (!x || !thresh || !out) return fail("null pointer");
  const auto bits = pack_rows(*t, x, M, C, thresh);
  std::copy(bits.begin(), bits.end(), out);
  return 0;
}

int bimlp_testing_bgemm(const char* isa, const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* out) {
  BIMLP_TESTING_PROLOGUE(M, K, N)
  if (!x || !w || !out) return fail("null pointer");
  const std::vector<float> zero(size_t(K), 0.f);
  const auto A = pack_rows(*t, x, M, K, zero.data());
  const auto panels = weight_panels(*t, w, N, K);
  const int64_t KW = (K + 63) / 64;
  std::vector<float> alpha(size_t(N), 1.f), beta(size_t(N), 0.f), scratch(size_t(2 * N));
  std::vector<int32_t> dots(size_t(24 * N));
  Epilogue e;
  e.alpha = alpha.data(), e.beta = beta.data(), e.N = int(N), e.ld_out = N;
  for (int64_t m0 = 0; m0 < M; m0 += 24) {  // in row blocks, as the executor
    const int64_t rows = std::min<int64_t>(24, M - m0);
    t->xnor_dots(A.data() + m0 * KW, KW, rows, panels.data(), int(KW), int(N), int(K), dots.data(), N);
    Epilogue eb = e;
    eb.out = out + m0 * N;
    t->epilogue_rows(eb, rows, dots.data(), N, scratch.data());
  }
  return 0;
}

int bimlp_testing_unit(const char* isa, int fused, const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                       const float* params, int res_kind, const float* res, int64_t res_channels, int scale,
                       float* out, uint64_t* bits, int* used_fused) {
  BIMLP_TESTING_PROLOGUE(M, K, N)
  if (!x || !w || !params || !out || !bits || !used_fused || (res_kind != RES_NONE && !res))
    return fail("null pointer");
  if (res_kind < RES_NONE || res_kind > RES_TILE || (res_kind == RES_IDENTITY && res_channels != N) ||
      (res_kind == RES_TILE && (res_channels < 1 || N % res_channels)) || (scale && res_kind == RES_NONE))
    return fail("bad unit arguments");
  const std::vector<float> zero(size_t(K), 0.f);
  const auto A = pack_rows(*t, x, M, K, zero.data());
  const auto panels = weight_panels(*t, w, N, K);
  const int64_t KW = (K + 63) / 64, KWn = (N + 63) / 64;
  std::vector<float> scratch(size_t(2 * N));
  std::vector<int32_t> dots(size_t(24 * N));
  Epilogue e;
  e.alpha = params, e.beta = params + N, e.slope = params + 2 * N, e.shift = params + 3 * N, e.N = int(N);
  if (scale) e.res_scale = params + 4 * N, e.res_bias = params + 5 * N, e.res_slope = params + 6 * N, e.res_shift = params + 7 * N;
  e.res_kind = res_kind, e.res_channels = int(res_channels), e.ld_res = res_channels, e.ld_out = N;
  e.tail.pack_count = 1, e.tail.pack_thresh = params + 8 * N, e.tail.ld_pack = KWn;
  *used_fused = 0;
  for (int64_t m0 = 0; m0 < M; m0 += 24) {  // in row blocks, as the executor
    const int64_t rows = std::min<int64_t>(24, M - m0);
    Epilogue eb = e;
    eb.out = out + m0 * N, eb.tail.pack_out = bits + m0 * KWn;
    if (res_kind != RES_NONE) eb.res = res + m0 * res_channels;
    if (fused && t->xnor_unit && t->xnor_unit(A.data() + m0 * KW, KW, rows, panels.data(), int(KW), int(K), eb)) {
      *used_fused = 1;
      continue;
    }
    t->xnor_dots(A.data() + m0 * KW, KW, rows, panels.data(), int(KW), int(N), int(K), dots.data(), N);
    t->epilogue_rows(eb, rows, dots.data(), N, scratch.data());
  }
  return 0;
}

int bimlp_testing_tgemm(const char* isa, const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* out) {
  BIMLP_TESTING_PROLOGUE(M, K, N)
  if (!x || !w || !out) return fail("null pointer");
  const std::vector<float> zero(size_t(K), 0.f);
  const int64_t KW = (K + 63) / 64;
  // the executor's ternary packing (the tail of the producing layer): per row the sign words, then
  // the nonzero words
  std::vector<uint64_t> SZ(size_t(M * 2 * KW), 0);
  Tail tail;
  tail.pack_count = 1, tail.pack_thresh = zero.data(), tail.pack_out = SZ.data(), tail.ld_pack = 2 * KW;
  tail.ternary = true;
  t->tail_rows(tail, x, K, M, int(K));
  const auto panels = weight_panels(*t, w, N, K);
  std::vector<float> alpha(size_t(N), 1.f), beta(size_t(N), 0.f), scratch(size_t(2 * N));
  std::vector<int32_t> dots(size_t(24 * N));
  Epilogue e;
  e.alpha = alpha.data(), e.beta = beta.data(), e.N = int(N), e.ld_out = N;
  for (int64_t m0 = 0; m0 < M; m0 += 24) {  // in row blocks, as the executor
    const int64_t rows = std::min<int64_t>(24, M - m0);
    const uint64_t* S = SZ.data() + m0 * 2 * KW;
    t->ternary_dots(S, S + KW, 2 * KW, rows, panels.data(), int(KW), int(N), dots.data(), N);
    Epilogue eb = e;
    eb.out = out + m0 * N;
    t->epilogue_rows(eb, rows, dots.data(), N, scratch.data());
  }
  return 0;
}

int bimlp_testing_token_conv(const char* isa, const float* x, int64_t B, int64_t H, int64_t W, int64_t Cs,
                             const float* w, int64_t T, int axis, int pairs, float* out) {
  BIMLP_TESTING_PROLOGUE(B, H, W, Cs, T)
  if (const char* why = token_conv_args(x, w, out, Cs, T, axis, pairs)) return fail(why);
  const int64_t M = B * H * W, N = Cs / pairs;
  std::vector<int8_t> planes(size_t(M * Cs)), taps(size_t(T * Cs));
  for (size_t i = 0; i < planes.size(); ++i) planes[i] = x[i] < 0.f ? -1 : 1;
  for (size_t i = 0; i < taps.size(); ++i) taps[i] = w[i] < 0.f ? -1 : 1;
  std::vector<float> alpha(size_t(N), 1.f), beta(size_t(N), 0.f), scratch(size_t(2 * N));
  std::vector<int32_t> dots(size_t(W * N));
  std::vector<int8_t> acc(static_cast<size_t>(Cs), 0);
  Epilogue e;
  e.alpha = alpha.data(), e.beta = beta.data(), e.N = int(N), e.out = out, e.ld_out = N;
  t->token_conv(planes.data(), taps.data(), H, W, int(Cs), int(T), axis, pairs, e, 0, B * H,
                Scratch{scratch.data(), dots.data(), acc.data()});
  return 0;
}

int bimlp_testing_token_conv_f32(const char* isa, const float* x, int64_t B, int64_t H, int64_t W, int64_t Cs,
                                 const float* w, int64_t T, int axis, int pairs, float* out) {
  BIMLP_TESTING_PROLOGUE(B, H, W, Cs, T)
  if (const char* why = token_conv_args(x, w, out, Cs, T, axis, pairs)) return fail(why);
  const int64_t M = B * H * W, N = Cs / pairs;
  // ternary planes as the executor writes them (tail of the producing layer, zero threshold)
  std::vector<int8_t> planes(size_t(M * Cs));
  const std::vector<float> zero(size_t(Cs), 0.f);
  Tail tail;
  tail.sign_count = 1, tail.sign_thresh = zero.data(), tail.sign_out = planes.data(), tail.ld_sign = Cs;
  tail.ternary = true;
  t->tail_rows(tail, x, Cs, M, int(Cs));
  std::vector<float> alpha(size_t(N), 1.f), beta(size_t(N), 0.f), scratch(size_t(2 * N)), fd(size_t(W * N + Cs));
  Epilogue e;
  e.alpha = alpha.data(), e.beta = beta.data(), e.N = int(N), e.out = out, e.ld_out = N;
  t->token_conv_f32(planes.data(), w, H, W, int(Cs), int(T), axis, pairs, e, 0, B * H,
                    Scratch{scratch.data(), nullptr, nullptr, fd.data()});
  return 0;
}

int bimlp_testing_bconv3x3(const char* isa, const float* x, int64_t B, int64_t H, int64_t W, int64_t C,
                           const float* w, int64_t N, int stride, int pad_value, float* out) {
  BIMLP_TESTING_PROLOGUE(B, H, W, C, N)
  if (!x || !w || !out) return fail("null pointer");
  if ((stride != 1 && stride != 2) || (pad_value != 1 && pad_value != -1)) return fail("bad bconv3x3 arguments");
  // the executor's path: packed input rows, weight panels of K = 9 C in tap-major words, bit
  // im2col in row blocks, the ISA's XNOR GEMM, the zero-padding correction, a plain epilogue
  const int64_t KWc = (C + 63) / 64, KW = 9 * KWc, P = (N + NR - 1) / NR;
  const int64_t Ho = stride == 2 ? (H + 1) / 2 : H, Wo = stride == 2 ? (W + 1) / 2 : W, Mo = B * Ho * Wo;
  const std::vector<float> zero(size_t(C), 0.f);
  const auto bits = pack_rows(*t, x, B * H * W, C, zero.data());
  std::vector<uint64_t> panels(size_t(P * KW * NR), 0);
  std::vector<int32_t> tapsum(size_t(9 * N), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < 9; ++k) {  // w (N, C, 3, 3)
        const bool neg = w[(n * C + c) * 9 + k] < 0.f;
        tapsum[size_t(k * N + n)] += neg ? -1 : 1;
        if (neg) panels[size_t(((n / NR) * KW + k * KWc + c / 64) * NR + n % NR)] |= uint64_t(1) << (c % 64);
      }
  std::vector<float> alpha(size_t(N), 1.f), beta(size_t(N), 0.f), scratch(size_t(2 * N));
  std::vector<int32_t> dots(size_t(24 * N));
  std::vector<uint64_t> cols(size_t(24 * KW));
  std::vector<uint16_t> masks(24);
  Epilogue e;
  e.alpha = alpha.data(), e.beta = beta.data(), e.N = int(N), e.ld_out = N;
  for (int64_t m0 = 0; m0 < Mo; m0 += 24) {
    const int64_t rows = std::min<int64_t>(24, Mo - m0);
    bit_im2col3x3(bits.data(), H, W, int(C), stride, pad_value, Ho, Wo, m0, rows, cols.data(), masks.data());
    t->xnor_dots(cols.data(), KW, rows, panels.data(), int(KW), int(N), int(9 * C), dots.data(), N);
    pad_correct3x3(dots.data(), N, rows, masks.data(), tapsum.data(), int(N), pad_value);
    Epilogue eb = e;
    eb.out = out + m0 * N;
    t->epilogue_rows(eb, rows, dots.data(), N, scratch.data());
  }
  return 0;
}

int bimlp_testing_sgemm(const char* isa, const float* a, int64_t M, int64_t K, const float* w, int64_t N, float* out) {
  BIMLP_TESTING_PROLOGUE(M, K, N)
  if (!a || !w || !out) return fail("null pointer");
  const int64_t P = (N + SGEMM_NB - 1) / SGEMM_NB;
  std::vector<float> panels(size_t(P * K * SGEMM_NB), 0.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) panels[size_t(((n / SGEMM_NB) * K + k) * SGEMM_NB + n % SGEMM_NB)] = w[n * K + k];
  t->sgemm(a, K, M, int(K), panels.data(), int(N), nullptr, out, N);
  return 0;
}

}  // extern "C"

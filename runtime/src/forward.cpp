// The executor: one native call runs the whole network. Every call takes an arena (all
// activation buffers and per-thread scratch, laid out once per input shape) from the model's pool,
// so concurrent calls never share memory. Inside a call one OpenMP team walks the plan; each pass
// splits rows (or image rows) between the threads and ends at a barrier. Row-local work is fused
// into one pass over row blocks that stay in cache: the five PATM front units with the wave input,
// the mix with the projection, the channel MLP's fc1 (its epilogue packs the hidden signs) with
// fc2, and every producing epilogue also writes the next layer's normalized input and its signs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "arena.h"
#include "kernels/bconv/bconv3x3.h"
#include "model.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace bimlp {

using namespace kernels;

namespace {
constexpr int RB = 24;              // rows per GEMM block (a multiple of every micro-kernel's MR)
constexpr double kMaxArenaBytes = 32.0 * (1ull << 30);
constexpr float kGroupNormEps = 1e-5f;

int64_t kw_of(int64_t c) { return (c + 63) / 64; }
}  // namespace

namespace {

struct Bump {
  size_t off = 0;
  std::vector<std::pair<void**, size_t>> want;
  template <class T>
  void take(T*& p, double count) {
    // sizes were checked against kMaxArenaBytes in double before this cast
    const size_t bytes = (size_t(count) * sizeof(T) + 63) / 64 * 64;
    want.emplace_back(reinterpret_cast<void**>(&p), off);
    off += bytes;
  }
};

std::vector<StageShape> stage_shapes(const Config& cfg, int64_t B, int64_t H, int64_t W) {
  std::vector<StageShape> s;
  const int64_t k = cfg.stem_kernel, st = cfg.stem_stride, p = cfg.stem_pad;
  int64_t h = (H + 2 * p - k) / st + 1, w = (W + 2 * p - k) / st + 1;
  for (size_t i = 0; i < cfg.dims.size(); ++i) {
    s.push_back({h, w, B * h * w, cfg.dims[i]});
    h = (h + 1) / 2, w = (w + 1) / 2;
  }
  return s;
}

// ReActNet: the stem's output, then every block's output
std::vector<StageShape> react_shapes(const Config& cfg, int64_t B, int64_t H, int64_t W) {
  std::vector<StageShape> s;
  const int64_t k = cfg.stem_kernel, st = cfg.stem_stride, p = cfg.stem_pad;
  int64_t h = (H + 2 * p - k) / st + 1, w = (W + 2 * p - k) / st + 1;
  s.push_back({h, w, B * h * w, cfg.stem_dim});
  for (size_t i = 0; i < cfg.dims.size(); ++i) {
    if (cfg.strides[i] == 2) h = (h + 1) / 2, w = (w + 1) / 2;  // 3x3 stride 2 pad 1 = avgpool2 ceil
    s.push_back({h, w, B * h * w, cfg.dims[i]});
  }
  return s;
}

}  // namespace

void Model::check_input(int64_t B, int64_t C, int64_t H, int64_t W) const {
  if (B < 1 || B > 65536) throw ArgError("batch size " + std::to_string(B) + " out of range [1, 65536]");
  if (C != cfg_.in_chans)
    throw ArgError("input has " + std::to_string(C) + " channels, the model takes " + std::to_string(cfg_.in_chans));
  const int64_t lo = std::max<int64_t>(1, cfg_.stem_kernel - 2 * cfg_.stem_pad);
  if (H < lo || W < lo || H > 16384 || W > 16384)
    throw ArgError("input size " + std::to_string(H) + "x" + std::to_string(W) + " out of range [" +
                   std::to_string(lo) + ", 16384]");
}

std::unique_ptr<Arena> Model::acquire(int64_t B, int64_t H, int64_t W, int T) const {
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    for (size_t i = 0; i < pool_.size(); ++i)
      if (pool_[i]->B == B && pool_[i]->H == H && pool_[i]->W == W && pool_[i]->T == T) {
        std::unique_ptr<Arena> a = std::move(pool_[i]);
        pool_.erase(pool_.begin() + long(i));
        return a;
      }
  }
  auto a = std::make_unique<Arena>();
  a->B = B, a->H = H, a->W = W, a->T = T;
  Bump b;
  double thread_f, thread_e, thread_i, thread_b, thread_u, thread_d;
  if (cfg_.reactnet) {
    a->shapes = react_shapes(cfg_, B, H, W);
    double MC = 0, Mmax = 0, Cmax = 0;
    for (const StageShape& s : a->shapes)
      MC = std::max(MC, double(s.M) * double(s.C)), Mmax = std::max(Mmax, double(s.M)), Cmax = std::max(Cmax, double(s.C));
    const double KWmax = double(kw_of(int64_t(Cmax)));
    for (float** p : {&a->x, &a->x2, &a->z, &a->cc}) b.take(*p, MC);  // x, next x, y, pooled shortcut
    b.take(a->front, Mmax * KWmax);    // packed block input
    b.take(a->mlpbits, Mmax * KWmax);  // packed y
    b.take(a->pooled, B * Cmax);
    thread_f = RB * double(stem_.K) + 64, thread_e = 2 * Cmax + 64, thread_i = RB * Cmax;
    thread_b = 2 * RB + 64, thread_u = RB * 9 * KWmax + 8, thread_d = 0;  // b: padded-tap masks (uint16)
  } else {
  a->shapes = stage_shapes(cfg_, B, H, W);
  double MC = 0, MC2 = 0, Mmax = 0, Cmax = 0, KWmax = 0, Nmax = 0, rows_max = 0, WC = 0, KWh = 0;
  for (size_t i = 0; i < a->shapes.size(); ++i) {
    const StageShape& s = a->shapes[i];
    const double M = double(s.M), C = double(s.C);
    MC = std::max(MC, M * C);
    if (i + 1 < a->shapes.size()) MC2 = std::max(MC2, M * double(cfg_.dims[i + 1]));
    Mmax = std::max(Mmax, M);
    Cmax = std::max(Cmax, C);
    KWmax = std::max(KWmax, double(kw_of(s.C)));
    KWh = std::max(KWh, double(kw_of(cfg_.hidden[i])));
    Nmax = std::max({Nmax, double(cfg_.hidden[i]), 3 * C});
    rows_max = std::max(rows_max, double(B * s.H));
    WC = std::max(WC, double(s.W) * C);
  }
  const double Hmax = double(*std::max_element(cfg_.hidden.begin(), cfg_.hidden.end()));
  const double tw = cfg_.ternary ? 2 : 1;  // words per packed channel group: S, or S and Z
  const double ds_K = cfg_.conv_downsample ? 9 * Cmax : 0;  // im2col of the 3x3 downsampling
  thread_f = RB * std::max({2 * Cmax, Hmax, double(stem_.K), Cmax, ds_K}) + 4 * Cmax + 64;
  thread_i = std::max(RB * Nmax, WC);
  thread_e = 2 * Nmax + 64, thread_b = 2 * Cmax + 64, thread_u = RB * (KWh + KWmax) * tw + 8;
  thread_d = cfg_.ternary ? WC + 2 * Cmax + 64 : 0;  // float token-conv dots and sums
  b.take(a->x, MC);
  b.take(a->x2, MC);
  b.take(a->ds, std::max(MC2, 1.0));
  for (float** p : {&a->z, &a->pm_h, &a->pm_w, &a->cc, &a->hh, &a->ww}) b.take(*p, MC);
  b.take(a->planes_h, 2 * MC);
  b.take(a->planes_w, 2 * MC);
  b.take(a->planes1, 2 * MC);
  b.take(a->front, 5 * Mmax * KWmax * tw);
  b.take(a->mlpbits, Mmax * KWmax * tw);
  b.take(a->g, B * Cmax);
  b.take(a->gbits, B * KWmax * tw);
  b.take(a->rwh, B * Cmax);
  b.take(a->rwhbits, B * KWmax * tw);
  b.take(a->rwo, 3 * B * Cmax);
  b.take(a->a3, 3 * B * Cmax);
  b.take(a->gn_ss, 2 * B * Cmax);
  b.take(a->pooled, B * Cmax);
  b.take(a->rowsum, rows_max * Cmax);
  b.take(a->rowstat, 2 * Mmax);
  }
  std::vector<float*> tf(static_cast<size_t>(T), nullptr), te(static_cast<size_t>(T), nullptr);
  std::vector<int32_t*> ti(static_cast<size_t>(T), nullptr);
  std::vector<int8_t*> tb(static_cast<size_t>(T), nullptr);
  std::vector<uint64_t*> tu(static_cast<size_t>(T), nullptr);
  std::vector<float*> td(static_cast<size_t>(T), nullptr);
  for (int t = 0; t < T; ++t) {
    b.take(tf[size_t(t)], thread_f);
    b.take(te[size_t(t)], thread_e);
    b.take(ti[size_t(t)], thread_i);
    b.take(tb[size_t(t)], thread_b);
    b.take(tu[size_t(t)], thread_u);
    if (thread_d > 0) b.take(td[size_t(t)], thread_d);
  }
  if (double(b.off) > kMaxArenaBytes)
    throw ArgError("input of batch " + std::to_string(B) + " at " + std::to_string(H) + "x" + std::to_string(W) +
                " needs " + std::to_string(double(b.off) / 1e9) + " GB of workspace, more than the 32 GB limit");
  a->mem.resize(b.off + 64);
  uint8_t* base = a->mem.data();
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  for (auto& w : b.want) *w.first = base + w.second;
  a->th.resize(size_t(T));
  for (int t = 0; t < T; ++t)
    a->th[size_t(t)] = {tf[size_t(t)], te[size_t(t)], ti[size_t(t)], tb[size_t(t)], tu[size_t(t)], td[size_t(t)]};
  return a;
}

void Model::release(std::unique_ptr<Arena> a) const {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  pool_.push_back(std::move(a));
  if (pool_.size() > 8) pool_.erase(pool_.begin());  // keep the most recent shapes only
}

// One thread's walk through the plan (every thread of the team runs it).
struct Exec {
  const Model& m;
  const Table& k;
  Arena& a;
  int tid, T;
  double* times;
  int step = 0;
  std::chrono::steady_clock::time_point t0;
  float* X = nullptr;   // the stage activation (this thread's view; swapped by downsampling)
  float* X2 = nullptr;
  // official mode: packed rows hold two planes (sign, nonzero), token convs real-valued taps
  bool ternary() const { return m.cfg_.ternary; }
  int64_t tw() const { return ternary() ? 2 : 1; }

  void barrier() { a.barrier.wait(); }
  void mark() {  // after a pass (and its barrier): thread 0 books the time since the last mark
    if (times && tid == 0) {
      const auto now = std::chrono::steady_clock::now();
      times[step] += std::chrono::duration<double>(now - t0).count();
      t0 = now;
    }
    ++step;
  }
  void range(int64_t n, int64_t& r0, int64_t& r1) const {
    r0 = n * tid / T;
    r1 = n * (tid + 1) / T;
  }
  Arena::Thread& ts() { return a.th[size_t(tid)]; }

  static Epilogue unit(const Binary1x1& L) {
    Epilogue e;
    e.alpha = L.alpha.data(), e.beta = L.beta.data(), e.N = L.N;
    e.slope = L.slope.data(), e.shift = L.shift.data();
    return e;
  }
  static Epilogue unit(const TokenConv& L) {
    Epilogue e;
    e.alpha = L.alpha.data(), e.beta = L.beta.data(), e.N = L.N;
    e.slope = L.slope.data(), e.shift = L.shift.data();
    return e;
  }
  static void shortcut(Epilogue& e, Shortcut sc, const float* src, int64_t ld, int channels) {
    e.res_kind = sc.kind;
    if (sc.kind == RES_NONE) return;
    e.res = src, e.ld_res = ld, e.res_channels = channels, e.group = sc.group;
  }
  static void res_params(Epilogue& e, const Binary1x1& L) {
    if (L.res_params.empty() || e.res_kind == RES_NONE) return;
    const float* rp = L.res_params.data();
    e.res_scale = rp, e.res_bias = rp + L.N, e.res_slope = rp + 2 * L.N, e.res_shift = rp + 3 * L.N;
  }
  // rows [0, rows) of a 1x1 layer from packed bits A (KW words per row), epilogue at block row 0
  void gemm(const Binary1x1& L, const uint64_t* A, int64_t rows, const Epilogue& e) {
    // the instruction set's one-pass kernel where it has one for this epilogue (same bits)
    if (!ternary() && k.xnor_unit && k.xnor_unit(A, L.KW, rows, L.panels.data(), L.KW, L.K, e)) return;
    if (ternary())
      k.ternary_dots(A, A + L.KW, 2 * L.KW, rows, L.panels.data(), L.KW, L.N, ts().i, L.N);
    else
      k.xnor_dots(A, L.KW, rows, L.panels.data(), L.KW, L.N, L.K, ts().i, L.N);
    k.epilogue_rows(e, rows, ts().i, L.N, ts().epi);
  }
  // image rows [q0, q1) of a token conv from its int8 planes (sign or ternary)
  void token_conv(const TokenConv& tc, const int8_t* planes, int64_t H, int64_t W, const Epilogue& e, int64_t q0,
                  int64_t q1) {
    Scratch sc{ts().epi, ts().i, ts().b, ts().fd};
    if (ternary())
      k.token_conv_f32(planes, tc.ftaps.data(), H, W, tc.Cs, tc.T, tc.axis, tc.pairs, e, q0, q1, sc);
    else
      k.token_conv(planes, tc.taps.data(), H, W, tc.Cs, tc.T, tc.axis, tc.pairs, e, q0, q1, sc);
  }
  // the norm tail of a block input (norm1 or norm2 of a batch-norm model): z, bits, sign planes
  Tail norm_tail(const std::vector<float>& scale, const std::vector<float>& shift, int64_t m0, int64_t M,
                 int64_t C, int packs, const float* pack_thresh, uint64_t* pack_out, int signs,
                 const float* sign_thresh) const {
    Tail t;
    t.norm_scale = scale.data(), t.norm_shift = shift.data();
    t.z_out = a.z + m0 * C, t.ld_z = C;
    t.pack_count = packs, t.pack_thresh = pack_thresh, t.ternary = ternary();
    t.pack_out = pack_out + m0 * kw_of(C) * tw(), t.pack_plane = M * kw_of(C) * tw(), t.ld_pack = kw_of(C) * tw();
    t.sign_count = signs, t.sign_thresh = sign_thresh;
    t.sign_out = signs ? a.planes1 + m0 * C : nullptr, t.sign_plane = M * C, t.ld_sign = C;
    return t;
  }

  // ---------------------------------------------------------------------------------------------
  // GroupNorm(1, C) of x (M = B * HW rows): per-row sums, per-sample scale/shift (thread 0), then
  // `apply(m0, rows, scale, shift)` on each thread's rows, split at sample boundaries.
  template <class Apply>
  void group_norm(const float* x, int64_t M, int64_t C, const std::vector<float>& w, const std::vector<float>& bias,
                  Apply&& apply) {
    int64_t r0, r1;
    range(M, r0, r1);
    for (int64_t r = r0; r < r1; ++r) {
      double s1 = 0, s2 = 0;
      const float* row = x + r * C;
      for (int64_t c = 0; c < C; ++c) s1 += row[c], s2 += double(row[c]) * row[c];
      a.rowstat[2 * r] = s1, a.rowstat[2 * r + 1] = s2;
    }
    barrier();
    const int64_t B = a.B, HW = M / B;
    if (tid == 0) {
      for (int64_t b = 0; b < B; ++b) {
        double s1 = 0, s2 = 0;
        for (int64_t r = b * HW; r < (b + 1) * HW; ++r) s1 += a.rowstat[2 * r], s2 += a.rowstat[2 * r + 1];
        const double n = double(HW * C), mean = s1 / n, var = std::max(s2 / n - mean * mean, 0.0);
        const double rstd = 1.0 / std::sqrt(var + double(kGroupNormEps));
        for (int64_t c = 0; c < C; ++c) {
          a.gn_ss[b * 2 * C + c] = float(rstd * w[size_t(c)]);
          a.gn_ss[b * 2 * C + C + c] = float(double(bias[size_t(c)]) - mean * rstd * w[size_t(c)]);
        }
      }
    }
    barrier();
    for (int64_t r = r0; r < r1;) {
      const int64_t b = r / HW, e = std::min(r1, (b + 1) * HW);
      apply(r, e - r, a.gn_ss + b * 2 * C, a.gn_ss + b * 2 * C + C);
      r = e;
    }
    barrier();
  }
  static void affine_inplace(float* x, int64_t rows, int64_t C, const float* s, const float* t) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) x[r * C + c] = x[r * C + c] * s[c] + t[c];
  }

  // ---------------------------------------------------------------------------------------------
  // A full-precision conv over this thread's output rows: im2col (K index ci * k * k + ky * k + kx,
  // the weight's order; zero padding) from the NCHW image (the stem) or a channels-last map, float
  // GEMM with the folded bias, then RPReLU when the conv has one and no GroupNorm follows.
  void float_conv(const FloatConv& f, const float* src, bool channels_last, int64_t Hi, int64_t Wi, int64_t Ho,
                  int64_t Wo, int64_t M, float* out) {
    const int64_t C = f.cout, Ci = f.cin, ks = f.kernel, sd = f.stride, pd = f.pad;
    int64_t r0, r1;
    range(M, r0, r1);
    float* col = ts().f;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t mm = m0 + r, b = mm / (Ho * Wo), oy = (mm / Wo) % Ho, ox = mm % Wo;
        float* dst = col + r * f.K;
        for (int64_t ci = 0; ci < Ci; ++ci)
          for (int64_t ky = 0; ky < ks; ++ky) {
            const int64_t iy = oy * sd - pd + ky;
            for (int64_t kx = 0; kx < ks; ++kx) {
              const int64_t ix = ox * sd - pd + kx;
              const bool in = iy >= 0 && iy < Hi && ix >= 0 && ix < Wi;
              *dst++ = !in ? 0.f
                       : channels_last ? src[((b * Hi + iy) * Wi + ix) * Ci + ci]
                                       : src[((b * Ci + ci) * Hi + iy) * Wi + ix];
            }
          }
      }
      k.sgemm(col, f.K, rows, int(f.K), f.panels.data(), int(C), f.bias.data(), out + m0 * C, C);
      if (f.act && f.gn_weight.empty()) k.rprelu_rows(out + m0 * C, rows, int(C), f.b1.data(), f.slope.data(), f.b2.data());
    }
    barrier();
  }
  // GroupNorm (and RPReLU when the conv has one) of a float conv's whole output
  void float_conv_norm(const FloatConv& f, float* out, int64_t M) {
    if (f.gn_weight.empty()) return;
    const int64_t C = f.cout;
    group_norm(out, M, C, f.gn_weight, f.gn_bias, [&](int64_t m0, int64_t rows, const float* sc, const float* sh) {
      affine_inplace(out + m0 * C, rows, C, sc, sh);
      if (f.act) k.rprelu_rows(out + m0 * C, rows, int(C), f.b1.data(), f.slope.data(), f.b2.data());
    });
  }

  // ---------------------------------------------------------------------------------------------
  void stem(const float* img) {
    const StageShape& s0 = a.shapes[0];
    float_conv(m.stem_, img, false, a.H, a.W, s0.H, s0.W, s0.M, X);
    float_conv_norm(m.stem_, X, s0.M);
    mark();
  }

  // Wave-MLP's downsampling: conv 3x3 stride 2 pad 1 (BatchNorm folded) of the channels-last stage
  // activation, straight to the next stage's resolution, then GroupNorm when the model has it
  void conv_downsample(const Stage& st, size_t i) {
    const StageShape& s = a.shapes[i];
    const StageShape& so = a.shapes[i + 1];
    float_conv(st.down, X, true, s.H, s.W, so.H, so.W, so.M, X2);
    float_conv_norm(st.down, X2, so.M);
    std::swap(X, X2);  // each thread swaps its own copy
    mark();
  }

  void downsample(const Stage& st, size_t i) {
    if (m.cfg_.conv_downsample) return conv_downsample(st, i);
    const FloatConv& f = st.down;
    const StageShape& s = a.shapes[i];
    const int64_t M = s.M, Ci = f.cin, C = f.cout;
    int64_t r0, r1;
    range(M, r0, r1);
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      float* out = a.ds + m0 * C;
      k.sgemm(X + m0 * Ci, Ci, rows, int(Ci), f.panels.data(), int(C), f.bias.data(), out, C);
      if (f.gn_weight.empty()) k.rprelu_rows(out, rows, int(C), f.b1.data(), f.slope.data(), f.b2.data());
    }
    barrier();
    float_conv_norm(f, a.ds, M);
    const int64_t Ho = (s.H + 1) / 2;
    range(a.B * Ho, r0, r1);
    if (r0 < r1) k.pool_rows(a.ds, s.H, s.W, int(C), X2, r0, r1, ts().f);
    barrier();
    std::swap(X, X2);  // each thread swaps its own copy
    mark();
  }

  // norm1 of block b on the stage activation: z, the five front bit planes
  void norm1(const Block& b, const StageShape& s) {
    const int64_t M = s.M, C = s.C;
    if (!m.cfg_.group_norm) {
      int64_t r0, r1;
      range(M, r0, r1);
      if (r0 < r1) {
        const Tail t = norm_tail(b.norm1_scale, b.norm1_shift, r0, M, C, 5, b.front_thresh.data(), a.front, 0, nullptr);
        k.tail_rows(t, X + r0 * C, C, r1 - r0, int(C));
      }
      barrier();
    } else {
      group_norm(X, M, C, b.norm1_scale, b.norm1_shift, [&](int64_t m0, int64_t rows, const float* sc, const float* sh) {
        Tail t = norm_tail(b.norm1_scale, b.norm1_shift, m0, M, C, 5, b.front_thresh.data(), a.front, 0, nullptr);
        t.norm_scale = sc, t.norm_shift = sh;
        k.tail_rows(t, X + m0 * C, C, rows, int(C));
      });
    }
    mark();
  }

  void norm2(const Block& b, const StageShape& s) {
    const int64_t M = s.M, C = s.C;
    const int signs = b.multi_branch ? 2 : 0;
    if (m.cfg_.group_norm)
      group_norm(X, M, C, b.norm2_scale, b.norm2_shift, [&](int64_t m0, int64_t rows, const float* sc, const float* sh) {
        Tail t = norm_tail(b.norm2_scale, b.norm2_shift, m0, M, C, 1, b.mlp_fc1.thresh.data(), a.mlpbits, signs,
                           b.sign_thresh.data());
        t.norm_scale = sc, t.norm_shift = sh;
        k.tail_rows(t, X + m0 * C, C, rows, int(C));
      });
    mark();  // batch norm: fused into the projection's epilogue
  }

  void patm(const Block& b, const StageShape& s) {
    const int64_t M = s.M, C = s.C, KW = kw_of(C), KWt = KW * tw(), H = s.H, W = s.W, HW = H * W, B = a.B;
    int64_t r0, r1;
    // front: theta/amplitude of both token mixers (straight into the wave input), the channel unit
    range(M, r0, r1);
    float* theta = ts().f;
    float* amp = theta + RB * C;
    float* wave = amp + RB * C;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      const Binary1x1* units[2][2] = {{&b.theta_h, &b.fc_h}, {&b.theta_w, &b.fc_w}};
      for (int d = 0; d < 2; ++d) {
        for (int u = 0; u < 2; ++u) {
          Epilogue e = unit(*units[d][u]);
          shortcut(e, {RES_IDENTITY, 1}, a.z + m0 * C, C, int(C));
          e.out = u == 0 ? theta : amp, e.ld_out = C;
          gemm(*units[d][u], a.front + (size_t(u == 0 ? d : 2 + d) * M + m0) * KWt, rows, e);
        }
        const TokenConv& tc = d == 0 ? b.tfc_h : b.tfc_w;
        k.wave_rows(amp, theta, rows, int(C), tc.thresh.data(), (d == 0 ? a.planes_h : a.planes_w) + m0 * 2 * C,
                    (d == 0 ? a.pm_h : a.pm_w) + m0 * C, wave, ternary());
      }
      Epilogue e = unit(b.fc_c);
      shortcut(e, {RES_IDENTITY, 1}, a.z + m0 * C, C, int(C));
      e.out = a.cc + m0 * C, e.ld_out = C;
      gemm(b.fc_c, a.front + (4 * size_t(M) + m0) * KWt, rows, e);
    }
    barrier();
    mark();
    // token mixers along W and H, then the per-image-row sums of h + w + c + z
    range(B * H, r0, r1);
    for (int64_t q = r0; q < r1; ++q) {
      for (int d = 0; d < 2; ++d) {
        const TokenConv& tc = d == 0 ? b.tfc_h : b.tfc_w;
        Epilogue e = unit(tc);
        if (b.tfc_shortcut) shortcut(e, {RES_IDENTITY, 1}, d == 0 ? a.pm_h : a.pm_w, C, int(C));
        e.out = d == 0 ? a.hh : a.ww, e.ld_out = C;
        token_conv(tc, d == 0 ? a.planes_h : a.planes_w, H, W, e, q, q + 1);
      }
      double* acc = a.rowsum + q * C;
      for (int64_t c = 0; c < C; ++c) acc[c] = 0.0;
      const int64_t o = q * W * C;
      k.sum4_rows(a.hh + o, a.ww + o, a.cc + o, a.z + o, W, int(C), acc);
    }
    barrier();
    mark();
    // re-weighting MLP on the pooled means (B rows), softmax over the three branches (thread 0)
    if (tid == 0) {
      for (int64_t bb = 0; bb < B; ++bb)
        for (int64_t c = 0; c < C; ++c) {
          double acc = 0.0;
          for (int64_t h = 0; h < H; ++h) acc += a.rowsum[(bb * H + h) * C + c];
          a.g[bb * C + c] = float(acc / double(HW));
        }
      Tail tg;
      tg.pack_count = 1, tg.pack_thresh = b.rw_fc1.thresh.data(), tg.pack_out = a.gbits, tg.ld_pack = KWt;
      tg.ternary = ternary();
      k.tail_rows(tg, a.g, C, B, int(C));
      const int64_t Cq = b.rw_fc1.N, C3 = b.rw_fc2.N;
      for (int64_t m0 = 0; m0 < B; m0 += RB) {
        const int64_t rows = std::min<int64_t>(RB, B - m0);
        Epilogue e1 = unit(b.rw_fc1);
        shortcut(e1, b.rw_sc1, a.g + m0 * C, C, int(C));
        res_params(e1, b.rw_fc1);
        e1.out = a.rwh + m0 * Cq, e1.ld_out = Cq;
        e1.tail.pack_count = 1, e1.tail.pack_thresh = b.rw_fc2.thresh.data(), e1.tail.ternary = ternary();
        e1.tail.pack_out = a.rwhbits + m0 * kw_of(Cq) * tw(), e1.tail.ld_pack = kw_of(Cq) * tw();
        gemm(b.rw_fc1, a.gbits + m0 * KWt, rows, e1);
        Epilogue e2 = unit(b.rw_fc2);
        shortcut(e2, b.rw_sc2, a.rwh + m0 * Cq, Cq, int(Cq));
        e2.out = a.rwo + m0 * C3, e2.ld_out = C3;
        gemm(b.rw_fc2, a.rwhbits + m0 * kw_of(Cq) * tw(), rows, e2);
      }
      // reweight output channel 3c + k is branch k's weight for channel c
      for (int64_t i = 0; i < B * C; ++i) {
        const float* l = a.rwo + 3 * i;
        const float mx = std::max(l[0], std::max(l[1], l[2]));
        const float e0 = std::exp(l[0] - mx), e1 = std::exp(l[1] - mx), e2 = std::exp(l[2] - mx);
        const float sum = e0 + e1 + e2;
        a.a3[i] = e0 / sum, a.a3[B * C + i] = e1 / sum, a.a3[2 * B * C + i] = e2 / sum;
      }
    }
    barrier();
    mark();
    // mix of the branches, then the projection updating x (its tail: norm2 input for batch norm)
    range(M, r0, r1);
    float* mix = ts().f;
    uint64_t* mbits = ts().u;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      for (int64_t r = 0; r < rows;) {  // split at sample boundaries (per-sample weights)
        const int64_t bb = (m0 + r) / HW, n = std::min(rows - r, (bb + 1) * HW - (m0 + r));
        const int64_t o = (m0 + r) * C;
        k.mix_rows(a.hh + o, a.ww + o, a.cc + o, a.z + o, n, int(C), a.a3 + bb * C, a.a3 + (B + bb) * C,
                   a.a3 + (2 * B + bb) * C, b.proj.thresh.data(), mix + r * C, mbits + r * KWt, ternary());
        r += n;
      }
      Epilogue e = unit(b.proj);
      shortcut(e, {RES_IDENTITY, 1}, mix, C, int(C));
      e.base = X + m0 * C, e.out = X + m0 * C, e.ld_out = C;
      if (!m.cfg_.group_norm)
        e.tail = norm_tail(b.norm2_scale, b.norm2_shift, m0, M, C, 1, b.mlp_fc1.thresh.data(), a.mlpbits,
                           b.multi_branch ? 2 : 0, b.sign_thresh.data());
      gemm(b.proj, mbits, rows, e);
    }
    barrier();
    mark();
  }

  void branches(const Block& b, const StageShape& s) {
    if (b.multi_branch) {
      const int64_t C = s.C;
      int64_t r0, r1;
      range(a.B * s.H, r0, r1);
      for (int d = 0; d < 2; ++d) {
        const TokenConv& tc = d == 0 ? b.sfc_h : b.sfc_w;
        Epilogue e = unit(tc);
        shortcut(e, {RES_IDENTITY, 1}, a.z, C, int(C));
        e.out = d == 0 ? a.hh : a.ww, e.ld_out = C;
        if (r0 < r1) token_conv(tc, a.planes1 + d * s.M * C, s.H, s.W, e, r0, r1);
      }
      barrier();
    }
    mark();
  }

  // channel MLP: fc1 -> hidden block in cache (its epilogue packs the signs for fc2) -> fc2, which
  // updates x (residual mix with the branches) and writes the next block's norm1 input
  void mlp(const Block& b, const StageShape& s, const Block* next) {
    const int64_t M = s.M, C = s.C, KWt = kw_of(C) * tw(), Hd = b.hidden, KWh = kw_of(Hd) * tw();
    int64_t r0, r1;
    range(M, r0, r1);
    float* hidden = ts().f;
    uint64_t* hbits = ts().u;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      Epilogue e1 = unit(b.mlp_fc1);
      shortcut(e1, b.mlp_sc1, a.z + m0 * C, C, int(C));
      res_params(e1, b.mlp_fc1);
      e1.out = hidden, e1.ld_out = Hd;
      e1.tail.pack_count = 1, e1.tail.pack_thresh = b.mlp_fc2.thresh.data(), e1.tail.pack_out = hbits;
      e1.tail.ld_pack = KWh, e1.tail.ternary = ternary();
      gemm(b.mlp_fc1, a.mlpbits + m0 * KWt, rows, e1);
      Epilogue e2 = unit(b.mlp_fc2);
      shortcut(e2, b.mlp_sc2, hidden, Hd, int(Hd));
      e2.base = X + m0 * C, e2.out = X + m0 * C, e2.ld_out = C;
      if (b.multi_branch) {
        e2.gain = b.gain, e2.e1 = a.hh + m0 * C, e2.w1 = b.b0, e2.e2 = a.ww + m0 * C, e2.w2 = b.b1;
      }
      if (next)
        e2.tail = norm_tail(next->norm1_scale, next->norm1_shift, m0, M, C, 5, next->front_thresh.data(), a.front,
                            0, nullptr);
      gemm(b.mlp_fc2, hbits, rows, e2);
    }
    barrier();
    mark();
  }

  void head(float* out) {
    const StageShape& s = a.shapes.back();
    const int64_t M = s.M, C = s.C, HW = s.H * s.W, B = a.B;
    const float* x = X;
    if (!m.final_gn_weight_.empty()) {
      group_norm(X, M, C, m.final_gn_weight_, m.final_gn_bias_,
                 [&](int64_t m0, int64_t rows, const float* sc, const float* sh) {
                   for (int64_t r = 0; r < rows; ++r)
                     for (int64_t c = 0; c < C; ++c) a.z[(m0 + r) * C + c] = X[(m0 + r) * C + c] * sc[c] + sh[c];
                 });
      x = a.z;
    }
    if (tid == 0) {
      for (int64_t bb = 0; bb < B; ++bb)
        for (int64_t c = 0; c < C; ++c) {
          double acc = 0.0;
          for (int64_t r = bb * HW; r < (bb + 1) * HW; ++r) acc += x[r * C + c];
          a.pooled[bb * C + c] = float(acc / double(HW));
        }
      k.sgemm(a.pooled, C, B, int(C), m.head_panels_.data(), m.cfg_.num_classes, m.head_bias_.data(), out,
              m.cfg_.num_classes);
    }
    barrier();
    mark();
  }

  // ---------------------------------------------------------------------------------------------
  // ReActNet-A. One block: pack x (thresholds of the 3x3's RSign) and, for stride 2, the 2x2
  // average pool of x (ceil mode: the mean of the valid pixels); then the binary 3x3 (bit im2col,
  // XNOR GEMM, padding correction) whose epilogue adds the shortcut, RPReLU, writes y and packs
  // it for the 1x1; then the binary 1x1 (its shortcut y, tiled twice when the channels double).
  void react_block(const ReactBlock& rb, const StageShape& si, const StageShape& so) {
    const int64_t C = rb.cin, KWc = kw_of(C), H = si.H, W = si.W, Ho = so.H, Wo = so.W, Mo = so.M;
    int64_t r0, r1;
    range(si.M, r0, r1);
    if (r0 < r1) {
      Tail t;
      t.pack_count = 1, t.pack_thresh = rb.conv3.thresh.data(), t.pack_out = a.front + r0 * KWc, t.ld_pack = KWc;
      k.tail_rows(t, X + r0 * C, C, r1 - r0, int(C));
    }
    if (rb.stride == 2) {
      range(Mo, r0, r1);
      for (int64_t m = r0; m < r1; ++m) {
        const int64_t b = m / (Ho * Wo), oy = (m / Wo) % Ho, ox = m % Wo;
        const int64_t y1 = std::min(2 * oy + 2, H), x1 = std::min(2 * ox + 2, W);
        float* o = a.cc + m * C;
        for (int64_t c = 0; c < C; ++c) o[c] = 0.f;
        for (int64_t y = 2 * oy; y < y1; ++y)
          for (int64_t x = 2 * ox; x < x1; ++x) {
            const float* px = X + ((b * H + y) * W + x) * C;
            for (int64_t c = 0; c < C; ++c) o[c] += px[c];
          }
        const float n = float((y1 - 2 * oy) * (x1 - 2 * ox));
        for (int64_t c = 0; c < C; ++c) o[c] /= n;
      }
    }
    barrier();
    range(Mo, r0, r1);
    uint16_t* masks = reinterpret_cast<uint16_t*>(ts().b);
    const int pad = m.cfg_.pad_value;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      bit_im2col3x3(a.front, H, W, int(C), rb.stride, pad, Ho, Wo, m0, rows, ts().u, masks);
      k.xnor_dots(ts().u, rb.conv3.KW, rows, rb.conv3.panels.data(), rb.conv3.KW, rb.conv3.N, rb.conv3.K, ts().i, C);
      pad_correct3x3(ts().i, C, rows, masks, rb.tapsum.data(), int(C), pad);
      Epilogue e = unit(rb.conv3);
      shortcut(e, {RES_IDENTITY, 1}, (rb.stride == 2 ? a.cc : X) + m0 * C, C, int(C));
      e.out = a.z + m0 * C, e.ld_out = C;
      e.tail.pack_count = 1, e.tail.pack_thresh = rb.pw.thresh.data();
      e.tail.pack_out = a.mlpbits + m0 * KWc, e.tail.ld_pack = KWc;
      k.epilogue_rows(e, rows, ts().i, C, ts().epi);
    }
    barrier();
    mark();
    const int64_t N = rb.cout;
    for (int64_t m0 = r0; m0 < r1; m0 += RB) {
      const int64_t rows = std::min<int64_t>(RB, r1 - m0);
      Epilogue e = unit(rb.pw);
      shortcut(e, N == C ? Shortcut{RES_IDENTITY, 1} : Shortcut{RES_TILE, 1}, a.z + m0 * C, C, int(C));
      e.out = X2 + m0 * N, e.ld_out = N;
      gemm(rb.pw, a.mlpbits + m0 * KWc, rows, e);
    }
    barrier();
    std::swap(X, X2);
    mark();
  }

  void forward_reactnet(const float* img, float* out) {
    t0 = std::chrono::steady_clock::now();
    X = a.x, X2 = a.x2;
    stem(img);
    for (size_t i = 0; i < m.react_.size(); ++i) react_block(m.react_[i], a.shapes[i], a.shapes[i + 1]);
    head(out);
  }

  void forward(const float* img, float* out) {
    if (m.cfg_.reactnet) return forward_reactnet(img, out);
    t0 = std::chrono::steady_clock::now();
    X = a.x, X2 = a.x2;
    stem(img);
    for (size_t i = 0; i < m.stages_.size(); ++i) {
      const Stage& st = m.stages_[i];
      const StageShape& s = a.shapes[i];
      for (size_t j = 0; j < st.blocks.size(); ++j) {
        const Block& b = st.blocks[j];
        if (j == 0 || m.cfg_.group_norm) norm1(b, s);
        else mark();  // fused into the previous block's fc2 epilogue
        patm(b, s);
        norm2(b, s);
        branches(b, s);
        const Block* next = j + 1 < st.blocks.size() && !m.cfg_.group_norm ? &st.blocks[j + 1] : nullptr;
        mlp(b, s, next);
      }
      if (st.has_downsample) downsample(st, i);
    }
    head(out);
  }
};

namespace {
// Whole images go to one thread in sub-batches whose first-stage activation is about this size,
// so that a sub-batch's passes stay in the core's cache (one image of BiMLP-S at 224 is 0.8 MB:
// a sub-batch of one; small images are grouped so that their last stages still fill GEMM tiles).
constexpr double kChunkBytes = 512.0 * 1024;
}  // namespace

int64_t Model::images_per_chunk(int64_t H, int64_t W) const {
  const StageShape s = (cfg_.reactnet ? react_shapes(cfg_, 1, H, W) : stage_shapes(cfg_, 1, H, W))[0];
  const double bytes = double(s.M) * double(s.C) * sizeof(float);
  return std::max<int64_t>(1, int64_t(kChunkBytes / std::max(bytes, 1.0)));
}

// The arenas of one thread that runs `images` images alone, `chunk` per executor call: `full`
// (batch chunk) and, when chunk does not divide the count, `rest` (the remainder). They are taken
// before any thread starts, so that nothing inside a parallel region can throw.
Model::Lane Model::lane(int64_t images, int64_t chunk, int64_t H, int64_t W) const {
  Lane l;
  if (images <= 0) return l;
  l.full = acquire(std::min(chunk, images), H, W, 1);
  if (images > chunk && images % chunk) l.rest = acquire(images % chunk, H, W, 1);
  for (Arena* a : {l.full.get(), l.rest.get()})
    if (a) a->barrier.n = 1;
  return l;
}

// Images [i0, i1) of x on the calling thread alone, on the arenas of its lane.
void Model::run_alone(const float* x, int64_t i0, int64_t i1, const Lane& l, float* out, double* times) const {
  if (i0 >= i1) return;
  const int64_t image = int64_t(cfg_.in_chans) * l.full->H * l.full->W, classes = cfg_.num_classes;
  const int64_t chunk = l.full->B;
  FlushDenormals ftz;
  for (int64_t i = i0; i < i1; i += chunk) {
    Arena& a = i1 - i >= chunk ? *l.full : *l.rest;
    Exec ex{*this, *table_, a, 0, 1, times, 0, {}, nullptr, nullptr};
    ex.forward(x + i * image, out + i * classes);
  }
}

void Model::release(Lane l) const {
  if (l.full) release(std::move(l.full));
  if (l.rest) release(std::move(l.rest));
}

// A batch of one image is split between the threads inside every pass. Larger batches go to the
// threads as whole images: each of the T threads runs floor(B / T) images alone, in sub-batches
// that stay in its cache (no barriers, no shared rows), and the B % T left over run as one batch
// split by the team. Every pass computes each image's rows in the same order either way, so the
// logits are the same bits for every batch size and thread count. A profiled run books thread 0's
// steps (its images, then the team's), which run in parallel with the others'.
void Model::run(const float* x, int64_t B, int64_t H, int64_t W, float* out, double* times) const {
  check_input(B, cfg_.in_chans, H, W);
  const int T = threads_;
  const int64_t chunk = images_per_chunk(H, W);
#if defined(_OPENMP)
  if (T > 1) {
    const int64_t alone = B > 1 ? B / T * T : 0;
    const int64_t image = int64_t(cfg_.in_chans) * H * W, classes = cfg_.num_classes;
    std::vector<Lane> lanes;
    for (int t = 0; t < T && alone > 0; ++t) lanes.push_back(lane(alone / T, chunk, H, W));
    std::unique_ptr<Arena> team;
    if (alone < B) {
      team = acquire(B - alone, H, W, T);
      team->barrier.n = T;
    }
    bool serial = false;
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num();
      if (omp_get_num_threads() == T) {
        if (alone > 0)
          run_alone(x, alone * t / T, alone * (t + 1) / T, lanes[size_t(t)], out, t == 0 ? times : nullptr);
        if (team) {
          FlushDenormals ftz;
          Exec ex{*this, *table_, *team, t, T, times, 0, {}, nullptr, nullptr};
          ex.forward(x + alone * image, out + alone * classes);
        }
      } else if (t == 0) {
        serial = true;  // fewer threads than asked (e.g. inside another parallel region)
      }
    }
    for (Lane& l : lanes) release(std::move(l));
    if (team) release(std::move(team));
    if (!serial) return;
  }
#endif
  Lane l = lane(B, chunk, H, W);
  run_alone(x, 0, B, l, out, times);
  release(std::move(l));
}

Model::~Model() = default;

}  // namespace bimlp

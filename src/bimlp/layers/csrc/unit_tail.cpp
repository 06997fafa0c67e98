// The tail of the binary unit, R(BN(y) + s), as two passes forward and two backward.
//
// y (the binary conv's output) is channels-last: M = N*H*W rows of C channels. BN is BatchNorm2d
// (batch statistics in training, running statistics otherwise) and R is RPReLU:
// PReLU(t + b1; a) + b2. With scale = gamma * invstd and shift = beta - mean * scale + b1 the
// unit is
//     t = y * scale + shift + s,    out = (t > 0 ? t : a * t) + b2,
// and its backward, with gt = dL/dt = g * (t > 0 ? 1 : a) and yc = y - mean,
//     gb2 = sum g, ga = sum g * min(t, 0), gbeta = gb1 = sum gt, ggamma = invstd * sum gt * yc,
//     gy = gamma * invstd * (gt - sum gt / M - yc * invstd^2 * sum gt * yc / M)   (training),
//     gy = gamma * invstd * gt                                                   (evaluation),
//     gs = gt.
// The shortcut s is BiMLP's Uni-shortcut of a channels-last source v of Cs channels (v = src +
// s_bias when a bias is given: the shifted input of the unit), read row by row:
//     same (Cs = C):       s = v,                         gv = gt,
//     mean (Cs = f * C):   s[k] = mean(v[f k .. f k + f - 1]),   gv[f k + i] = gt[k] / f,
//     tile (C = f * Cs):   s[k] = v[k mod Cs],            gv[j] = sum over i of gt[i Cs + j].
#include "rows.h"

#include <cmath>

namespace bimlp {
namespace {

constexpr int64_t kSame = 0, kMean = 1, kTile = 2;

// The shortcut's source and how it maps onto the unit's channels.
template <typename T>
struct Shortcut {
  const T* src;   // M rows of cs channels, or nullptr (no shortcut)
  const T* bias;  // cs values added to src first, or nullptr
  int64_t map, f, cs;

  // s's row r (c values): src itself where it can be, else written into buf
  const T* row(int64_t r, T* __restrict__ buf, int64_t c) const {
    const T* __restrict__ v = src + r * cs;
    if (map == kSame && !bias) return v;
    if (map == kSame) {
      for (int64_t k = 0; k < c; ++k) buf[k] = v[k] + bias[k];
    } else if (map == kTile) {
      for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < cs; ++j) buf[i * cs + j] = bias ? v[j] + bias[j] : v[j];
    } else {
      for (int64_t k = 0; k < c; ++k) {
        const T* __restrict__ vk = v + k * f;
        const T* bk = bias ? bias + k * f : nullptr;
        T acc = bk ? vk[0] + bk[0] : vk[0];
        for (int64_t i = 1; i < f; ++i) acc += bk ? vk[i] + bk[i] : vk[i];
        buf[k] = acc / T(f);
      }
    }
    return buf;
  }

  // the source's gradient row (cs values) from gt's row (c values)
  void grad_row(const T* __restrict__ gt, T* __restrict__ gv, int64_t c) const {
    if (map == kSame) {
      for (int64_t k = 0; k < c; ++k) gv[k] = gt[k];
    } else if (map == kTile) {
      for (int64_t j = 0; j < cs; ++j) gv[j] = gt[j];
      for (int64_t i = 1; i < f; ++i)
        for (int64_t j = 0; j < cs; ++j) gv[j] += gt[i * cs + j];
    } else {
      for (int64_t k = 0; k < c; ++k)
        for (int64_t i = 0; i < f; ++i) gv[k * f + i] = gt[k] / T(f);
    }
  }
};

template <typename T>
Shortcut<T> shortcut_of(const c10::optional<torch::Tensor>& s,
                        const c10::optional<torch::Tensor>& s_bias, int64_t map, int64_t f,
                        int64_t m, int64_t c) {
  if (!s) return {nullptr, nullptr, kSame, 1, c};
  TORCH_CHECK(map == kSame || map == kMean || map == kTile, "unknown shortcut map ", map);
  TORCH_CHECK(f >= 1 && (map != kSame || f == 1), "bad shortcut factor ", f);
  int64_t cs = map == kMean ? c * f : (map == kTile ? c / f : c);
  TORCH_CHECK(map != kTile || cs * f == c, "tile: ", c, " channels are not ", f, " x ", cs);
  check_rows(*s, "s", m, cs);
  TORCH_CHECK(s->scalar_type() == c10::CppTypeToScalarType<T>::value, "s must have y's dtype");
  if (s_bias) check_vector(*s_bias, "s_bias", cs);
  return {s->data_ptr<T>(), s_bias ? s_bias->data_ptr<T>() : nullptr, map, f, cs};
}

template <typename T>
BIMLP_ROWS void tail_forward_rows(const T* __restrict__ y, const Shortcut<T>& sc,
                                  const T* __restrict__ scale, const T* __restrict__ shift,
                                  const T* __restrict__ a, const T* __restrict__ b2,
                                  T* __restrict__ out, int64_t r0, int64_t r1, int64_t c,
                                  T* __restrict__ buf) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ yr = y + r * c;
    T* __restrict__ o = out + r * c;
    if (sc.src) {
      const T* __restrict__ sr = sc.row(r, buf, c);
      for (int64_t k = 0; k < c; ++k) {
        T t = yr[k] * scale[k] + shift[k] + sr[k];
        o[k] = (t > T(0) ? t : a[k] * t) + b2[k];
      }
    } else {
      for (int64_t k = 0; k < c; ++k) {
        T t = yr[k] * scale[k] + shift[k];
        o[k] = (t > T(0) ? t : a[k] * t) + b2[k];
      }
    }
  }
}

template <typename T>
void tail_forward_impl(const T* y, const Shortcut<T>& sc, const T* scale, const T* shift,
                       const T* a, const T* b2, T* out, int64_t m, int64_t c) {
  at::parallel_for(0, m, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(c);
    tail_forward_rows<T>(y, sc, scale, shift, a, b2, out, begin, end, c, buf.data());
  });
}

template <typename T>
BIMLP_ROWS void moment_rows(const T* __restrict__ y, T* __restrict__ acc, int64_t r0, int64_t r1,
                            int64_t c) {
  T* __restrict__ s1 = acc;
  T* __restrict__ s2 = acc + c;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ yr = y + r * c;
    for (int64_t k = 0; k < c; ++k) {
      T d = yr[k] - y[k];
      s1[k] += d;
      s2[k] += d * d;
    }
  }
}

// mean and biased variance per channel, shifted by the first row for stability
template <typename T>
void moments(const T* y, int64_t m, int64_t c, std::vector<double>& mean,
             std::vector<double>& var) {
  std::vector<double> sums;
  chunked_sums<T>(m, 2 * c, sums, [&](int64_t r0, int64_t r1, T* acc) {
    moment_rows<T>(y, acc, r0, r1, c);
  });
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (int64_t k = 0; k < c; ++k) {
    double d = sums[k] / m;
    var[k] = std::max(sums[c + k] / m - d * d, 0.0);
    mean[k] = d + double(y[k]);
  }
}

// sums of one chunk of rows, 4 x C: sum g, sum g * min(t, 0), sum gt, sum gt * (y - mean)
template <typename T, bool HasS>
BIMLP_ROWS void backward_sum_rows(const T* __restrict__ g, const T* __restrict__ y,
                                  const Shortcut<T>& sc, const T* __restrict__ scale,
                                  const T* __restrict__ shift, const T* __restrict__ a,
                                  const T* __restrict__ mu, T* __restrict__ acc, int64_t r0,
                                  int64_t r1, int64_t c, T* __restrict__ buf) {
  T* __restrict__ sg = acc;
  T* __restrict__ sneg = acc + c;
  T* __restrict__ sgt = acc + 2 * c;
  T* __restrict__ sgty = acc + 3 * c;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ gr = g + r * c;
    const T* __restrict__ yr = y + r * c;
    const T* __restrict__ sr = HasS ? sc.row(r, buf, c) : nullptr;
    for (int64_t k = 0; k < c; ++k) {
      T t = yr[k] * scale[k] + shift[k];
      if constexpr (HasS) t += sr[k];
      T gk = gr[k];
      T neg = t > T(0) ? T(0) : t;  // min(t, 0)
      T gt = t > T(0) ? gk : a[k] * gk;
      sg[k] += gk;
      sneg[k] += gk * neg;
      sgt[k] += gt;
      sgty[k] += gt * (yr[k] - mu[k]);
    }
  }
}

// gy (and gs) of rows [r0, r1); q1..q3 the per-channel factors of gy
template <typename T, bool HasS>
BIMLP_ROWS void backward_grad_rows(const T* __restrict__ g, const T* __restrict__ y,
                                   const Shortcut<T>& sc, const T* __restrict__ scale,
                                   const T* __restrict__ shift, const T* __restrict__ a,
                                   const T* __restrict__ mu, const T* __restrict__ q1,
                                   const T* __restrict__ q2, const T* __restrict__ q3,
                                   T* __restrict__ gy, T* __restrict__ gs, int64_t r0, int64_t r1,
                                   int64_t c, T* __restrict__ buf, T* __restrict__ gtrow) {
  // gs is written in the loop where it is gt itself, else mapped from a row of gt
  const bool direct = !HasS || sc.map == kSame;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ gr = g + r * c;
    const T* __restrict__ yr = y + r * c;
    const T* __restrict__ sr = HasS ? sc.row(r, buf, c) : nullptr;
    T* __restrict__ gyr = gy + r * c;
    T* __restrict__ gt = HasS ? (direct ? gs + r * c : gtrow) : nullptr;
    for (int64_t k = 0; k < c; ++k) {
      T t = yr[k] * scale[k] + shift[k];
      if constexpr (HasS) t += sr[k];
      T gtk = t > T(0) ? gr[k] : a[k] * gr[k];
      if constexpr (HasS) gt[k] = gtk;
      gyr[k] = q1[k] * gtk + q2[k] * (yr[k] - mu[k]) + q3[k];
    }
    if (HasS && !direct) sc.grad_row(gt, gs + r * sc.cs, c);
  }
}

template <typename T, bool HasS>
void tail_backward_impl(const T* g, const T* y, const Shortcut<T>& sc, const T* scale,
                        const T* shift, const T* a, const double* mean, const double* invstd,
                        const T* gamma, bool training, T* gy, T* gs, double* sums, int64_t m,
                        int64_t c) {
  std::vector<T> meanT(c);
  for (int64_t k = 0; k < c; ++k) meanT[k] = T(mean[k]);
  const T* mu = meanT.data();
  std::vector<double> total;
  chunked_sums<T>(m, 4 * c, total, [&](int64_t r0, int64_t r1, T* acc) {
    std::vector<T> buf(c);
    backward_sum_rows<T, HasS>(g, y, sc, scale, shift, a, mu, acc, r0, r1, c, buf.data());
  });
  for (int64_t j = 0; j < 4 * c; ++j) sums[j] = total[j];
  std::vector<T> k1(c), k2(c), k3(c);
  for (int64_t k = 0; k < c; ++k) {
    double gi = double(gamma[k]) * invstd[k];
    k1[k] = T(gi);
    k2[k] = training ? T(-gi * invstd[k] * invstd[k] * sums[3 * c + k] / m) : T(0);
    k3[k] = training ? T(-gi * sums[2 * c + k] / m) : T(0);
  }
  at::parallel_for(0, m, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(c), gtrow(c);
    backward_grad_rows<T, HasS>(g, y, sc, scale, shift, a, mu, k1.data(), k2.data(), k3.data(),
                                gy, gs, begin, end, c, buf.data(), gtrow.data());
  });
}

}  // namespace

// Returns out, mean (double), invstd (double), scale, shift. Updates the running statistics in
// place when training (momentum: the factor of the new batch's statistics). s, s_bias, s_map
// (0 same, 1 mean, 2 tile) and s_factor give the shortcut (see the top of this file).
std::vector<torch::Tensor> tail_forward(torch::Tensor y, c10::optional<torch::Tensor> s,
                                        c10::optional<torch::Tensor> s_bias, int64_t s_map,
                                        int64_t s_factor, torch::Tensor gamma, torch::Tensor beta,
                                        torch::Tensor running_mean, torch::Tensor running_var,
                                        bool training, double momentum, double eps,
                                        torch::Tensor b1, torch::Tensor a, torch::Tensor b2) {
  int64_t c = y.size(1), m = y.numel() / std::max<int64_t>(c, 1);
  check_rows(y, "y", m, c);
  for (auto* t : {&gamma, &beta, &running_mean, &running_var, &b1, &a, &b2})
    check_vector(*t, "a per-channel parameter", c);
  TORCH_CHECK(!training || m > 1, "batch statistics need more than one value per channel");
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor mean = torch::empty({c}, opts), invstd = torch::empty({c}, opts);
  double* mp = mean.data_ptr<double>();
  double* ip = invstd.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "tail_moments", [&] {
    if (training) {
      std::vector<double> mu, var;
      moments<scalar_t>(y.data_ptr<scalar_t>(), m, c, mu, var);
      auto* rm = running_mean.data_ptr<scalar_t>();
      auto* rv = running_var.data_ptr<scalar_t>();
      for (int64_t k = 0; k < c; ++k) {
        mp[k] = mu[k];
        ip[k] = 1.0 / std::sqrt(var[k] + eps);
        rm[k] = scalar_t((1.0 - momentum) * double(rm[k]) + momentum * mu[k]);
        rv[k] = scalar_t((1.0 - momentum) * double(rv[k]) + momentum * var[k] * m / (m - 1));
      }
    } else {
      auto* rm = running_mean.data_ptr<scalar_t>();
      auto* rv = running_var.data_ptr<scalar_t>();
      for (int64_t k = 0; k < c; ++k) {
        mp[k] = double(rm[k]);
        ip[k] = 1.0 / std::sqrt(double(rv[k]) + eps);
      }
    }
  });
  torch::Tensor scale = torch::empty({c}, y.options()), shift = torch::empty({c}, y.options());
  torch::Tensor out = torch::empty_like(y, at::MemoryFormat::ChannelsLast);
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "tail_forward", [&] {
    auto sc = shortcut_of<scalar_t>(s, s_bias, s_map, s_factor, m, c);
    auto* scl = scale.data_ptr<scalar_t>();
    auto* sh = shift.data_ptr<scalar_t>();
    const auto* gm = gamma.data_ptr<scalar_t>();
    const auto* bt = beta.data_ptr<scalar_t>();
    const auto* bb = b1.data_ptr<scalar_t>();
    for (int64_t k = 0; k < c; ++k) {
      double sk = double(gm[k]) * ip[k];
      scl[k] = scalar_t(sk);
      sh[k] = scalar_t(double(bt[k]) - mp[k] * sk + double(bb[k]));
    }
    tail_forward_impl<scalar_t>(y.data_ptr<scalar_t>(), sc, scl, sh, a.data_ptr<scalar_t>(),
                                b2.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), m, c);
  });
  return {out, mean, invstd, scale, shift};
}

// Returns gy, the gradient of the shortcut's source s (empty without s; the gradient of
// s_bias is its sum over rows), and the five parameters' gradients in y's dtype, each a tensor of
// its own (gbeta and gb1 are equal): ggamma = invstd * sum gt * (y - mean), gbeta = gb1 = sum gt,
// ga = sum g * min(t, 0), gb2 = sum g (the sums in double).
std::vector<torch::Tensor> tail_backward(torch::Tensor g, torch::Tensor y,
                                         c10::optional<torch::Tensor> s,
                                         c10::optional<torch::Tensor> s_bias, int64_t s_map,
                                         int64_t s_factor, torch::Tensor scale,
                                         torch::Tensor shift, torch::Tensor a,
                                         torch::Tensor mean, torch::Tensor invstd,
                                         torch::Tensor gamma, bool training) {
  int64_t c = y.size(1), m = y.numel() / std::max<int64_t>(c, 1);
  g = g.contiguous(at::MemoryFormat::ChannelsLast);
  check_rows(y, "y", m, c);
  check_rows(g, "grad", m, c);
  torch::Tensor gy = torch::empty_like(y, at::MemoryFormat::ChannelsLast);
  torch::Tensor gs = s ? torch::empty_like(*s, at::MemoryFormat::ChannelsLast)
                      : torch::empty({0}, y.options());
  std::vector<double> sums(4 * c, 0.0);
  std::vector<torch::Tensor> grads;  // gamma, beta, b1, a, b2
  for (int i = 0; i < 5; ++i) grads.push_back(torch::empty({c}, y.options()));
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "tail_backward", [&] {
    auto sc = shortcut_of<scalar_t>(s, s_bias, s_map, s_factor, m, c);
    auto run = s ? tail_backward_impl<scalar_t, true> : tail_backward_impl<scalar_t, false>;
    const double* is = invstd.data_ptr<double>();
    run(g.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), sc, scale.data_ptr<scalar_t>(),
        shift.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), mean.data_ptr<double>(), is,
        gamma.data_ptr<scalar_t>(), training, gy.data_ptr<scalar_t>(),
        s ? gs.data_ptr<scalar_t>() : nullptr, sums.data(), m, c);
    scalar_t* out[5];
    for (int i = 0; i < 5; ++i) out[i] = grads[i].data_ptr<scalar_t>();
    for (int64_t k = 0; k < c; ++k) {
      out[0][k] = scalar_t(sums[3 * c + k] * is[k]);
      out[1][k] = out[2][k] = scalar_t(sums[2 * c + k]);
      out[3][k] = scalar_t(sums[c + k]);
      out[4][k] = scalar_t(sums[k]);
    }
  });
  return {gy, gs, grads[0], grads[1], grads[2], grads[3], grads[4]};
}

}  // namespace bimlp

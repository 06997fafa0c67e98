// The tail of the binary unit, R(BN(y) + s), as two passes forward and two backward.
//
// y (the binary conv's output) and s (the shortcut) are channels-last tensors, so their memory
// is M = N*H*W rows of C channels. BN is BatchNorm2d (batch statistics in training, running
// statistics otherwise) and R is RPReLU: PReLU(t + b1; a) + b2. With scale = gamma * invstd and
// shift = beta - mean * scale + b1 the unit is
//     t = y * scale + shift + s,    out = (t > 0 ? t : a * t) + b2,
// and its backward, with gt = dL/dt = g * (t > 0 ? 1 : a) and yc = y - mean,
//     gb2 = sum g, ga = sum g * min(t, 0), gbeta = gb1 = sum gt, ggamma = invstd * sum gt * yc,
//     gy = gamma * invstd * (gt - sum gt / M - yc * invstd^2 * sum gt * yc / M)   (training),
//     gy = gamma * invstd * gt                                                   (evaluation),
//     gs = gt.
// Per-channel sums go through one buffer of partial sums per chunk of rows (in double), added in
// a fixed order, so a result depends on the thread count but never on scheduling.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

struct Chunks {
  int64_t count, rows;  // chunks of `rows` rows (the last one shorter)
};

Chunks chunks_of(int64_t m) {
  int64_t n = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads() * 4, (m + 63) / 64));
  return {n, (m + n - 1) / n};
}

constexpr int64_t kBlock = 64;  // rows summed in the tensor's type before a double partial

void check_rows(const torch::Tensor& t, const char* name, int64_t m, int64_t c) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.dim() == 4 && t.size(1) == c && t.numel() == m * c, name, " must be (N, ", c,
              ", H, W) like y, got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be channels-last");
}

void check_vector(const torch::Tensor& t, const char* name, int64_t c) {
  TORCH_CHECK(t.device().is_cpu() && t.numel() == c && t.is_contiguous(), name,
              " must be a contiguous CPU tensor of ", c, " values, got ", t.sizes());
}

// Runs body(r0, r1, partial) over chunks of rows; partial is that chunk's `width` doubles,
// filled by adding blocks of up to kBlock rows summed in T (`local`, `width` values).
template <typename T, typename Body>
void chunked_sums(int64_t m, int64_t width, std::vector<double>& total, Body body) {
  Chunks ch = chunks_of(m);
  std::vector<double> part(ch.count * width, 0.0);
  at::parallel_for(0, ch.count, 1, [&](int64_t b, int64_t e) {
    std::vector<T> local(width);
    for (int64_t i = b; i < e; ++i) {
      double* p = part.data() + i * width;
      int64_t r1 = std::min(m, (i + 1) * ch.rows);
      for (int64_t r0 = i * ch.rows; r0 < r1; r0 += kBlock) {
        std::fill(local.begin(), local.end(), T(0));
        body(r0, std::min(r1, r0 + kBlock), local.data());
        for (int64_t j = 0; j < width; ++j) p[j] += double(local[j]);
      }
    }
  });
  total.assign(width, 0.0);
  for (int64_t i = 0; i < ch.count; ++i)
    for (int64_t j = 0; j < width; ++j) total[j] += part[i * width + j];
}

template <typename T, bool HasS>
void tail_forward_impl(const T* __restrict__ y, const T* __restrict__ s,
                       const T* __restrict__ scale, const T* __restrict__ shift,
                       const T* __restrict__ a, const T* __restrict__ b2, T* __restrict__ out,
                       int64_t m, int64_t c) {
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* __restrict__ yr = y + r * c;
      const T* __restrict__ sr = HasS ? s + r * c : nullptr;
      T* __restrict__ o = out + r * c;
      for (int64_t k = 0; k < c; ++k) {
        T t = yr[k] * scale[k] + shift[k];
        if constexpr (HasS) t += sr[k];
        o[k] = (t > T(0) ? t : a[k] * t) + b2[k];
      }
    }
  });
}

// mean and biased variance per channel, shifted by the first row for stability
template <typename T>
void moments(const T* __restrict__ y, int64_t m, int64_t c, std::vector<double>& mean,
             std::vector<double>& var) {
  std::vector<double> sums;
  chunked_sums<T>(m, 2 * c, sums, [&](int64_t r0, int64_t r1, T* __restrict__ acc) {
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
  });
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (int64_t k = 0; k < c; ++k) {
    double d = sums[k] / m;
    var[k] = std::max(sums[c + k] / m - d * d, 0.0);
    mean[k] = d + double(y[k]);
  }
}

template <typename T, bool HasS>
void tail_backward_impl(const T* __restrict__ g, const T* __restrict__ y,
                        const T* __restrict__ s, const T* __restrict__ scale,
                        const T* __restrict__ shift, const T* __restrict__ a, const double* mean,
                        const double* invstd, const T* gamma, bool training, T* __restrict__ gy,
                        T* __restrict__ gs, double* sums, int64_t m, int64_t c) {
  // sums: 4 x C = sum g, sum g * min(t, 0), sum gt, sum gt * (y - mean)
  std::vector<T> meanT(c);
  for (int64_t k = 0; k < c; ++k) meanT[k] = T(mean[k]);
  const T* __restrict__ mu = meanT.data();
  std::vector<double> total;
  chunked_sums<T>(m, 4 * c, total, [&](int64_t r0, int64_t r1, T* __restrict__ acc) {
    T* __restrict__ sg = acc;
    T* __restrict__ sneg = acc + c;
    T* __restrict__ sgt = acc + 2 * c;
    T* __restrict__ sgty = acc + 3 * c;
    for (int64_t r = r0; r < r1; ++r) {
      const T* __restrict__ gr = g + r * c;
      const T* __restrict__ yr = y + r * c;
      const T* __restrict__ sr = HasS ? s + r * c : nullptr;
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
  });
  for (int64_t j = 0; j < 4 * c; ++j) sums[j] = total[j];
  std::vector<T> k1(c), k2(c), k3(c);
  for (int64_t k = 0; k < c; ++k) {
    double gi = double(gamma[k]) * invstd[k];
    k1[k] = T(gi);
    k2[k] = training ? T(-gi * invstd[k] * invstd[k] * sums[3 * c + k] / m) : T(0);
    k3[k] = training ? T(-gi * sums[2 * c + k] / m) : T(0);
  }
  const T* __restrict__ q1 = k1.data();
  const T* __restrict__ q2 = k2.data();
  const T* __restrict__ q3 = k3.data();
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* __restrict__ gr = g + r * c;
      const T* __restrict__ yr = y + r * c;
      const T* __restrict__ sr = HasS ? s + r * c : nullptr;
      T* __restrict__ gyr = gy + r * c;
      T* __restrict__ gsr = HasS ? gs + r * c : nullptr;
      for (int64_t k = 0; k < c; ++k) {
        T t = yr[k] * scale[k] + shift[k];
        if constexpr (HasS) t += sr[k];
        T gt = t > T(0) ? gr[k] : a[k] * gr[k];
        if constexpr (HasS) gsr[k] = gt;
        gyr[k] = q1[k] * gt + q2[k] * (yr[k] - mu[k]) + q3[k];
      }
    }
  });
}

// Returns out, mean (double), invstd (double), scale, shift. Updates the running statistics in
// place when training (momentum: the factor of the new batch's statistics).
std::vector<torch::Tensor> tail_forward(torch::Tensor y, c10::optional<torch::Tensor> s,
                                        torch::Tensor gamma, torch::Tensor beta,
                                        torch::Tensor running_mean, torch::Tensor running_var,
                                        bool training, double momentum, double eps,
                                        torch::Tensor b1, torch::Tensor a, torch::Tensor b2) {
  int64_t c = y.size(1), m = y.numel() / std::max<int64_t>(c, 1);
  check_rows(y, "y", m, c);
  if (s) check_rows(*s, "s", m, c);
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
    auto* sc = scale.data_ptr<scalar_t>();
    auto* sh = shift.data_ptr<scalar_t>();
    const auto* gm = gamma.data_ptr<scalar_t>();
    const auto* bt = beta.data_ptr<scalar_t>();
    const auto* bb = b1.data_ptr<scalar_t>();
    for (int64_t k = 0; k < c; ++k) {
      double sk = double(gm[k]) * ip[k];
      sc[k] = scalar_t(sk);
      sh[k] = scalar_t(double(bt[k]) - mp[k] * sk + double(bb[k]));
    }
    auto run = s ? tail_forward_impl<scalar_t, true> : tail_forward_impl<scalar_t, false>;
    run(y.data_ptr<scalar_t>(), s ? s->data_ptr<scalar_t>() : nullptr, sc, sh,
        a.data_ptr<scalar_t>(), b2.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), m, c);
  });
  return {out, mean, invstd, scale, shift};
}

// Returns gy, gs (undefined without s), and the per-channel sums (4, C) in double:
// sum g, sum g * min(t, 0), sum gt, sum gt * (y - mean).
std::vector<torch::Tensor> tail_backward(torch::Tensor g, torch::Tensor y,
                                         c10::optional<torch::Tensor> s, torch::Tensor scale,
                                         torch::Tensor shift, torch::Tensor a,
                                         torch::Tensor mean, torch::Tensor invstd,
                                         torch::Tensor gamma, bool training) {
  int64_t c = y.size(1), m = y.numel() / std::max<int64_t>(c, 1);
  g = g.contiguous(at::MemoryFormat::ChannelsLast);
  check_rows(y, "y", m, c);
  check_rows(g, "grad", m, c);
  if (s) check_rows(*s, "s", m, c);
  torch::Tensor gy = torch::empty_like(y, at::MemoryFormat::ChannelsLast);
  torch::Tensor gs = s ? torch::empty_like(y, at::MemoryFormat::ChannelsLast) : torch::Tensor();
  torch::Tensor sums = torch::zeros({4, c}, torch::TensorOptions().dtype(torch::kFloat64));
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "tail_backward", [&] {
    auto run = s ? tail_backward_impl<scalar_t, true> : tail_backward_impl<scalar_t, false>;
    run(g.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), s ? s->data_ptr<scalar_t>() : nullptr,
        scale.data_ptr<scalar_t>(), shift.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(),
        mean.data_ptr<double>(), invstd.data_ptr<double>(), gamma.data_ptr<scalar_t>(), training,
        gy.data_ptr<scalar_t>(), s ? gs.data_ptr<scalar_t>() : nullptr, sums.data_ptr<double>(),
        m, c);
  });
  return {gy, gs, sums};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("tail_forward", &tail_forward, "R(BN(y) + s) forward");
  mod.def("tail_backward", &tail_backward, "R(BN(y) + s) backward");
}

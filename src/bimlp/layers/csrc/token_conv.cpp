// Token-mixing convolutions: groups = output channels, p input channels per group, T taps along
// one axis (1 x T along W, or T x 1 along H), stride 1, zero padding T / 2, channels-last.
// Wave-MLP's and BiMLP's token mixers are such convolutions (p = 2: the cos and sin halves of
// a channel); oneDNN's grouped convolution is slow on them (a 2x2 map of 256 input channels took
// 10 ms forward at batch 128 on one thread), so these loops replace it on the CPU.
//
// Every pass walks lines: the pixels of one image row (1 x T) or column (T x 1). With the weight
// expanded to wx[t][k] = w[k / p, k % p, t] (k an input channel), all inner loops run over
// contiguous input channels:
//     forward    acc[l][k]  = sum_t wx[t][k] * x[l + t - P][k],   y[l][c] = sum_j acc[l][c p + j]
//     grad x     gx[l][k]   = sum_t wx[t][k] * ge[l - t + P][k],  ge[l][k] = gy[l][k / p]
//     grad w     gwx[t][k] += ge[l][k] * x[l + t - P][k]          (summed over lines, in double)
// (P = T / 2, terms outside the line left out: the zero padding.)
#include "rows.h"

namespace bimlp {
namespace {

struct Lines {
  int64_t count;   // lines: N * H (1 x T) or N * W (T x 1)
  int64_t len;     // pixels per line
  int64_t others;  // lines per image
  int64_t step;    // pixels between neighbours on a line
  int64_t line_step;  // pixels between lines that follow each other within an image

  // the pixel index of pixel l of line i
  int64_t pixel(int64_t i, int64_t l, int64_t image_pixels) const {
    const int64_t n = i / others, o = i % others;
    return n * image_pixels + o * line_step + l * step;
  }
};

Lines lines_of(const torch::Tensor& x, int64_t axis) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (axis == 1) return {n * h, w, h, 1, w};  // along W: rows of W pixels
  return {n * w, h, w, w, 1};                 // along H: columns of H pixels
}

template <typename T>
std::vector<T> expand_weight(const torch::Tensor& w, int64_t cin, int64_t p, int64_t taps) {
  auto wc = w.contiguous();
  const T* src = wc.data_ptr<T>();  // (cout, p, taps) in memory
  std::vector<T> wx(taps * cin);
  for (int64_t k = 0; k < cin; ++k)
    for (int64_t t = 0; t < taps; ++t) wx[t * cin + k] = src[k * taps + t];
  return wx;
}

// acc[r][i] += w[i] * x[r][i] for r < rows, i < k (rows lda and ldx apart)
template <typename T>
BIMLP_ROWS void axpy_rows(T* __restrict__ acc, int64_t lda, const T* __restrict__ w,
                          const T* __restrict__ x, int64_t ldx, int64_t rows, int64_t k) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i) acc[r * lda + i] += w[i] * x[r * ldx + i];
}

// acc[i] += sum_r e[r][i] * x[r][i]
template <typename T>
BIMLP_ROWS void dot_rows(T* __restrict__ acc, const T* __restrict__ e, int64_t lde,
                         const T* __restrict__ x, int64_t ldx, int64_t rows, int64_t k) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i) acc[i] += e[r * lde + i] * x[r * ldx + i];
}

// The valid outputs [l0, l1) of tap t on a line of len pixels (source l + t - half inside)
inline void tap_range(int64_t t, int64_t half, int64_t len, int64_t& l0, int64_t& l1) {
  l0 = std::max<int64_t>(0, half - t);
  l1 = std::min<int64_t>(len, len + half - t);
}

template <typename T>
void forward_lines(const T* x, const T* wx, T* y, T* acc, const Lines& ln, int64_t i0,
                   int64_t i1, int64_t image_pixels, int64_t cin, int64_t p, int64_t taps) {
  const int64_t cout = cin / p, half = taps / 2, ld = ln.step * cin;
  for (int64_t i = i0; i < i1; ++i) {
    const T* xl = x + ln.pixel(i, 0, image_pixels) * cin;
    std::fill(acc, acc + ln.len * cin, T(0));
    for (int64_t t = 0; t < taps; ++t) {
      int64_t l0, l1;
      tap_range(t, half, ln.len, l0, l1);
      if (l0 < l1)
        axpy_rows<T>(acc + l0 * cin, cin, wx + t * cin, xl + (l0 + t - half) * ld, ld, l1 - l0,
                     cin);
    }
    for (int64_t l = 0; l < ln.len; ++l) {
      const T* a = acc + l * cin;
      T* yr = y + ln.pixel(i, l, image_pixels) * cout;
      for (int64_t c = 0; c < cout; ++c) {
        T v = a[c * p];
        for (int64_t j = 1; j < p; ++j) v += a[c * p + j];
        yr[c] = v;
      }
    }
  }
}

// Lines [i0, i1): gx (when gx) and the weight gradient's sums into gwx (when gwx).
template <typename T>
void backward_lines(const T* gy, const T* x, const T* wx, T* gx, T* gwx, T* ge, T* gl,
                    const Lines& ln, int64_t i0, int64_t i1, int64_t image_pixels, int64_t cin,
                    int64_t p, int64_t taps) {
  const int64_t cout = cin / p, half = taps / 2, ld = ln.step * cin;
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t l = 0; l < ln.len; ++l) {
      const T* g = gy + ln.pixel(i, l, image_pixels) * cout;
      T* e = ge + l * cin;
      for (int64_t c = 0; c < cout; ++c)
        for (int64_t j = 0; j < p; ++j) e[c * p + j] = g[c];
    }
    const T* xl = x + ln.pixel(i, 0, image_pixels) * cin;
    if (gx) {
      // gx[s] = sum_t wx[t] * ge[s - t + half]: output l = s - t + half read s through tap t
      std::fill(gl, gl + ln.len * cin, T(0));
      for (int64_t t = 0; t < taps; ++t) {
        int64_t l0, l1;
        tap_range(t, half, ln.len, l0, l1);
        if (l0 < l1)
          axpy_rows<T>(gl + (l0 + t - half) * cin, cin, wx + t * cin, ge + l0 * cin, cin,
                       l1 - l0, cin);
      }
      for (int64_t l = 0; l < ln.len; ++l)
        std::copy(gl + l * cin, gl + (l + 1) * cin, gx + ln.pixel(i, l, image_pixels) * cin);
    }
    if (gwx)
      for (int64_t t = 0; t < taps; ++t) {
        int64_t l0, l1;
        tap_range(t, half, ln.len, l0, l1);
        if (l0 < l1)
          dot_rows<T>(gwx + t * cin, ge + l0 * cin, cin, xl + (l0 + t - half) * ld, ld, l1 - l0,
                      cin);
      }
  }
}

void check_args(const torch::Tensor& x, const torch::Tensor& w, int64_t axis, int64_t& p,
                int64_t& taps) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), "token_conv: CPU tensors only");
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "token_conv: x must be a channels-last (N, C, H, W) tensor, got ", x.sizes());
  TORCH_CHECK(axis == 0 || axis == 1, "token_conv: axis must be 0 (T x 1) or 1 (1 x T), got ",
              axis);
  TORCH_CHECK(w.dim() == 4 && w.scalar_type() == x.scalar_type(),
              "token_conv: w must be (C_out, p, kh, kw) of x's dtype, got ", w.sizes());
  const int64_t cout = w.size(0);
  p = w.size(1);
  taps = axis == 1 ? w.size(3) : w.size(2);
  TORCH_CHECK((axis == 1 ? w.size(2) : w.size(3)) == 1 && taps % 2 == 1,
              "token_conv: w must have one odd axis of taps along axis ", axis, ", got ",
              w.sizes());
  TORCH_CHECK(cout > 0 && p > 0 && x.size(1) == cout * p,
              "token_conv: x has ", x.size(1), " channels, w needs ", cout * p);
}

}  // namespace

torch::Tensor token_conv_forward(torch::Tensor x, torch::Tensor w, int64_t axis) {
  int64_t p, taps;
  check_args(x, w, axis, p, taps);
  const int64_t cin = x.size(1), cout = cin / p;
  auto y = torch::empty({x.size(0), cout, x.size(2), x.size(3)},
                        x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const Lines ln = lines_of(x, axis);
  const int64_t image_pixels = x.size(2) * x.size(3);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "token_conv_forward", [&] {
    const std::vector<scalar_t> wx = expand_weight<scalar_t>(w, cin, p, taps);
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, kRowGrain / std::max<int64_t>(ln.len, 1));
    at::parallel_for(0, ln.count, grain, [&](int64_t i0, int64_t i1) {
      std::vector<scalar_t> acc(ln.len * cin);
      forward_lines<scalar_t>(xp, wx.data(), yp, acc.data(), ln, i0, i1, image_pixels, cin, p,
                              taps);
    });
  });
  return y;
}

std::vector<torch::Tensor> token_conv_backward(torch::Tensor gy, torch::Tensor x,
                                               torch::Tensor w, int64_t axis, bool need_x,
                                               bool need_w) {
  int64_t p, taps;
  check_args(x, w, axis, p, taps);
  const int64_t cin = x.size(1), cout = cin / p;
  TORCH_CHECK(gy.dim() == 4 && gy.size(0) == x.size(0) && gy.size(1) == cout &&
                  gy.size(2) == x.size(2) && gy.size(3) == x.size(3) &&
                  gy.scalar_type() == x.scalar_type() &&
                  gy.is_contiguous(at::MemoryFormat::ChannelsLast),
              "token_conv: gy must be channels-last (", x.size(0), ", ", cout, ", ", x.size(2),
              ", ", x.size(3), ") of x's dtype, got ", gy.sizes());
  torch::Tensor gx, gw;
  if (need_x) gx = torch::empty_like(x, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const Lines ln = lines_of(x, axis);
  const int64_t image_pixels = x.size(2) * x.size(3);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "token_conv_backward", [&] {
    const std::vector<scalar_t> wx = expand_weight<scalar_t>(w, cin, p, taps);
    const scalar_t* gyp = gy.data_ptr<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* gxp = need_x ? gx.data_ptr<scalar_t>() : nullptr;
    const int64_t width = taps * cin;
    auto run = [&](int64_t i0, int64_t i1, scalar_t* gwx) {
      std::vector<scalar_t> ge(ln.len * cin), gl(gxp ? ln.len * cin : 0);
      backward_lines<scalar_t>(gyp, xp, wx.data(), gxp, gwx, ge.data(), gl.data(), ln, i0, i1,
                               image_pixels, cin, p, taps);
    };
    if (need_w) {
      // chunks of whole lines; rows.h's fixed-order double partials make the sum independent of
      // scheduling
      std::vector<double> total;
      chunked_sums<scalar_t>(ln.count, width, total,
                             [&](int64_t i0, int64_t i1, scalar_t* part) { run(i0, i1, part); });
      gw = torch::empty({cout, p, taps}, w.options());
      scalar_t* g = gw.data_ptr<scalar_t>();
      for (int64_t k = 0; k < cin; ++k)
        for (int64_t t = 0; t < taps; ++t) g[k * taps + t] = scalar_t(total[t * cin + k]);
      gw = gw.view(w.sizes());
    } else {
      const int64_t grain = std::max<int64_t>(1, kRowGrain / std::max<int64_t>(ln.len, 1));
      at::parallel_for(0, ln.count, grain,
                       [&](int64_t i0, int64_t i1) { run(i0, i1, nullptr); });
    }
  });
  return {need_x ? gx : torch::Tensor(), need_w ? gw : torch::Tensor()};
}

}  // namespace bimlp

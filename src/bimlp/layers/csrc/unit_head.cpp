// The head of the binary unit, q = Q(x + b): the learnable shift and the activation quantizer
// in one pass, and its backward in one pass that also adds the shortcut's gradient.
//
// Q is ApproxSign (quantizer 0: q = x + b >= 0 ? 1 : -1, dq/du = max(2 - 2|u|, 0)) or
// TernaryRound (quantizer 1: q = round(clip(u, -1, 1)) half to even, dq/du = |u| <= 1), u = x + b,
// computed as bimlp.layers.quantizers computes them. The backward is
//     gx = gq * dq/du + gs,   gb = sum over rows of (gq * dq/du [+ gs when the shortcut read u]),
// gs being the shortcut's gradient on x's channels (or none).
#include "rows.h"

#include <cmath>

namespace bimlp {
namespace {

constexpr int64_t kApproxSign = 0, kTernaryRound = 1;

template <typename T>
inline T quantize(T u, int64_t quantizer) {
  if (quantizer == kApproxSign) return u >= T(0) ? T(1) : T(-1);  // sign(0) = sign(-0) = +1
  T c = std::min(std::max(u, T(-1)), T(1));
  return c > T(0.5) ? T(1) : (c < T(-0.5) ? T(-1) : c * T(0));  // +-0.5 -> +-0: half to even
}

template <typename T>
inline T estimator(T u, int64_t quantizer) {
  if (quantizer == kApproxSign) {
    T f = T(2) - T(2) * std::abs(u);
    return f > T(0) ? f : T(0);
  }
  return std::abs(u) <= T(1) ? T(1) : T(0);
}

// Row-range kernels are separate functions with __restrict__ parameters: inlined into an
// OpenMP-outlined parallel_for body, the same loops lose the no-alias facts and stay scalar.
template <typename T>
BIMLP_ROWS void head_forward_rows(const T* __restrict__ x, const T* __restrict__ b,
                                  T* __restrict__ q, int64_t r0, int64_t r1, int64_t c,
                                  int64_t quantizer) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ xr = x + r * c;
    T* __restrict__ qr = q + r * c;
    if (quantizer == kApproxSign) {
      for (int64_t k = 0; k < c; ++k) qr[k] = quantize(xr[k] + b[k], kApproxSign);
    } else {
      for (int64_t k = 0; k < c; ++k) qr[k] = quantize(xr[k] + b[k], kTernaryRound);
    }
  }
}

template <typename T>
void head_forward_impl(const T* x, const T* b, T* q, int64_t m, int64_t c, int64_t quantizer) {
  at::parallel_for(0, m, kRowGrain, [&](int64_t begin, int64_t end) {
    head_forward_rows<T>(x, b, q, begin, end, c, quantizer);
  });
}

// gx may be gs itself (updated in place), so neither is __restrict__
template <typename T, int64_t Quantizer, bool HasS, bool InBias>
BIMLP_ROWS void head_backward_rows(const T* __restrict__ gq, const T* __restrict__ x,
                                   const T* __restrict__ b, const T* gs, T* gx,
                                   T* __restrict__ acc, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ gqr = gq + r * c;
    const T* __restrict__ xr = x + r * c;
    T* gxr = gx + r * c;
    for (int64_t k = 0; k < c; ++k) {
      T gu = gqr[k] * estimator(xr[k] + b[k], Quantizer);
      if constexpr (HasS) {
        T total = gu + gs[r * c + k];
        acc[k] += InBias ? total : gu;
        gxr[k] = total;
      } else {
        acc[k] += gu;
        gxr[k] = gu;
      }
    }
  }
}

template <typename T, int64_t Quantizer, bool HasS, bool InBias>
void head_backward_impl(const T* gq, const T* x, const T* b, const T* gs, T* gx,
                        std::vector<double>& gb, int64_t m, int64_t c) {
  chunked_sums<T>(m, c, gb, [&](int64_t r0, int64_t r1, T* acc) {
    head_backward_rows<T, Quantizer, HasS, InBias>(gq, x, b, gs, gx, acc, r0, r1, c);
  });
}

template <typename T, int64_t Quantizer>
void head_backward_dispatch(const T* gq, const T* x, const T* b, const T* gs, bool in_bias,
                            T* gx, std::vector<double>& gb, int64_t m, int64_t c) {
  if (!gs) return head_backward_impl<T, Quantizer, false, false>(gq, x, b, gs, gx, gb, m, c);
  if (in_bias) return head_backward_impl<T, Quantizer, true, true>(gq, x, b, gs, gx, gb, m, c);
  head_backward_impl<T, Quantizer, true, false>(gq, x, b, gs, gx, gb, m, c);
}

}  // namespace

torch::Tensor head_forward(torch::Tensor x, torch::Tensor b, int64_t quantizer) {
  int64_t c = x.size(1), m = x.numel() / std::max<int64_t>(c, 1);
  check_rows(x, "x", m, c);
  check_vector(b, "b", c);
  TORCH_CHECK(quantizer == kApproxSign || quantizer == kTernaryRound, "unknown quantizer");
  TORCH_CHECK(b.scalar_type() == x.scalar_type(), "b must have x's dtype");
  torch::Tensor q = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "head_forward", [&] {
    head_forward_impl<scalar_t>(x.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                q.data_ptr<scalar_t>(), m, c, quantizer);
  });
  return q;
}

// Writes x's gradient into gx (which holds the shortcut's gradient gs on entry when
// `accumulate`: then gs is added in the same pass, in place) and returns gb (C values, x's
// dtype). gx is an argument, not a result, so that no result aliases an input (the
// torch.library custom op mutates gx).
torch::Tensor head_backward(torch::Tensor gq, torch::Tensor x, torch::Tensor b, int64_t quantizer,
                            torch::Tensor gx, bool accumulate, bool gs_in_bias) {
  int64_t c = x.size(1), m = x.numel() / std::max<int64_t>(c, 1);
  gq = gq.contiguous(at::MemoryFormat::ChannelsLast);
  check_rows(x, "x", m, c);
  check_rows(gq, "grad", m, c);
  check_rows(gx, "gx", m, c);
  check_vector(b, "b", c);
  TORCH_CHECK(quantizer == kApproxSign || quantizer == kTernaryRound, "unknown quantizer");
  TORCH_CHECK(gx.scalar_type() == x.scalar_type(), "gx must have x's dtype");
  std::vector<double> sums;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "head_backward", [&] {
    auto run = quantizer == kApproxSign ? head_backward_dispatch<scalar_t, kApproxSign>
                                        : head_backward_dispatch<scalar_t, kTernaryRound>;
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    run(gq.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
        accumulate ? gxp : nullptr, gs_in_bias, gxp, sums, m, c);
  });
  torch::Tensor gb = torch::empty({c}, torch::TensorOptions().dtype(torch::kFloat64));
  std::copy(sums.begin(), sums.end(), gb.data_ptr<double>());
  return gb.to(x.scalar_type());
}

}  // namespace bimlp

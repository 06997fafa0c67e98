// Rows of channels-last tensors: the shared pieces of the binary unit's kernels.
//
// A channels-last (N, C, H, W) tensor is M = N*H*W rows of C contiguous channels. Per-channel
// sums go through one buffer of partial sums per chunk of rows (in double), added in a fixed
// order, so a result depends on the thread count but never on scheduling.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace bimlp {

// A row-range kernel: a function of its own (not inlined into a parallel_for body), so that its
// __restrict__ parameters still tell the vectorizer that its rows do not overlap.
#define BIMLP_ROWS __attribute__((noinline))

constexpr int64_t kRowGrain = 256;  // rows per parallel_for task of an element-wise pass
constexpr int64_t kBlock = 64;      // rows summed in the tensor's type before a double partial

struct Chunks {
  int64_t count, rows;  // chunks of `rows` rows (the last one shorter)
};

inline Chunks chunks_of(int64_t m) {
  int64_t n = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads() * 4, (m + 63) / 64));
  return {n, (m + n - 1) / n};
}

inline void check_rows(const torch::Tensor& t, const char* name, int64_t m, int64_t c) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.dim() == 4 && t.size(1) == c && t.numel() == m * c, name, " must be (N, ", c,
              ", H, W) with ", m, " rows, got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be channels-last");
}

inline void check_vector(const torch::Tensor& t, const char* name, int64_t c) {
  TORCH_CHECK(t.device().is_cpu() && t.numel() == c && t.is_contiguous(), name,
              " must be a contiguous CPU tensor of ", c, " values, got ", t.sizes());
}

// Runs body(r0, r1, partial) over chunks of rows; partial is that chunk's `width` values of T,
// filled by blocks of up to kBlock rows and added into a double partial per chunk.
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

// --- the kernels of unit_head.cpp and unit_tail.cpp, bound in module.cpp --------------------
std::vector<torch::Tensor> tail_forward(torch::Tensor y, c10::optional<torch::Tensor> s,
                                        c10::optional<torch::Tensor> s_bias, int64_t s_map,
                                        int64_t s_factor, torch::Tensor gamma, torch::Tensor beta,
                                        torch::Tensor running_mean, torch::Tensor running_var,
                                        bool training, double momentum, double eps,
                                        torch::Tensor b1, torch::Tensor a, torch::Tensor b2);
std::vector<torch::Tensor> tail_backward(torch::Tensor g, torch::Tensor y,
                                         c10::optional<torch::Tensor> s,
                                         c10::optional<torch::Tensor> s_bias, int64_t s_map,
                                         int64_t s_factor, torch::Tensor scale,
                                         torch::Tensor shift, torch::Tensor a,
                                         torch::Tensor mean, torch::Tensor invstd,
                                         torch::Tensor gamma, bool training);
torch::Tensor head_forward(torch::Tensor x, torch::Tensor b, int64_t quantizer);
torch::Tensor head_backward(torch::Tensor gq, torch::Tensor x, torch::Tensor b, int64_t quantizer,
                            torch::Tensor gx, bool accumulate, bool gs_in_bias);

}  // namespace bimlp

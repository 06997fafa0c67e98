// A loaded BiMLP: configuration, weights in the kernels' layouts, and the plan that the executor
// walks (stem, stages of blocks, downsamplings, head). Built once from a verified artifact; every
// shape is derived from the header's configuration and checked against the file first.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "artifact.h"
#include "kernels/kernels.h"

namespace bimlp {

struct Config {
  std::vector<int> depths, dims, hidden;  // hidden: int(dim * mlp_ratio) per stage
  std::vector<double> mlp_ratios;
  int num_classes = 0;
  int in_chans = 3;
  int stem_stride = 4, stem_kernel = 7, stem_pad = 2;  // kernel max(3, 2s - 1), pad (k - s + 1) / 2
  bool group_norm = false;
  bool uni_shortcut = true;
  bool multi_branch = true;
  // official mode: ternary activations round(clip(x, -1, 1)) (two bit planes per packed row),
  // 1x7 / 7x1 token convs with real-valued taps
  bool ternary = false;
  bool conv_downsample = false;  // downsample "wavemlp": fp conv 3x3 / 2 pad 1 + norm, no pooling
  // arch "reactnet" (ReActNet-A): dims = every block's output channels, strides = each block's
  bool reactnet = false;
  int stem_dim = 0, pad_value = 1;
  std::vector<int> strides;
};

// Bounds on what an artifact may ask for (a hostile header must not allocate gigabytes).
constexpr int kMaxStages = 8, kMaxDepth = 64, kMaxBlocks = 256, kMaxDim = 8192, kMaxHidden = 65536;
constexpr int kMaxClasses = 1000000, kMaxInChans = 64;

struct Shortcut {
  int kind = kernels::RES_NONE;
  int group = 1;
};
Shortcut shortcut_for(int cin, int cout, bool uni);

// A binary 1x1 layer with its folded constants (alpha, beta, threshold, RPReLU slope/shift, and
// for the channel MLP's first layer the shortcut's own affine + RPReLU).
struct Binary1x1 {
  std::string name;
  int K = 0, N = 0, KW = 0;
  std::vector<uint64_t> panels;  // (ceil(N / 16), KW, 16)
  std::vector<float> alpha, beta, thresh, slope, shift, res_params;  // res_params: (4, N) or empty
};

// A binary 1x7 / 7x1 token conv (depthwise, or 2 input channels per output for PATM's 2C -> C).
struct TokenConv {
  std::string name;
  int N = 0, pairs = 1, axis = 0, T = 7, Cs = 0;
  std::vector<int8_t> taps;   // (T, Cs) +-1 (paper mode)
  std::vector<float> ftaps;   // (T, Cs) real-valued (official mode: per-tap weight scales)
  std::vector<float> alpha, beta, thresh, slope, shift;
};

// A full-precision conv (stem 7x7/4 pad 2, downsampling 1x1 or Wave-MLP's 3x3/2 pad 1) as a GEMM
// with BatchNorm folded in, GroupNorm kept (affine), then RPReLU (b1, slope, b2) when it has one.
struct FloatConv {
  std::string name;
  int cin = 0, cout = 0, kernel = 1, stride = 1, pad = 0, K = 0;
  bool act = true;
  std::vector<float> panels, bias, b1, slope, b2, gn_weight, gn_bias;
};

struct Block {
  std::string name;
  int C = 0, hidden = 0;
  std::vector<float> norm1_scale, norm1_shift, norm2_scale, norm2_shift;  // (C) each
  std::vector<float> front_thresh;  // (5, C): theta_h, theta_w, fc_h, fc_w, fc_c
  Binary1x1 theta_h, theta_w, fc_h, fc_w, fc_c, proj;
  TokenConv tfc_h, tfc_w;
  bool tfc_shortcut = true;
  Binary1x1 rw_fc1, rw_fc2;
  Shortcut rw_sc1, rw_sc2;
  Binary1x1 mlp_fc1, mlp_fc2;
  Shortcut mlp_sc1, mlp_sc2;
  bool multi_branch = false;
  TokenConv sfc_h, sfc_w;
  std::vector<float> sign_thresh;  // (2, C): sfc_h, sfc_w
  float gain = 1.f, b0 = 0.f, b1 = 0.f;
};

// A ReActNet-A block: binary 3x3 (cin -> cin, stride 1 or 2, pad 1; K = 9 cin in tap-major words,
// see kernels/bconv/bconv3x3.h) with its shortcut x or avgpool2(x), then the binary 1x1 (cin ->
// cout; for cout = 2 cin the two duplicated convs as one layer whose shortcut tiles y).
struct ReactBlock {
  std::string name;
  int cin = 0, cout = 0, stride = 1;
  Binary1x1 conv3, pw;
  std::vector<int32_t> tapsum;  // (9, cin): sum over input channels of the weight signs per tap
};

struct Stage {
  std::vector<Block> blocks;
  bool has_downsample = false;  // into the next stage
  FloatConv down;
};

struct Arena;

class Model {
 public:
  Model(const Artifact& a, int threads, const kernels::Table& table, int isa);
  ~Model();

  // x: (B, in_chans, H, W) float32 contiguous; out: (B, num_classes). Thread-safe.
  void run(const float* x, int64_t B, int64_t H, int64_t W, float* out, double* times = nullptr) const;
  // Throws Error when the input shape is not usable.
  void check_input(int64_t B, int64_t C, int64_t H, int64_t W) const;

  const Config& config() const { return cfg_; }
  int threads() const { return threads_; }
  void set_threads(int t);
  const char* isa_name() const { return table_->name; }
  int isa() const { return isa_; }
  const std::vector<std::string>& step_names() const { return step_names_; }

  // weights (read by the executor)
  Config cfg_;
  FloatConv stem_;
  std::vector<Stage> stages_;
  std::vector<float> head_panels_, head_bias_, final_gn_weight_, final_gn_bias_;
  std::vector<ReactBlock> react_;  // arch "reactnet" (then stages_ is empty)

 private:
  std::unique_ptr<Arena> acquire(int64_t B, int64_t H, int64_t W, int T) const;
  void release(std::unique_ptr<Arena> a) const;
  // Images per executor call when whole images go to one thread (see run()).
  int64_t images_per_chunk(int64_t H, int64_t W) const;
  // One thread's arenas for running whole images alone (see forward.cpp).
  struct Lane {
    std::unique_ptr<Arena> full, rest;
  };
  Lane lane(int64_t images, int64_t chunk, int64_t H, int64_t W) const;
  void release(Lane l) const;
  void run_alone(const float* x, int64_t i0, int64_t i1, const Lane& l, float* out, double* times) const;

  const kernels::Table* table_;
  int isa_;
  std::atomic<int> threads_;
  std::vector<std::string> step_names_;
  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<Arena>> pool_;
  friend struct Exec;
};

Config parse_config(const std::string& file, const Json& header, int version);

}  // namespace bimlp

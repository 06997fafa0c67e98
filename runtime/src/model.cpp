#include "model.h"

#include "arena.h"

#include <cmath>
#include <cstring>
#include <set>

namespace bimlp {

using namespace kernels;

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& what) { throw Error(file + ": " + what); }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const Json& field(const std::string& file, const Json& cfg, const char* key, Json::Kind kind) {
  const Json* v = cfg.find(key);
  if (!v) fail(file, std::string("configuration has no '") + key + "'");
  if (v->kind != kind)
    fail(file, std::string("configuration '") + key + "' is " + json_kind_name(v->kind) + ", expected " +
                   json_kind_name(kind));
  return *v;
}

int int_field(const std::string& file, const char* key, const Json& v, int lo, int hi) {
  if (v.kind != Json::Number || !v.integral || v.number < lo || v.number > hi)
    fail(file, std::string("configuration '") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
  return int(v.number);
}

// Reads tensors by name with the dtype and shape the configuration implies. In checking mode it
// only validates (nothing is allocated); afterwards `unused()` lists what the file has in excess.
struct Loader {
  const Artifact& a;
  bool checking;
  std::set<std::string> used;

  const TensorView& get(const std::string& name, const char* dtype, const std::vector<int64_t>& shape) {
    auto it = a.tensors.find(name);
    if (it == a.tensors.end()) fail(a.name, "tensor '" + name + "' is missing (the configuration needs it)");
    const TensorView& t = it->second;
    if (t.dtype != dtype) fail(a.name, "tensor '" + name + "' has dtype " + t.dtype + ", expected " + dtype);
    if (t.shape != shape)
      fail(a.name, "tensor '" + name + "' has shape " + shape_str(t.shape) + ", the configuration needs " +
                       shape_str(shape));
    used.insert(name);
    return t;
  }
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView& t = get(name, "F32", shape);
    if (checking) return {};
    std::vector<float> v(t.nbytes / 4);
    std::memcpy(v.data(), t.data, t.nbytes);
    for (float x : v)
      if (!std::isfinite(x)) fail(a.name, "tensor '" + name + "' holds a NaN or infinite value");
    return v;
  }
  const uint8_t* bits(const std::string& name, int64_t count) {
    return get(name, "U8", {(count + 7) / 8}).data;
  }
  void check_complete() {
    std::vector<std::string> extra;
    for (const auto& kv : a.tensors)
      if (!used.count(kv.first)) extra.push_back(kv.first);
    if (!extra.empty()) {
      std::string s;
      for (size_t i = 0; i < extra.size() && i < 5; ++i) s += (i ? ", " : "") + extra[i];
      if (extra.size() > 5) s += ", ... (" + std::to_string(extra.size()) + " in all)";
      fail(a.name, "unexpected tensors the configuration does not use: " + s);
    }
  }
};

inline bool bit_at(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

void split_rows(const std::vector<float>& v, int rows, int n, std::vector<float>* out[]) {
  for (int r = 0; r < rows; ++r) out[r]->assign(v.begin() + int64_t(r) * n, v.begin() + int64_t(r + 1) * n);
}

void load_binary(Loader& L, Binary1x1& b, const std::string& name, int K, int N, bool res_params) {
  b.name = name;
  b.K = K, b.N = N, b.KW = (K + 63) / 64;
  const uint8_t* bits = L.bits(name + ".bits", int64_t(K) * N);
  auto alpha = L.f32(name + ".alpha", {N});
  auto beta = L.f32(name + ".beta", {N});
  auto thresh = L.f32(name + ".thresh", {K});
  auto act = L.f32(name + ".act", {2, N});
  std::vector<float> rp;
  if (res_params) rp = L.f32(name + ".res_params", {4, N});
  if (L.checking) return;
  b.alpha = std::move(alpha), b.beta = std::move(beta), b.thresh = std::move(thresh);
  std::vector<float>* a2[] = {&b.slope, &b.shift};
  split_rows(act, 2, N, a2);
  b.res_params = std::move(rp);
  const int P = (N + NR - 1) / NR;
  b.panels.assign(size_t(P) * b.KW * NR, 0);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      if (bit_at(bits, int64_t(n) * K + k))
        b.panels[(size_t(n / NR) * b.KW + k / 64) * NR + n % NR] |= uint64_t(1) << (k % 64);
}

// Paper mode: packed sign bits; official mode: real-valued taps (Cs, T) (the release's per-tap
// scales), both stored transposed as (T, Cs) for the kernels.
void load_token(Loader& L, TokenConv& t, const std::string& name, int N, int pairs, int axis, bool real_taps) {
  t.name = name;
  t.N = N, t.pairs = pairs, t.axis = axis, t.T = 7, t.Cs = N * pairs;
  const uint8_t* bits = real_taps ? nullptr : L.bits(name + ".bits", int64_t(t.Cs) * t.T);
  std::vector<float> w;
  if (real_taps) w = L.f32(name + ".taps", {t.Cs, t.T});
  auto alpha = L.f32(name + ".alpha", {N});
  auto beta = L.f32(name + ".beta", {N});
  auto thresh = L.f32(name + ".thresh", {t.Cs});
  auto act = L.f32(name + ".act", {2, N});
  if (L.checking) return;
  t.alpha = std::move(alpha), t.beta = std::move(beta), t.thresh = std::move(thresh);
  std::vector<float>* a2[] = {&t.slope, &t.shift};
  split_rows(act, 2, N, a2);
  if (real_taps) {
    t.ftaps.resize(size_t(t.T) * t.Cs);
    for (int cs = 0; cs < t.Cs; ++cs)
      for (int k = 0; k < t.T; ++k) t.ftaps[size_t(k) * t.Cs + cs] = w[size_t(cs) * t.T + k];
    return;
  }
  t.taps.resize(size_t(t.T) * t.Cs);
  for (int cs = 0; cs < t.Cs; ++cs)
    for (int k = 0; k < t.T; ++k) t.taps[size_t(k) * t.Cs + cs] = bit_at(bits, int64_t(cs) * t.T + k) ? -1 : 1;
}

// (cout, K) row-major weights -> float GEMM panels (ceil(cout / NB), K, NB), zero past cout.
std::vector<float> float_panels(const std::vector<float>& w, int cout, int K) {
  const int P = (cout + SGEMM_NB - 1) / SGEMM_NB;
  std::vector<float> p(size_t(P) * K * SGEMM_NB, 0.f);
  for (int n = 0; n < cout; ++n)
    for (int k = 0; k < K; ++k) p[(size_t(n / SGEMM_NB) * K + k) * SGEMM_NB + n % SGEMM_NB] = w[size_t(n) * K + k];
  return p;
}

void load_float_conv(Loader& L, FloatConv& f, const std::string& name, int cin, int cout, int kernel,
                     int stride, int pad, bool group_norm, bool act_too = true) {
  f.name = name;
  f.cin = cin, f.cout = cout, f.kernel = kernel, f.stride = stride, f.pad = pad, f.act = act_too;
  f.K = cin * kernel * kernel;
  auto w = L.f32(name + ".weight", {cout, cin, kernel, kernel});
  auto bias = L.f32(name + ".bias", {cout});
  std::vector<float> act;
  if (act_too) act = L.f32(name + ".act", {3, cout});
  std::vector<float> gn;
  if (group_norm) gn = L.f32(name + ".norm.affine", {2, cout});
  if (L.checking) return;
  f.panels = float_panels(w, cout, f.K);
  f.bias = std::move(bias);
  if (act_too) {
    std::vector<float>* a3[] = {&f.b1, &f.slope, &f.b2};
    split_rows(act, 3, cout, a3);
  }
  if (group_norm) {
    std::vector<float>* g2[] = {&f.gn_weight, &f.gn_bias};
    split_rows(gn, 2, cout, g2);
  }
}

void load_block(Loader& L, Block& b, const Config& cfg, const std::string& name, int C, int hidden) {
  b.name = name;
  b.C = C, b.hidden = hidden;
  b.multi_branch = cfg.multi_branch;
  b.tfc_shortcut = cfg.uni_shortcut;
  auto n1 = L.f32(name + ".norm1.affine", {2, C});
  auto n2 = L.f32(name + ".norm2.affine", {2, C});
  const std::string at = name + ".attn.";
  load_binary(L, b.theta_h, at + "theta_h_conv", C, C, false);
  load_binary(L, b.theta_w, at + "theta_w_conv", C, C, false);
  load_binary(L, b.fc_h, at + "fc_h", C, C, false);
  load_binary(L, b.fc_w, at + "fc_w", C, C, false);
  load_binary(L, b.fc_c, at + "fc_c", C, C, false);
  load_binary(L, b.proj, at + "proj", C, C, false);
  load_token(L, b.tfc_h, at + "tfc_h", C, 2, 0, cfg.ternary);
  load_token(L, b.tfc_w, at + "tfc_w", C, 2, 1, cfg.ternary);
  b.rw_sc1 = shortcut_for(C, C / 4, cfg.uni_shortcut);
  b.rw_sc2 = shortcut_for(C / 4, 3 * C, cfg.uni_shortcut);
  load_binary(L, b.rw_fc1, at + "reweight.fc1", C, C / 4, b.rw_sc1.kind != RES_NONE);
  load_binary(L, b.rw_fc2, at + "reweight.fc2", C / 4, 3 * C, false);
  b.mlp_sc1 = shortcut_for(C, hidden, cfg.uni_shortcut);
  b.mlp_sc2 = shortcut_for(hidden, C, cfg.uni_shortcut);
  load_binary(L, b.mlp_fc1, name + ".mlp.fc1", C, hidden, b.mlp_sc1.kind != RES_NONE);
  load_binary(L, b.mlp_fc2, name + ".mlp.fc2", hidden, C, false);
  std::vector<float> mix;
  if (cfg.multi_branch) {
    load_token(L, b.sfc_h, name + ".sfc_h", C, 1, 0, cfg.ternary);
    load_token(L, b.sfc_w, name + ".sfc_w", C, 1, 1, cfg.ternary);
    mix = L.f32(name + ".weight", {2});
  }
  if (L.checking) return;
  std::vector<float>* a1[] = {&b.norm1_scale, &b.norm1_shift};
  split_rows(n1, 2, C, a1);
  std::vector<float>* a2[] = {&b.norm2_scale, &b.norm2_shift};
  split_rows(n2, 2, C, a2);
  for (const Binary1x1* u : {&b.theta_h, &b.theta_w, &b.fc_h, &b.fc_w, &b.fc_c})
    b.front_thresh.insert(b.front_thresh.end(), u->thresh.begin(), u->thresh.end());
  if (cfg.multi_branch) {
    b.sign_thresh = b.sfc_h.thresh;
    b.sign_thresh.insert(b.sign_thresh.end(), b.sfc_w.thresh.begin(), b.sfc_w.thresh.end());
    b.b0 = mix[0], b.b1 = mix[1];
    b.gain = (1.f - b.b0) - b.b1;  // float32, as PyTorch computes 1 - b0 - b1
  }
}

// The binary 3x3 conv: bits of the (cin, cin, 3, 3) weight -> panels of K = 9 cin in tap-major
// words (tap t = 3 ky + kx at words [t KWc, (t + 1) KWc)), and the per-tap sign sums.
void load_conv3(Loader& L, Binary1x1& b, std::vector<int32_t>& tapsum, const std::string& name, int C) {
  b.name = name;
  const int KWc = (C + 63) / 64;
  b.K = 9 * C, b.N = C, b.KW = 9 * KWc;
  const uint8_t* bits = L.bits(name + ".bits", int64_t(C) * C * 9);
  auto alpha = L.f32(name + ".alpha", {C});
  auto beta = L.f32(name + ".beta", {C});
  auto thresh = L.f32(name + ".thresh", {C});
  auto act = L.f32(name + ".act", {2, C});
  if (L.checking) return;
  b.alpha = std::move(alpha), b.beta = std::move(beta), b.thresh = std::move(thresh);
  std::vector<float>* a2[] = {&b.slope, &b.shift};
  split_rows(act, 2, C, a2);
  const int P = (C + NR - 1) / NR;
  b.panels.assign(size_t(P) * b.KW * NR, 0);
  tapsum.assign(size_t(9) * C, 0);
  for (int n = 0; n < C; ++n)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t) {
        const bool neg = bit_at(bits, (int64_t(n) * C + c) * 9 + t);
        tapsum[size_t(t) * C + n] += neg ? -1 : 1;
        if (neg) b.panels[(size_t(n / NR) * b.KW + size_t(t) * KWc + c / 64) * NR + n % NR] |= uint64_t(1) << (c % 64);
      }
}

void build_reactnet(Loader& L, Model& m) {
  const Config& cfg = m.cfg_;
  load_float_conv(L, m.stem_, "stem", cfg.in_chans, cfg.stem_dim, cfg.stem_kernel, cfg.stem_stride, cfg.stem_pad,
                  false, false);
  m.react_.assign(cfg.dims.size(), ReactBlock());
  int cin = cfg.stem_dim;
  for (size_t i = 0; i < cfg.dims.size(); ++i) {
    ReactBlock& rb = m.react_[i];
    rb.name = "blocks." + std::to_string(i);
    rb.cin = cin, rb.cout = cfg.dims[i], rb.stride = cfg.strides[i];
    load_conv3(L, rb.conv3, rb.tapsum, rb.name + ".binary_3x3", cin);
    load_binary(L, rb.pw, rb.name + ".binary_pw", cin, rb.cout, false);
    cin = rb.cout;
  }
  const int nc = cfg.num_classes;
  auto hw = L.f32("head_weight", {nc, cin});
  auto hb = L.f32("head_bias", {nc});
  if (L.checking) return;
  m.head_panels_ = float_panels(hw, nc, cin);
  m.head_bias_ = std::move(hb);
}

}  // namespace

Shortcut shortcut_for(int cin, int cout, bool uni) {
  if (cin == cout) return {RES_IDENTITY, 1};
  if (!uni) return {RES_NONE, 1};
  if (cout % cin == 0) return {RES_TILE, 1};
  return {RES_GROUPMEAN, cin / cout};
}

namespace {
// ReActNet-A's configuration: stem_dim, dims (each block keeps or doubles its input channels),
// strides (1 or 2 per block), stem_stride, pad_value (-1 or +1), classes, input channels.
Config parse_reactnet_config(const std::string& file, const Json& c) {
  Config cfg;
  cfg.reactnet = true;
  cfg.uni_shortcut = cfg.multi_branch = false;
  const Json& mode = field(file, c, "mode", Json::String);
  if (mode.text != "paper") fail(file, "configuration 'mode' is '" + mode.text + "'; a reactnet artifact is 'paper'");
  cfg.num_classes = int_field(file, "num_classes", field(file, c, "num_classes", Json::Number), 1, kMaxClasses);
  cfg.in_chans = int_field(file, "in_chans", field(file, c, "in_chans", Json::Number), 1, kMaxInChans);
  cfg.stem_stride = int_field(file, "stem_stride", field(file, c, "stem_stride", Json::Number), 1, 16);
  cfg.stem_kernel = std::max(3, 2 * cfg.stem_stride - 1);
  cfg.stem_pad = (cfg.stem_kernel - cfg.stem_stride + 1) / 2;
  cfg.stem_dim = int_field(file, "stem_dim", field(file, c, "stem_dim", Json::Number), 1, kMaxDim);
  const Json& pv = field(file, c, "pad_value", Json::Number);
  if (!pv.integral || (pv.number != 1 && pv.number != -1)) fail(file, "configuration 'pad_value' must be -1 or 1");
  cfg.pad_value = int(pv.number);
  const Json& dims = field(file, c, "dims", Json::Array);
  const Json& strides = field(file, c, "strides", Json::Array);
  const size_t n = dims.items.size();
  if (n < 1 || n > size_t(kMaxBlocks)) fail(file, "configuration needs 1 to 256 blocks");
  if (strides.items.size() != n) fail(file, "configuration 'dims' and 'strides' differ in length");
  int cin = cfg.stem_dim;
  for (size_t i = 0; i < n; ++i) {
    const int d = int_field(file, "dims", dims.items[i], 1, kMaxDim);
    if (d != cin && d != 2 * cin)
      fail(file, "configuration 'dims' entry " + std::to_string(i) + " goes " + std::to_string(cin) + " -> " +
                     std::to_string(d) + " channels; a block keeps or doubles them");
    const int st = int_field(file, "strides", strides.items[i], 1, 2);
    cfg.dims.push_back(d), cfg.strides.push_back(st);
    cin = d;
  }
  return cfg;
}
}  // namespace

Config parse_config(const std::string& file, const Json& header, int version) {
  const Json* cj = header.find("config");
  if (!cj || cj->kind != Json::Object) fail(file, "model header has no 'config' object");
  const Json& c = *cj;
  if (const Json* arch = c.find("arch")) {  // absent before version 2: a BiMLP
    if (arch->kind != Json::String || (arch->text != "bimlp" && arch->text != "reactnet"))
      fail(file, "configuration 'arch' must be 'bimlp' or 'reactnet'");
    if (arch->text == "reactnet") {
      if (version < 2) fail(file, "arch 'reactnet' needs a version 2 artifact");
      const Json* nm = header.find("numerics");
      if (!nm || nm->kind != Json::String || nm->text != "paper")
        fail(file, "model header 'numerics' must be 'paper' for a reactnet artifact");
      return parse_reactnet_config(file, c);
    }
  }
  Config cfg;
  const Json& mode = field(file, c, "mode", Json::String);
  if (mode.text != "paper" && mode.text != "official")
    fail(file, "configuration 'mode' is '" + mode.text + "', expected 'paper' or 'official'");
  // the numerics the weights were folded for: recorded twice (header and configuration) from
  // version 2 on, and they must agree; version 1 had paper mode only
  if (version >= 2) {
    const Json* nm = header.find("numerics");
    if (!nm || nm->kind != Json::String)
      fail(file, "model header has no 'numerics' string (version " + std::to_string(version) + " needs it)");
    if (nm->text != mode.text)
      fail(file, "model header 'numerics' is '" + nm->text + "' but the configuration's mode is '" + mode.text + "'");
  } else if (mode.text != "paper") {
    fail(file, "a version 1 artifact holds paper-mode numerics only, its configuration says mode '" + mode.text + "'");
  }
  cfg.ternary = mode.text == "official";
  const Json& ds = field(file, c, "downsample", Json::String);
  if (ds.text != "bimlp" && ds.text != "wavemlp")
    fail(file, "configuration 'downsample' is '" + ds.text + "', expected 'bimlp' or 'wavemlp'");
  if (ds.text == "wavemlp" && version < 2)
    fail(file, "downsample 'wavemlp' needs a version 2 artifact");
  cfg.conv_downsample = ds.text == "wavemlp";
  const Json& norm = field(file, c, "norm", Json::String);
  if (norm.text != "batch" && norm.text != "group")
    fail(file, "configuration 'norm' is '" + norm.text + "', expected 'batch' or 'group'");
  cfg.group_norm = norm.text == "group";
  cfg.uni_shortcut = field(file, c, "uni_shortcut", Json::Bool).boolean;
  cfg.multi_branch = field(file, c, "multi_branch", Json::Bool).boolean;
  cfg.num_classes = int_field(file, "num_classes", field(file, c, "num_classes", Json::Number), 1, kMaxClasses);
  cfg.in_chans = int_field(file, "in_chans", field(file, c, "in_chans", Json::Number), 1, kMaxInChans);
  if (const Json* ss = c.find("stem_stride")) {  // absent in artifacts from before the option: 4
    cfg.stem_stride = int_field(file, "stem_stride", *ss, 1, 16);
    cfg.stem_kernel = std::max(3, 2 * cfg.stem_stride - 1);
    cfg.stem_pad = (cfg.stem_kernel - cfg.stem_stride + 1) / 2;
  }
  const Json& depths = field(file, c, "depths", Json::Array);
  const Json& dims = field(file, c, "dims", Json::Array);
  const Json& ratios = field(file, c, "mlp_ratios", Json::Array);
  const size_t S = depths.items.size();
  if (S < 1 || S > size_t(kMaxStages)) fail(file, "configuration needs 1 to 8 stages");
  if (dims.items.size() != S || ratios.items.size() != S)
    fail(file, "configuration 'depths', 'dims' and 'mlp_ratios' differ in length");
  int blocks = 0;
  for (size_t i = 0; i < S; ++i) {
    cfg.depths.push_back(int_field(file, "depths", depths.items[i], 1, kMaxDepth));
    blocks += cfg.depths.back();
    const int d = int_field(file, "dims", dims.items[i], 4, kMaxDim);
    if (d % 4) fail(file, "configuration 'dims' entry " + std::to_string(d) + " is not divisible by 4");
    cfg.dims.push_back(d);
    const Json& r = ratios.items[i];
    if (r.kind != Json::Number || !(r.number > 0) || r.number > 64)
      fail(file, "configuration 'mlp_ratios' entries must be numbers in (0, 64]");
    cfg.mlp_ratios.push_back(r.number);
    const double hd = double(d) * r.number;
    const int hidden = int(hd);  // Python's int(dim * ratio)
    if (hidden < 1 || hidden > kMaxHidden)
      fail(file, "channel-MLP width int(" + std::to_string(d) + " * ratio) out of range");
    const int lo = std::min(d, hidden), hi = std::max(d, hidden);
    if ((cfg.uni_shortcut || d == hidden) && hi % lo)
      fail(file, "channel-MLP width " + std::to_string(hidden) + " and dim " + std::to_string(d) +
                     ": no Uni-shortcut (one must divide the other)");
    cfg.hidden.push_back(hidden);
  }
  if (blocks > kMaxBlocks) fail(file, "configuration has " + std::to_string(blocks) + " blocks, at most 256 allowed");
  return cfg;
}

namespace {
void build(Loader& L, Model& m) {
  const Config& cfg = m.cfg_;
  load_float_conv(L, m.stem_, "stem", cfg.in_chans, cfg.dims[0], cfg.stem_kernel, cfg.stem_stride, cfg.stem_pad,
                  cfg.group_norm);
  m.stages_.assign(cfg.depths.size(), Stage());
  for (size_t i = 0; i < cfg.depths.size(); ++i) {
    Stage& s = m.stages_[i];
    s.blocks.assign(size_t(cfg.depths[i]), Block());
    for (int j = 0; j < cfg.depths[i]; ++j)
      load_block(L, s.blocks[size_t(j)], cfg, "network." + std::to_string(2 * i) + "." + std::to_string(j),
                 cfg.dims[i], cfg.hidden[i]);
    s.has_downsample = i + 1 < cfg.depths.size();
    if (s.has_downsample) {
      const std::string nm = "network." + std::to_string(2 * i + 1) + ".proj";
      if (cfg.conv_downsample)  // Wave-MLP: conv 3x3 stride 2 pad 1 -> norm, no activation
        load_float_conv(L, s.down, nm, cfg.dims[i], cfg.dims[i + 1], 3, 2, 1, cfg.group_norm, false);
      else
        load_float_conv(L, s.down, nm, cfg.dims[i], cfg.dims[i + 1], 1, 1, 0, cfg.group_norm);
    }
  }
  const int C = cfg.dims.back(), nc = cfg.num_classes;
  auto hw = L.f32("head_weight", {nc, C});
  auto hb = L.f32("head_bias", {nc});
  std::vector<float> gn;
  if (cfg.group_norm) gn = L.f32("norm.affine", {2, C});
  if (L.checking) return;
  m.head_panels_ = float_panels(hw, nc, C);
  m.head_bias_ = std::move(hb);
  if (cfg.group_norm) {
    m.final_gn_weight_.assign(gn.begin(), gn.begin() + C);
    m.final_gn_bias_.assign(gn.begin() + C, gn.end());
  }
}
}  // namespace

Model::Model(const Artifact& a, int threads, const Table& table, int isa)
    : table_(&table), isa_(isa), threads_(threads) {
  cfg_ = parse_config(a.name, a.header, a.version);
  Loader check{a, true, {}};
  auto build_any = [&](Loader& L) { cfg_.reactnet ? build_reactnet(L, *this) : build(L, *this); };
  build_any(check);  // every name, dtype and shape, before anything is allocated
  check.check_complete();
  Loader load{a, false, {}};
  build_any(load);
  step_names_ = {"stem"};
  for (const ReactBlock& rb : react_)
    for (const char* part : {".binary_3x3", ".binary_pw"}) step_names_.push_back(rb.name + part);
  for (size_t i = 0; i < stages_.size(); ++i) {
    for (const Block& b : stages_[i].blocks) {
      for (const char* part : {".norm1", ".attn.front", ".attn.tokens", ".attn.reweight", ".attn.mix_proj",
                               ".norm2", ".branches", ".mlp"})
        step_names_.push_back(b.name + part);
    }
    if (stages_[i].has_downsample) step_names_.push_back(stages_[i].down.name);
  }
  step_names_.push_back("head");
}

void Model::set_threads(int t) { threads_ = t; }

}  // namespace bimlp

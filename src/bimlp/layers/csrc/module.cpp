// The fast training path's CPU kernels as one Python extension (bimlp.layers.fused).
#include "rows.h"

namespace bimlp {  // token_conv.cpp
torch::Tensor token_conv_forward(torch::Tensor x, torch::Tensor w, int64_t axis);
std::vector<torch::Tensor> token_conv_backward(torch::Tensor gy, torch::Tensor x,
                                               torch::Tensor w, int64_t axis, bool need_x,
                                               bool need_w);
}  // namespace bimlp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("head_forward", &bimlp::head_forward, "Q(x + b) of the binary unit's head");
  mod.def("head_backward", &bimlp::head_backward, "the head's backward into gx (+= gs)");
  mod.def("tail_forward", &bimlp::tail_forward, "R(BN(y) + s) forward");
  mod.def("tail_backward", &bimlp::tail_backward, "R(BN(y) + s) backward");
  mod.def("token_conv_forward", &bimlp::token_conv_forward, "token-mixing grouped conv");
  mod.def("token_conv_backward", &bimlp::token_conv_backward, "its input and weight gradients");
}

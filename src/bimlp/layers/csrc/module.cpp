// The fast training path's CPU kernels as one Python extension (bimlp.layers.fused).
#include "rows.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("head_forward", &bimlp::head_forward, "Q(x + b) of the binary unit's head");
  mod.def("head_backward", &bimlp::head_backward, "the head's backward into gx (+= gs)");
  mod.def("tail_forward", &bimlp::tail_forward, "R(BN(y) + s) forward");
  mod.def("tail_backward", &bimlp::tail_backward, "R(BN(y) + s) backward");
}

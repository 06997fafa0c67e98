"""Deployment: packed 1-bit inference for BiMLP (``paper`` and ``official`` numerics) and ReActNet.

* :func:`pack_model` -- the model packed into the standalone runtime (``bimlp_runtime``), as a
  PyTorch module whose forward runs the whole network in one native call;
* :func:`export` / :func:`load` -- the versioned ``.bimlp`` artifact (safetensors + JSON header);
* :func:`simulate` -- the float32 network with binarized weights (baseline, ONNX interchange).
"""

from .artifact import ArtifactError, export, load, pack_model
from .pack import pack_weights
from .runtime import PackedBiMLP
from .simulate import simulate

__all__ = ["ArtifactError", "PackedBiMLP", "export", "load", "pack_model", "pack_weights", "simulate"]

"""Deployment: packed 1-bit inference for ``paper``-mode BiMLP models.

* :func:`pack_model` -- a new module tree whose binary layers run on native 1-bit kernels;
* :func:`export` / :func:`load` -- the versioned ``.bimlp`` artifact (safetensors + JSON header);
* :func:`simulate` -- the float32 network with binarized weights (baseline, ONNX interchange).
"""

from .artifact import ArtifactError, export, load
from .engine import PackedBiMLP
from .pack import pack_model
from .simulate import simulate

__all__ = ["ArtifactError", "PackedBiMLP", "export", "load", "pack_model", "simulate"]

"""Model families. Importing this package registers every model (with timm too)."""

from . import bimlp as _bimlp  # noqa: F401  (registers bimlp_s, bimlp_m)
from . import reactnet as _reactnet  # noqa: F401  (registers reactnet_a, reactnet_a_xs)
from . import wavemlp as _wavemlp  # noqa: F401  (registers wavemlp_t, wavemlp_s, wavemlp_m)
from ._registry import create_model, is_model, list_models, register_model
from .bimlp import BiMLP, BiMLPConfig
from .reactnet import ReActNet, ReActNetConfig
from .wavemlp import WaveMLP, WaveMLPConfig, infer_wavemlp_config, load_wavemlp

__all__ = [
    "BiMLP", "BiMLPConfig", "ReActNet", "ReActNetConfig", "WaveMLP", "WaveMLPConfig", "create_model", "infer_wavemlp_config",
    "is_model", "list_models", "load_wavemlp", "register_model",
]

"""Model families. Importing this package registers every model (with timm too)."""

from . import bimlp as _bimlp  # noqa: F401  (registers bimlp_s, bimlp_m)
from . import wavemlp as _wavemlp  # noqa: F401  (registers wavemlp_t, wavemlp_s, wavemlp_m)
from ._registry import create_model, is_model, list_models, register_model
from .bimlp import BiMLP, BiMLPConfig
from .wavemlp import WaveMLP, WaveMLPConfig, infer_wavemlp_config, load_wavemlp

__all__ = [
    "BiMLP", "BiMLPConfig", "WaveMLP", "WaveMLPConfig", "create_model", "infer_wavemlp_config",
    "is_model", "list_models", "load_wavemlp", "register_model",
]

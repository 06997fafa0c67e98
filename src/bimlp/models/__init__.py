"""Model families. Importing this package registers every model (with timm too)."""

from . import bimlp as _bimlp  # noqa: F401  (registers bimlp_s, bimlp_m, bimlp_xs)
from . import reactnet as _reactnet  # noqa: F401  (registers reactnet_a, reactnet_a_xs)
from . import wavemlp as _wavemlp  # noqa: F401  (registers wavemlp_t, wavemlp_s, wavemlp_m, ...)
from ._base import ArchConfig, StagedConfig
from ._builder import create_model, load_checkpoint, model_from_checkpoint, variant_for
from ._registry import (
    config_fields,
    family_of,
    is_model,
    list_families,
    list_models,
    register_model,
)
from .bimlp import BiMLP, BiMLPConfig, convert_official, load_official
from .reactnet import ReActNet, ReActNetConfig
from .wavemlp import WaveMLP, WaveMLPConfig, infer_wavemlp_config, load_wavemlp

__all__ = [
    "ArchConfig", "BiMLP", "BiMLPConfig", "ReActNet", "ReActNetConfig", "StagedConfig", "WaveMLP",
    "WaveMLPConfig", "config_fields", "convert_official", "create_model", "family_of",
    "infer_wavemlp_config", "is_model", "list_families", "list_models", "load_checkpoint", "load_official",
    "load_wavemlp", "model_from_checkpoint", "register_model", "variant_for",
]

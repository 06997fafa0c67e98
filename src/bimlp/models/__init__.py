"""Model families. Importing this package registers every model (with timm too)."""

from . import bimlp as _bimlp  # noqa: F401  (registers bimlp_s, bimlp_m)
from ._registry import create_model, is_model, list_models, register_model
from .bimlp import BiMLP, BiMLPConfig

__all__ = ["BiMLP", "BiMLPConfig", "create_model", "is_model", "list_models", "register_model"]

"""bimlp: binary vision MLPs (BiMLP, NeurIPS 2022) in PyTorch -- models, training, profiling
and a packed 1-bit inference engine. ``import bimlp`` registers every model with timm."""

from .models import BiMLP, BiMLPConfig, create_model, list_models

__version__ = "0.1.0"

__all__ = ["BiMLP", "BiMLPConfig", "create_model", "list_models", "__version__"]

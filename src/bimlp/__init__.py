"""bimlp: binary vision MLPs (BiMLP, NeurIPS 2022) in PyTorch -- models, training, profiling
and a packed 1-bit inference engine. ``import bimlp`` registers every model with timm."""

from . import deploy
from .checkpoint import CheckpointError
from .convert.official import convert_official, load_official
from .models import BiMLP, BiMLPConfig, create_model, list_models
from .models.wavemlp import load_wavemlp
from .profile import profile

__version__ = "0.1.0"

__all__ = [
    "BiMLP",
    "BiMLPConfig",
    "CheckpointError",
    "__version__",
    "convert_official",
    "create_model",
    "deploy",
    "list_models",
    "load_official",
    "load_wavemlp",
    "profile",
]

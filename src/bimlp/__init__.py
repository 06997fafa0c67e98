"""bimlp: binary vision MLPs (BiMLP, NeurIPS 2022) in PyTorch -- models, training, profiling
and a packed 1-bit inference engine. ``import bimlp`` registers every model with timm.

The package imports nothing heavy itself: the public names below load their modules (and torch)
on first use (PEP 562), so that ``bimlp --help`` answers without importing torch. The models
reach timm's registry as soon as timm is imported: at once if it already is, else right after
the program's own ``import timm`` (a one-shot import hook, removed when it has fired).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the only place the version is written (pyproject reads it from here)

# public name -> the module that defines it
_EXPORTS = {
    "BiMLP": "bimlp.models",
    "BiMLPConfig": "bimlp.models",
    "create_model": "bimlp.models",
    "list_models": "bimlp.models",
    "load_wavemlp": "bimlp.models",
    "CheckpointError": "bimlp.checkpoint",
    "convert_official": "bimlp.models",
    "load_official": "bimlp.models",
    "profile": "bimlp.profile",  # the function; the package of the same name is callable too
}
_SUBPACKAGES = ("checkpoint", "convert", "data", "deploy", "layers", "models", "train")

__all__ = ["__version__", "deploy", *_EXPORTS]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import deploy
    from .checkpoint import CheckpointError
    from .models import (
        BiMLP,
        BiMLPConfig,
        convert_official,
        create_model,
        list_models,
        load_official,
        load_wavemlp,
    )
    from .profile import profile


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBPACKAGES})


class _RegisterWithTimm(importlib.abc.MetaPathFinder):
    """Imports ``bimlp.models`` (which registers every model) right after timm's first import."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding us
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        else:
            return None  # timm is not installed: the import fails as it would without us
        if spec.loader is None:
            return spec
        spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # timm sees its own loader
        self.loader.exec_module(module)
        importlib.import_module("bimlp.models")


if "timm" in sys.modules:
    importlib.import_module("bimlp.models")
elif not any(isinstance(f, _RegisterWithTimm) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithTimm())

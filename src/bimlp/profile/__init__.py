"""Complexity accounting of binary networks: parameters, memory bits, BOPs, FLOPs and OPs.

``bimlp.profile(model, input_size=(3, 224, 224))`` runs one forward pass with hooks and reads
every layer's quantizer precision; ``bimlp profile NAME`` prints the report (``bimlp.commands.profile``).
"""

import sys
import types

from .report import LayerProfile, ProfileResult, StageProfile, format_report, plot_ops
from .trace import profile

__all__ = ["LayerProfile", "ProfileResult", "StageProfile", "format_report", "plot_ops", "profile"]


class _CallablePackage(types.ModuleType):
    """``bimlp.profile`` names both this package and the function; calling the package calls it."""

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return profile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

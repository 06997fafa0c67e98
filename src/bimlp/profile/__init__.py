"""Complexity accounting of binary networks: parameters, memory bits, BOPs, FLOPs and OPs.

``bimlp.profile(model, input_size=(3, 224, 224))`` runs one forward pass with hooks and reads
every layer's quantizer precision; ``bimlp profile NAME`` prints the report (``bimlp.commands.profile``).
"""

from .report import format_report, plot_ops
from .summary import LayerProfile, ProfileResult, StageProfile, profile

__all__ = ["LayerProfile", "ProfileResult", "StageProfile", "format_report", "plot_ops", "profile"]

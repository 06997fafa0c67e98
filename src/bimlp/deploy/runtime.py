"""A thin PyTorch module over the standalone runtime (``bimlp_runtime``, numpy only): tensors in,
tensors out, the input passed to the runtime as a zero-copy numpy view when it is a contiguous
float32 CPU tensor, the logits written straight into the returned tensor."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PackedBiMLP"]


class PackedBiMLP(nn.Module):
    """A packed BiMLP running on the 1-bit runtime. Input (B, C, H, W) float32, output logits.

    Build one with :func:`bimlp.deploy.pack_model` or :func:`bimlp.deploy.load`; ``runtime`` is
    the underlying ``bimlp_runtime.Model`` (thread-safe: concurrent calls are fine).
    """

    def __init__(self, runtime: Any, config: dict[str, Any], layout: nn.Module | None = None) -> None:
        super().__init__()
        self.runtime = runtime
        self.config = dict(config)
        self.layout = layout  # the packed tensors (when built by pack_model), for export

    @classmethod
    def from_bytes(cls, data: bytes, layout: nn.Module, threads: int | None = None) -> PackedBiMLP:
        import bimlp_runtime

        return cls(bimlp_runtime.from_bytes(data, name="<packed model>", threads=threads), layout.config, layout)

    @property
    def threads(self) -> int:
        return self.runtime.threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self.runtime.threads = value

    @property
    def kernel_name(self) -> str:
        return f"runtime-{self.runtime.isa}"

    @staticmethod
    def _array(x: torch.Tensor):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        return x.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._array(x)
        if a.ndim != 4:
            raise ValueError(f"expected (B, {self.runtime.in_channels}, H, W), got {tuple(x.shape)}")
        out = torch.empty(a.shape[0], self.runtime.num_classes, dtype=torch.float32)
        self.runtime.run(a, out=out.numpy())
        return out

    def profile(self, x: torch.Tensor, repeats: int = 1) -> dict[str, float]:
        """Seconds per step of the native plan, summed over ``repeats`` calls."""
        return self.runtime.profile(self._array(x), repeats=repeats)[1]

    def extra_repr(self) -> str:
        return f"isa={self.runtime.isa}, threads={self.runtime.threads}, config={self.config}"

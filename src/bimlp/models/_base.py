"""What BiMLP and Wave-MLP share: the stage/downsample skeleton and timm's method vocabulary."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["StagedNet", "build_network", "drop_path_rates", "stem_geometry"]


def stem_geometry(stride: int) -> tuple[int, int]:
    """(kernel, padding) of a stem conv with ``stride``, so that an ``H``-pixel input gives
    ``ceil(H / stride)`` rows for even ``H``.

    kernel ``max(3, 2 * stride - 1)``, padding ``(kernel - stride + 1) // 2``: stride 4 is the
    release's 7x7 pad 2 (224 -> 56), stride 2 a 3x3 pad 1 (32 -> 16, 224 -> 112), stride 1 a
    3x3 pad 1 (same size). Smaller strides let 28-32 px inputs keep 2x2 maps in the last stage.
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stem_stride must be a positive integer, got {stride!r}")
    kernel = max(3, 2 * stride - 1)
    return kernel, (kernel - stride + 1) // 2


def drop_path_rates(depths: Sequence[int], rate: float) -> list[float]:
    """Stochastic-depth rate of every block, growing linearly from 0 to ``rate`` (release rule)."""
    total = sum(depths)
    return [rate * i / max(total - 1, 1) for i in range(total)]


def build_network(
    depths: Sequence[int],
    dims: Sequence[int],
    drop_path_rate: float,
    block: Callable[[int, int, float], nn.Module],
    downsample: Callable[[int, int], nn.Module],
) -> nn.ModuleList:
    """The release's flat ``network`` list: stage 0, downsample 0, stage 1, ..., last stage.

    ``block(stage, dim, drop_path)`` builds one block, ``downsample(dim_in, dim_out)`` one
    transition.
    """
    rates = iter(drop_path_rates(depths, drop_path_rate))
    network: list[nn.Module] = []
    for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        network.append(nn.Sequential(*[block(i, dim, next(rates)) for _ in range(depth)]))
        if i + 1 < len(depths):
            network.append(downsample(dim, dims[i + 1]))
    return nn.ModuleList(network)


class StagedNet(nn.Module):
    """Stem -> ``network`` -> final norm -> global average pool -> classifier, with timm's
    methods. Subclasses set ``patch_embed``, ``network``, ``norm``, ``head_drop``,
    ``num_features`` and ``config`` (which has ``num_classes``), then call ``reset_classifier``."""

    patch_embed: nn.Module
    network: nn.ModuleList
    norm: nn.Module
    head_drop: nn.Module
    num_features: int

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.config.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C0, H/s, W/s), s = stem stride
        for layer in self.network:
            x = layer(x)
        return self.norm(x)  # (B, C_last, H', W')

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean(dim=(2, 3)))  # (B, C_last)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def init_weights(self) -> None:
        """Truncated-normal classifier (std 0.02, zero bias); PyTorch defaults elsewhere."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

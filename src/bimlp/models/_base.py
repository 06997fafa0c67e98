"""What BiMLP and Wave-MLP share: the configuration base (one list of architecture fields,
one validation), the stage/downsample skeleton, the outer norm and the strided-conv downsample,
and timm's method vocabulary."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils.checkpoint
from timm.layers import SelectAdaptivePool2d
from torch import nn

from ..checkpoint import CheckpointError
from ..layers import BatchNorm2d

__all__ = [
    "ArchConfig", "ConvDownsample", "StagedConfig", "StagedNet", "build_network",
    "check_network_layout", "checkpoint_keeping_stats", "drop_path_rates", "make_norm",
    "stem_geometry",
]

# Sane bounds on what a configuration may ask for. A configuration can come from an untrusted
# file, so these keep a bad one from building thousands of blocks before its tensors are
# compared (the released models: at most 4 stages, 18 blocks in a stage, 512 channels).
MAX_STAGES = 8
MAX_DEPTH = 64  # blocks in one stage
MAX_BLOCKS = 128  # blocks in all
MAX_DIM = 4096  # channels of a stage
MAX_MLP_RATIO = 16.0
MAX_CLASSES = 100_000
MAX_IN_CHANS = 64
MAX_STRIDE = 8  # stem stride


def arch(default: Any, choices: tuple[Any, ...] | None = None) -> Any:
    """A configuration field that is part of the architecture: a checkpoint stores and restores
    it (``choices``: the values it may take)."""
    return field(default=default, metadata={"arch": True, "choices": choices})


def run_field(default: Any) -> Any:
    """A configuration field that shapes training, not the weights (dropout rates)."""
    return field(default=default, metadata={"arch": False})


def int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    out = tuple(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return out


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def stem_geometry(stride: int) -> tuple[int, int]:
    """(kernel, padding) of a stem conv with ``stride``, so that an ``H``-pixel input gives
    ``ceil(H / stride)`` rows for even ``H``.

    kernel ``max(3, 2 * stride - 1)``, padding ``(kernel - stride + 1) // 2``: stride 4 is the
    release's 7x7 pad 2 (224 -> 56), stride 2 a 3x3 pad 1 (32 -> 16, 224 -> 112), stride 1 a
    3x3 pad 1 (same size). Smaller strides let 28-32 px inputs keep 2x2 maps in the last stage.
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= MAX_STRIDE:
        raise ValueError(f"stem_stride must be a positive integer up to {MAX_STRIDE}, got {stride!r}")
    kernel = max(3, 2 * stride - 1)
    return kernel, (kernel - stride + 1) // 2


@dataclass
class ArchConfig:
    """What every family's configuration has, and the one validation they share.

    A family subclasses this (or :class:`StagedConfig`) with its own fields: ``arch(...)`` for
    architecture fields, which checkpoints store; ``run_field(...)`` for the rest. Validation
    runs on construction and on ``dataclasses.replace``: every value is checked for type,
    choice and the sane bounds above, and normalised (tuples, floats, bools), so a config is
    always buildable -- whether it came from a caller or from an untrusted file.
    """

    num_classes: int = arch(1000)  # 0: no classifier (features only)
    in_chans: int = arch(3)
    drop_rate: float = run_field(0.0)  # dropout before the classifier

    def __post_init__(self) -> None:
        for name, low, high in (("num_classes", 0, MAX_CLASSES), ("in_chans", 1, MAX_IN_CHANS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low} .. {high}, got {value!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {choices}, got {value!r}")
            if isinstance(f.default, bool):
                if value not in (True, False, 0, 1):
                    raise ValueError(f"{f.name} must be true or false, got {value!r}")
                setattr(self, f.name, bool(value))
            if f.name.startswith("drop_"):
                value = _number(f.name, value)
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"{f.name} must lie in [0, 1), got {value}")
                setattr(self, f.name, value)
        if hasattr(self, "stem_stride"):
            stem_geometry(self.stem_stride)  # validates

    @classmethod
    def arch_fields(cls) -> tuple[str, ...]:
        """Names of the architecture fields, in declaration order: what checkpoints store."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("arch", True))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def arch_dict(self) -> dict[str, Any]:
        """The architecture fields only (what a checkpoint or an artifact header stores)."""
        out = self.to_dict()
        return {k: out[k] for k in self.arch_fields()}

    def check_layout(self, keys: Iterable[str], source: str) -> None:
        """Cheap check of a checkpoint's key names against this configuration, before any
        model is built (families with a block layout override it)."""


@dataclass
class StagedConfig(ArchConfig):
    """The configuration of a :class:`StagedNet` (BiMLP, Wave-MLP): stages of blocks."""

    depths: tuple[int, ...] = arch((2, 2, 4, 2))  # blocks per stage
    dims: tuple[int, ...] = arch((64, 128, 320, 512))  # channels per stage
    # channel-MLP hidden = int(dim * ratio); one number applies to every stage
    mlp_ratios: tuple[float, ...] | float = arch((4.0, 4.0, 4.0, 4.0))
    # outer norms (stem, norm1/norm2, downsample, final): BatchNorm | GroupNorm(1, C)
    norm: str = arch("batch", choices=("batch", "group"))
    stem_stride: int = arch(4)  # patch-embedding stride (4: 224 -> 56; 2: 32 -> 16), kernel scaled
    drop_path_rate: float = run_field(0.0)  # stochastic depth, growing linearly over all blocks

    def __post_init__(self) -> None:
        self.depths = int_tuple("depths", self.depths)
        self.dims = int_tuple("dims", self.dims)
        n = len(self.depths)
        ratios = self.mlp_ratios
        if isinstance(ratios, (int, float)) and not isinstance(ratios, bool):
            ratios = (ratios,) * n
        if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Iterable):
            raise ValueError(f"mlp_ratios must be a number or a list of numbers, got {ratios!r}")
        self.mlp_ratios = tuple(_number("mlp_ratios", r) for r in ratios)
        if n == 0 or len(self.dims) != n or len(self.mlp_ratios) != n:
            raise ValueError(
                f"depths, dims and mlp_ratios need one entry per stage, got {self.depths}, "
                f"{self.dims}, {self.mlp_ratios}"
            )
        if n > MAX_STAGES:
            raise ValueError(f"{n} stages, at most {MAX_STAGES} are supported")
        if any(not 1 <= d <= MAX_DEPTH for d in self.depths) or sum(self.depths) > MAX_BLOCKS:
            raise ValueError(
                f"depths {list(self.depths)}: every stage needs at least one block and at most "
                f"{MAX_DEPTH}, {MAX_BLOCKS} in all"
            )
        check_dims(self.dims)
        if any(not 0 < r <= MAX_MLP_RATIO for r in self.mlp_ratios) or any(
            int(d * r) < 1 for d, r in zip(self.dims, self.mlp_ratios, strict=True)
        ):
            raise ValueError(
                f"mlp_ratios {list(self.mlp_ratios)} must lie in (0, {MAX_MLP_RATIO}] and give "
                "every channel MLP a hidden unit"
            )
        super().__post_init__()

    def check_layout(self, keys: Iterable[str], source: str) -> None:
        check_network_layout(keys, self.depths, source)


def check_dims(dims: Sequence[int], name: str = "dims") -> None:
    if any(not 1 <= d <= MAX_DIM for d in dims):
        raise ValueError(f"{name} {list(dims)}: every dim must lie in 1 .. {MAX_DIM}")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Outer norm of the network: BatchNorm2d (BiMLP-S, Wave-MLP-T) or GroupNorm(1, C)."""
    if kind == "group":
        return nn.GroupNorm(1, channels, eps=1e-5)
    return BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class ConvDownsample(nn.Module):
    """Wave-MLP's downsampling: full-precision Conv 3x3 stride 2 pad 1 (+bias) -> norm."""

    def __init__(self, cin: int, cout: int, norm: str | None) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.norm = make_norm(norm, cout) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


_NETWORK_KEY = re.compile(r"network\.(\d+)\.(?:(\d+)\.)?")


def check_network_layout(keys: Iterable[str], depths: Sequence[int], source: str) -> None:
    """The ``network`` entries and blocks named by a state dict's keys are exactly those of
    :func:`build_network` for ``depths``. Costs one pass over the names, so a file whose
    configuration claims far more (or fewer) blocks than it holds is refused before any model,
    even on the ``meta`` device, is built."""
    stages = {2 * i: set(range(d)) for i, d in enumerate(depths)}
    transitions = set(range(1, 2 * len(depths) - 1, 2))
    extra: set[str] = set()
    found: dict[int, set[int]] = {i: set() for i in stages}
    for key in keys:
        m = _NETWORK_KEY.match(key)
        if m is None:
            continue
        i = int(m.group(1))
        if i in stages and m.group(2) is not None:
            j = int(m.group(2))
            found[i].add(j)
            if j not in stages[i]:
                extra.add(f"network.{i}.{j}.*")
        elif i not in stages and i not in transitions:
            extra.add(f"network.{i}.*")
    missing = [f"network.{i}.{j}.*" for i in stages for j in sorted(stages[i] - found[i])]
    if extra or missing:
        parts = []
        if extra:
            parts.append("unexpected: " + ", ".join(sorted(extra)[:12]))
        if missing:
            parts.append("missing: " + ", ".join(missing[:12]))
        raise CheckpointError(
            f"{source}: tensors do not fit the model (depths {list(depths)}) -- " + "; ".join(parts)
        )


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
    """Stem -> ``network`` -> final norm -> global pool -> classifier, with timm's methods.

    Subclasses set ``patch_embed``, ``network``, ``norm``, ``head_drop``, ``num_features`` and
    ``config`` (which has ``num_classes``), then call ``reset_classifier``. ``network`` is the
    flat list stage 0, downsample 0, stage 1, ..., last stage (each stage an ``nn.Sequential``
    of blocks, possibly empty): stage ``i`` is ``network[2 * i]``, and feature map ``i`` is its
    output, what timm's ``features_only=True`` and ``forward_intermediates`` return.
    """

    patch_embed: nn.Module
    network: nn.ModuleList
    norm: nn.Module
    head_drop: nn.Module
    num_features: int
    grad_checkpointing: bool = False
    fast_path: bool = False  # see set_fast_path
    global_pool_type: str = "avg"  # timm's pool names: avg, max, avgmax, catavgmax, '' (none)

    def pop_timm_args(self, overrides: dict[str, Any]) -> None:
        """Take the constructor keywords that belong to this base, not to a family's config:
        timm's ``pretrained_cfg`` (attached by the builder afterwards) and ``global_pool``."""
        overrides.pop("pretrained_cfg", None)
        self.global_pool_type = overrides.pop("global_pool", "avg")

    # --- classifier ------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool_type = global_pool
        # no pooling ('') keeps the map (B, C, H, W), as in timm
        pool = self.global_pool_type
        self.global_pool = SelectAdaptivePool2d(pool_type=pool, flatten=bool(pool))
        self.num_classes = num_classes
        self.config.num_classes = num_classes
        width = self.head_hidden_size
        self.head = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def head_hidden_size(self) -> int:
        """Width of ``forward_head(x, pre_logits=True)`` (``catavgmax`` doubles it)."""
        pool = getattr(self, "global_pool", None)
        return self.num_features * (pool.feat_mult() if pool is not None else 1)

    # --- forward ---------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast_path:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)  # (B, C0, H/s, W/s), s = stem stride
        for i in range(self.num_stages):
            x = self._stage(i, x)
        return self.norm(x)  # (B, C_last, H', W')

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))  # (B, head_hidden_size); unpooled with ''
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_stages(self) -> int:
        return (len(self.network) + 1) // 2

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Downsample ``i - 1`` (none before stage 0), then stage ``i``'s blocks."""
        if i > 0:
            x = self._run(self.network[2 * i - 1], x)
        for block in self.network[2 * i]:
            x = self._run(block, x)
        return x

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint_keeping_stats(module, x)
        return module(x)

    # --- timm: intermediates and feature maps ----------------------------------------------
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Feature maps of the stages in ``indices`` (timm's signature and meaning).

        Args:
            x: input images (B, C, H, W).
            indices: the last n stages if an int, these stages if a list (negative from the
                end), every stage if None.
            norm: apply the final norm to the last stage's map (the only one it is sized for).
            stop_early: stop after the last stage asked for.
            output_fmt: only ``NCHW``.
            intermediates_only: return the maps alone, not ``(final features, maps)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take, max_index = take_indices(self.num_stages, indices)
        last = self.num_stages - 1
        x = self.patch_embed(x)
        maps = []
        for i in range(max_index + 1 if stop_early else self.num_stages):
            x = self._stage(i, x)
            if i in take:
                maps.append(self.norm(x) if norm and i == last else x)  # (B, C_i, H/r_i, W/r_i)
        if intermediates_only:
            return maps
        return (self.norm(x) if i == last else x), maps

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last one in ``indices`` (and the head, and the final norm
        when asked or when the last stage goes); returns the kept indices."""
        info = self.feature_info  # measured before anything is dropped
        take, max_index = take_indices(self.num_stages, indices)
        if max_index < self.num_stages - 1:
            self.network = self.network[: 2 * max_index + 1]
            self.num_features = info[max_index]["num_chs"]
            prune_norm = True
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's description of the feature maps: channels, reduction (input pixels per map
        pixel) and module name of each stage. Measured once with a small probe pass, so every
        family (and any stem stride or layout) describes itself correctly."""
        cached = self.__dict__.get("_feature_info")
        if cached is None or len(cached) < self.num_stages:
            cached = self._probe_feature_info()
            self.__dict__["_feature_info"] = cached
        return cached[: self.num_stages]

    @torch.no_grad()
    def _probe_feature_info(self) -> list[dict[str, Any]]:
        side = max(64, 2 ** (self.num_stages + 2))
        param = next(self.parameters())
        probe = torch.zeros(1, self.config.in_chans, side, side, device=param.device,
                            dtype=param.dtype)
        was_training, checkpointing = self.training, self.grad_checkpointing
        self.eval()
        try:
            maps = self.forward_intermediates(probe, intermediates_only=True)
        finally:
            self.train(was_training)
            self.grad_checkpointing = checkpointing
        return [
            {"num_chs": int(m.shape[1]), "reduction": side // int(m.shape[-1]),
             "module": f"network.{2 * i}", "stage": i}
            for i, m in enumerate(maps)
        ]

    # --- timm: training helpers ------------------------------------------------------------
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block (and downsample) in the backward pass instead of keeping its
        activations; BatchNorm running statistics are updated once, as without it."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def set_fast_path(self, enable: bool = True) -> nn.Module:
        """Switch the fast training path on (or off): the same function, computed faster.

        On: every module with a ``fused`` switch (RPReLU, the activation quantizers) runs its
        one-node kernel of :mod:`bimlp.layers.fused`, and weights and activations are kept
        channels-last (NHWC), in which the 1x1 convolutions, BatchNorms and per-channel
        element-wise passes of these networks run several times faster on the CPU. Off: the
        plain modules, contiguous (NCHW) -- the reference implementation, which the fast path
        matches in outputs and in every gradient (``tests/layers/test_fused.py``). Parameter
        names, values and checkpoints are the same either way. Returns the model.
        """
        self.fast_path = enable
        for module in self.modules():
            if hasattr(module, "fused"):
                module.fused = enable
        fmt = torch.channels_last if enable else torch.contiguous_format
        return self.to(memory_format=fmt)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups in network order for timm's layer-wise LR decay: the stem, then
        every block (coarse: every stage) and downsample, then the final norm."""
        return {
            "stem": r"^patch_embed",
            "blocks": r"^network\.(\d+)" if coarse else [
                (r"^network\.(\d+)\.(\d+)\.", None),  # block j of stage network[i]
                (r"^network\.(\d+)\.", None),  # a downsample
                (r"^norm\.", (99999,)),
            ],
        }

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters this project never decays: everything but conv and linear weights
        (norms, biases, LearnableBias, RPReLU slopes; the rule of ``bimlp.train.optim``)."""
        decayed = {
            f"{prefix}.weight" if prefix else "weight"
            for prefix, m in self.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
        }
        return {name for name, _ in self.named_parameters() if name not in decayed}

    def __prepare_scriptable__(self) -> nn.Module:
        """Refuse ``torch.jit.script`` up front, with the reason, instead of a compiler error
        deep inside a block."""
        raise TypeError(
            f"{type(self).__name__} does not support torch.jit.script: bimlp models are written "
            "for eager mode and torch.compile (postponed annotations, and in the binary families "
            "quantizers that are torch.autograd.Function subclasses, which TorchScript cannot "
            "compile), and TorchScript is deprecated in PyTorch. Use torch.compile, "
            "torch.export or ONNX (bimlp export --onnx) instead."
        )

    def init_weights(self) -> None:
        """Truncated-normal classifier (std 0.02, zero bias); PyTorch defaults elsewhere."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def take_indices(n: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """timm's index rule: None = all ``n``, an int = the last that many, a list = those (negative
    from the end). Returns the absolute indices and the largest."""
    if indices is None:
        indices = n
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"asked for the last {indices} of {n} feature maps")
        take = list(range(n - indices, n))
    else:
        take = [i + n if i < 0 else i for i in indices]
        bad = [i for i, t in zip(indices, take, strict=True) if not 0 <= t < n]
        if bad or not take:
            raise ValueError(f"feature indices {list(indices)} do not fit {n} stages (0 .. {n - 1})")
    return take, max(take)


def checkpoint_keeping_stats(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` under activation checkpointing (non-reentrant, RNG state preserved, so
    drop-path masks repeat). The recomputation in the backward pass would update BatchNorm
    running statistics a second time; they are put back, so training matches the plain run."""
    calls = 0

    def run(t: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return module(t)
        stats = [(b, b.clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 for b in m.buffers(recurse=False)]
        try:
            return module(t)
        finally:
            for buffer, saved in stats:
                buffer.copy_(saved)

    return torch.utils.checkpoint.checkpoint(run, x, use_reentrant=False)

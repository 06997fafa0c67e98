"""Packed inference modules: a BiMLP whose binary layers run on 1-bit kernels.

Activations flow as channels-last matrices ``(M, C)`` with ``M = B * H * W`` (row ``(b*H + h)*W + w``).
Every binary layer is a :class:`PackedConv1x1` (XNOR-popcount GEMM) or a :class:`PackedTokenConv`
(1x7 / 7x1, depthwise or pair-grouped, on int8 sign planes); both hold their folded constants:

``y = prelu(alpha * dot + beta + shortcut, slope) + shift`` with ``dot`` the exact integer
``sum sign(x + thresh) * sign(W)`` (padded taps contribute 0), ``alpha`` = weight scale x BN scale,
``beta`` = BN shift + RPReLU's first bias (+ the input's learnable bias for identity shortcuts, whose
shortcut is the shifted input ``x + thresh``). Binary weights are buffers of packed bits (see
:mod:`bimlp.deploy.pack`); :meth:`PackedBiMLP.prepare` turns them into the kernels' layouts.

Buffers for intermediate activations live in a :class:`Workspace` and are reused across calls;
the stage activation is updated in place by each block (``x += ...`` is fused into the last GEMM).
Build a packed model with :func:`bimlp.deploy.pack_model` or :func:`bimlp.deploy.load`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import native
from .kernels.fallback import TorchKernels

__all__ = [
    "PackedBiMLP", "PackedBlock", "PackedPATM", "PackedMlp", "PackedConv1x1", "PackedTokenConv",
    "Workspace", "select_kernels",
]

RES_NONE, RES_IDENTITY, RES_TILE, RES_GROUPMEAN = 0, 1, 2, 3


def select_kernels(backend: str = "auto") -> Any:
    """``native`` (compiled, error if unavailable), ``torch`` (pure PyTorch) or ``auto``."""
    if backend == "torch":
        return TorchKernels()
    mod = native()
    if mod is None:
        if backend == "native":
            from .kernels import native_error

            raise RuntimeError(f"native kernels unavailable: {native_error()}")
        return TorchKernels()
    return mod


def shortcut_kind(cin: int, cout: int) -> tuple[int, int]:
    """(epilogue residual kind, group) of the Uni-shortcut from ``cin`` to ``cout`` channels."""
    if cin == cout:
        return RES_IDENTITY, 1
    if cout % cin == 0:
        return RES_TILE, 1
    return RES_GROUPMEAN, cin // cout


class Workspace:
    """Named, reusable scratch buffers: one flat allocation per (role, dtype), grown on demand.

    Views are cached per (role, shape, dtype), so a repeated forward pass at the same input size
    costs one dict lookup per buffer; growing a buffer drops the views of the old one.
    """

    def __init__(self) -> None:
        self._store: dict[tuple[str, torch.dtype], torch.Tensor] = {}
        self._views: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        view = self._views.get((role, shape, dtype))
        if view is not None:
            return view
        n = math.prod(shape)
        buf = self._store.get((role, dtype))
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype)
            self._store[(role, dtype)] = buf
            self._views = {k: v for k, v in self._views.items() if (k[0], k[2]) != (role, dtype)}
        view = self._views[(role, shape, dtype)] = buf[:n].view(shape)
        return view

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._store.values())

    def clear(self) -> None:
        self._store.clear()
        self._views.clear()


class Context:
    """What one forward pass needs besides the weights: kernels, scratch buffers, timings."""

    def __init__(self, kernels: Any, ws: Workspace, times: dict[str, list[float]] | None) -> None:
        self.kernels, self.ws, self.times = kernels, ws, times

    def record(self, name: str, t0: float) -> None:
        if self.times is not None:
            self.times.setdefault(name, []).append(time.perf_counter() - t0)


def _words_from_negative(negative: torch.Tensor) -> torch.Tensor:
    """(N, K) bool (True = -1) -> (N, ceil(K/64)) int64 words, channel k in bit k % 64."""
    n, k = negative.shape
    kw = (k + 63) // 64
    padded = F.pad(negative.to(torch.int64), (0, kw * 64 - k))
    return (padded.reshape(n, kw, 64) << torch.arange(64, dtype=torch.int64)).sum(-1)


class _PackedBinary(nn.Module):
    """Common buffers of a packed binary layer."""

    def __init__(self, cin: int, cout: int, weight_numel: int, act: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.weight_numel = cin, cout, weight_numel
        self.register_buffer("bits", torch.zeros((weight_numel + 7) // 8, dtype=torch.uint8))
        self.register_buffer("alpha", torch.ones(cout))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("thresh", torch.zeros(cin))  # binarize sign(x + thresh)
        self.register_buffer("act", torch.tensor([[0.25] * cout, [0.0] * cout]) if act else None)
        self.qualname = ""

    def negative_weights(self) -> torch.Tensor:
        """The weight signs as a bool tensor (True = -1), flat in (out, in/groups, kh, kw) order."""
        from .pack import unpack_bits

        return unpack_bits(self.bits, self.weight_numel)


class PackedConv1x1(_PackedBinary):
    """Binary 1x1 layer: XNOR-popcount GEMM with a fused epilogue (see module docstring)."""

    def __init__(self, cin: int, cout: int, act: bool = True, shortcut_params: bool = False) -> None:
        super().__init__(cin, cout, cin * cout, act)
        # post-shortcut affine + RPReLU of the channel MLP's first shortcut (norm0, act1)
        self.register_buffer("res_params", torch.zeros(4, cout) if shortcut_params else None)
        self._panels: torch.Tensor | None = None

    def prepare(self, kernels: Any) -> None:
        neg = self.negative_weights().reshape(self.out_channels, self.in_channels)
        self._panels = kernels.make_panels(_words_from_negative(neg))
        # plain attributes for the hot path (buffer access goes through nn.Module.__getattr__)
        self._args = (self._panels, self.in_channels, self.alpha, self.beta)
        self._tail = (self.res_params, self.act)
        self._thresh_row = self.thresh.view(1, -1)

    def run(self, ctx: Context, abits: torch.Tensor, out: torch.Tensor, res_kind: int = RES_NONE,
            res: torch.Tensor | None = None, group: int = 1, base: torch.Tensor | None = None,
            gain: float = 1.0, e1: torch.Tensor | None = None, w1: float = 0.0,
            e2: torch.Tensor | None = None, w2: float = 0.0) -> torch.Tensor:
        t0 = time.perf_counter()
        ctx.kernels.bgemm(abits, *self._args, res_kind, res, group, *self._tail, base, gain, e1, w1,
                          e2, w2, out)
        ctx.record(self.qualname, t0)
        return out


class PackedTokenConv(_PackedBinary):
    """Binary 1x7 (``axis=0``, along W) or 7x1 (``axis=1``, along H) conv, padding 3, groups =
    out channels; ``pairs`` input channels per group (1: depthwise, 2: PATM's 2C -> C)."""

    def __init__(self, channels: int, pairs: int, axis: int, taps: int = 7) -> None:
        super().__init__(channels * pairs, channels, channels * pairs * taps, act=True)
        self.pairs, self.axis, self.taps = pairs, axis, taps
        self._taps: torch.Tensor | None = None

    def prepare(self, kernels: Any) -> None:
        neg = self.negative_weights().reshape(self.out_channels * self.pairs, self.taps)
        self._taps = torch.where(neg, -1, 1).to(torch.int8).T.contiguous()  # (T, Cs)
        self._args = (self._taps, self.axis, self.pairs, self.alpha, self.beta)
        self._act = self.act

    def run(self, ctx: Context, planes: torch.Tensor, out: torch.Tensor,
            res: torch.Tensor | None) -> torch.Tensor:
        t0 = time.perf_counter()
        kind = RES_IDENTITY if res is not None else RES_NONE
        ctx.kernels.sconv(planes, *self._args, kind, res, 1, self._act, out)
        ctx.record(self.qualname, t0)
        return out


class PackedNorm(nn.Module):
    """An outer norm: BatchNorm folded to ``x * scale + shift`` or GroupNorm(1, C)."""

    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        self.kind = kind
        self.register_buffer("affine", torch.tensor([[1.0] * channels, [0.0] * channels]))
        self.eps = 1e-5

    def group_norm(self, x: torch.Tensor, batch: int, out: torch.Tensor) -> torch.Tensor:
        v = x.view(batch, -1)  # (B, HW*C): one group per sample
        var, mean = torch.var_mean(v, dim=1, unbiased=False, keepdim=True)
        y = ((v - mean) / torch.sqrt(var + self.eps)).view(batch, -1, x.shape[1])
        torch.add(y * self.affine[0], self.affine[1], out=out.view(batch, -1, x.shape[1]))
        return out

    def pack(self, ctx: Context, x: torch.Tensor, batch: int, thresholds: torch.Tensor,
             bits: torch.Tensor, z: torch.Tensor) -> None:
        """z = norm(x); bits[p] = packed signs of z + thresholds[p]."""
        if self.kind == "batch":
            ctx.kernels.pack_signs(x, thresholds, bits, self.affine[0], self.affine[1], z)
        else:
            self.group_norm(x, batch, z)
            ctx.kernels.pack_signs(z, thresholds, bits, None, None, None)


class PackedMlp(nn.Module):
    """Channel Bi-MLP: fc1 (shortcut through norm0/act1) and fc2, each one fused GEMM."""

    def __init__(self, cin: int, hidden: int, cout: int, uni_shortcut: bool, role: str) -> None:
        super().__init__()
        self.role = role
        self.sc1 = shortcut_kind(cin, hidden) if uni_shortcut or cin == hidden else (RES_NONE, 1)
        self.sc2 = shortcut_kind(hidden, cout) if uni_shortcut or hidden == cout else (RES_NONE, 1)
        self.fc1 = PackedConv1x1(cin, hidden, shortcut_params=self.sc1[0] != RES_NONE)
        self.fc2 = PackedConv1x1(hidden, cout)

    def forward(self, ctx: Context, x: torch.Tensor, bits: torch.Tensor | None, out: torch.Tensor,
                base: torch.Tensor | None = None, gain: float = 1.0, e1: torch.Tensor | None = None,
                w1: float = 0.0, e2: torch.Tensor | None = None, w2: float = 0.0) -> torch.Tensor:
        k, ws = ctx.kernels, ctx.ws
        m = x.shape[0]
        if bits is None:
            t0 = time.perf_counter()
            bits = ws.get(self.role + "bits_in", (1, m, (self.fc1.in_channels + 63) // 64), torch.int64)
            k.pack_signs(x, self.fc1._thresh_row, bits, None, None, None)
            ctx.record(self.fc1.qualname + ":pack", t0)
            bits = bits[0]
        hidden = ws.get(self.role + "hidden", (m, self.fc1.out_channels))
        self.fc1.run(ctx, bits, hidden, self.sc1[0], x if self.sc1[0] else None, self.sc1[1])
        t0 = time.perf_counter()
        hbits = ws.get(self.role + "bits_hidden", (1, m, (self.fc2.in_channels + 63) // 64), torch.int64)
        k.pack_signs(hidden, self.fc2._thresh_row, hbits, None, None, None)
        ctx.record(self.fc2.qualname + ":pack", t0)
        self.fc2.run(ctx, hbits[0], out, self.sc2[0], hidden if self.sc2[0] else None, self.sc2[1],
                     base, gain, e1, w1, e2, w2)
        return out


class PackedPATM(nn.Module):
    """Binary PATM (MBB block 1); the five binary units on z share one packing pass."""

    front = ("theta_h_conv", "theta_w_conv", "fc_h", "fc_w", "fc_c")

    def __init__(self, dim: int, uni_shortcut: bool) -> None:
        super().__init__()
        for name in self.front + ("proj",):
            setattr(self, name, PackedConv1x1(dim, dim))
        self.tfc_h = PackedTokenConv(dim, 2, axis=0)
        self.tfc_w = PackedTokenConv(dim, 2, axis=1)
        self.tfc_shortcut = uni_shortcut
        self.reweight = PackedMlp(dim, dim // 4, 3 * dim, uni_shortcut, role="rw_")

    def front_thresholds(self) -> torch.Tensor:
        return torch.stack([getattr(self, n).thresh for n in self.front])  # (5, C)

    def forward(self, ctx: Context, z: torch.Tensor, bits: torch.Tensor, x: torch.Tensor,
                shape: tuple[int, int, int]) -> None:
        """x += PATM(z), with bits (5, M, KW) the packed signs of z for the front units."""
        k, ws = ctx.kernels, ctx.ws
        b, hgt, wid = shape
        m, c = z.shape
        theta, amp = ws.get("theta", (m, c)), ws.get("amp", (m, c))
        planes, pair_mean = ws.get("planes2", (b, hgt, wid, 2 * c), torch.int8), ws.get("pm", (m, c))
        h, w, cc = ws.get("h", (m, c)), ws.get("w", (m, c)), ws.get("c", (m, c))
        for i_theta, i_amp, tfc, out in ((0, 2, self.tfc_h, h), (1, 3, self.tfc_w, w)):
            getattr(self, self.front[i_theta]).run(ctx, bits[i_theta], theta, RES_IDENTITY, z)
            getattr(self, self.front[i_amp]).run(ctx, bits[i_amp], amp, RES_IDENTITY, z)
            t0 = time.perf_counter()
            k.wave_prep(amp, theta, tfc.thresh, planes, pair_mean)
            ctx.record(tfc.qualname + ":prep", t0)
            tfc.run(ctx, planes, out, pair_mean if self.tfc_shortcut else None)
        self.fc_c.run(ctx, bits[4], cc, RES_IDENTITY, z)
        t0 = time.perf_counter()
        g = ws.get("pool", (b, c))
        k.pooled_sum(h, w, cc, z, hgt * wid, g)
        ctx.record(self.reweight.fc1.qualname.rsplit(".", 1)[0] + ":pool", t0)
        r = self.reweight(ctx, g, None, ws.get("rw_out", (b, 3 * c)))
        t0 = time.perf_counter()
        mix = ws.get("mix", (m, c))
        mbits = ws.get("bits_mix", (m, (c + 63) // 64), torch.int64)
        # softmax over the 3 branch weights (r[:, 3c + k]) is fused into the mix
        k.patm_mix(h, w, cc, z, r, hgt * wid, self.proj.thresh, mix, mbits)
        ctx.record(self.proj.qualname + ":mix", t0)
        self.proj.run(ctx, mbits, x, RES_IDENTITY, mix, base=x)


class PackedBlock(nn.Module):
    """One BiMLP block, updating the stage activation in place."""

    def __init__(self, dim: int, mlp_ratio: float, norm: str, uni_shortcut: bool,
                 multi_branch: bool) -> None:
        super().__init__()
        self.norm1 = PackedNorm(norm, dim)
        self.attn = PackedPATM(dim, uni_shortcut)
        self.norm2 = PackedNorm(norm, dim)
        self.mlp = PackedMlp(dim, int(dim * mlp_ratio), dim, uni_shortcut, role="mlp_")
        self.multi_branch = multi_branch
        if multi_branch:
            self.sfc_h = PackedTokenConv(dim, 1, axis=0)
            self.sfc_w = PackedTokenConv(dim, 1, axis=1)
            self.register_buffer("weight", torch.zeros(2))

    def prepare(self) -> None:
        self._front = self.attn.front_thresholds()
        self._mlp_thresh = self.mlp.fc1.thresh.view(1, -1).contiguous()
        if self.multi_branch:  # the residual mix weights as Python floats, once (float32 math)
            b0, b1 = self.weight[0], self.weight[1]
            self._mix = (float(1 - b0 - b1), float(b0), float(b1))

    def forward(self, ctx: Context, x: torch.Tensor, shape: tuple[int, int, int]) -> None:
        k, ws = ctx.kernels, ctx.ws
        b, hgt, wid = shape
        m, c = x.shape
        kw = (c + 63) // 64
        t0 = time.perf_counter()
        z, bits = ws.get("z", (m, c)), ws.get("bits_front", (5, m, kw), torch.int64)
        self.norm1.pack(ctx, x, b, self._front, bits, z)
        ctx.record(self.qualname + ".norm1", t0)
        self.attn(ctx, z, bits, x, shape)
        t0 = time.perf_counter()
        mbits = ws.get("bits_front", (1, m, kw), torch.int64)
        self.norm2.pack(ctx, x, b, self._mlp_thresh, mbits, z)
        ctx.record(self.qualname + ".norm2", t0)
        if not self.multi_branch:
            self.mlp(ctx, z, mbits[0], x, base=x)
            return
        planes = ws.get("planes1", (b, hgt, wid, c), torch.int8)
        branch = []
        for conv, role in ((self.sfc_h, "h"), (self.sfc_w, "w")):
            t0 = time.perf_counter()
            k.sign_plane(z, conv.thresh, planes)
            ctx.record(conv.qualname + ":prep", t0)
            branch.append(conv.run(ctx, planes, ws.get(role, (m, c)), z))
        gain, b0, b1 = self._mix
        self.mlp(ctx, z, mbits[0], x, base=x, gain=gain, e1=branch[0], w1=b0, e2=branch[1], w2=b1)


class PackedFloatConv(nn.Module):
    """Full-precision conv (stem 7x7/4, downsample 1x1) with BatchNorm folded in (or GroupNorm
    kept), then RPReLU as (move1, slope, move2)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int,
                 norm: str) -> None:
        super().__init__()
        self.stride, self.padding, self.kernel = stride, padding, kernel
        self.register_buffer("weight", torch.zeros(cout, cin, kernel, kernel))
        self.register_buffer("bias", torch.zeros(cout))
        self.norm = PackedNorm(norm, cout) if norm == "group" else None
        self.register_buffer("act", torch.zeros(3, cout))
        self.qualname = ""

    def prepare(self) -> None:
        self._wt = self.weight.reshape(self.weight.shape[0], -1).T.contiguous()  # (Cin, Cout)

    def forward(self, ctx: Context, x: torch.Tensor, batch: int, out: torch.Tensor) -> torch.Tensor:
        """x: (M, Cin) for 1x1 or the NCHW image for the stem; out: (M', Cout)."""
        t0 = time.perf_counter()
        if self.kernel == 1:
            torch.addmm(self.bias, x, self._wt, out=out)
        else:
            y = F.conv2d(x.contiguous(memory_format=torch.channels_last), self.weight, self.bias,
                         self.stride, self.padding)
            out.copy_(y.permute(0, 2, 3, 1).reshape(out.shape))
        if self.norm is not None:
            self.norm.group_norm(out, batch, out)
        ctx.kernels.rprelu_(out, self.act)
        ctx.record(self.qualname, t0)
        return out


class PackedDownsample(nn.Module):
    """BiMLP's cheap downsampling: fp 1x1 conv -> norm -> RPReLU -> mean of SAME max-pools."""

    def __init__(self, cin: int, cout: int, norm: str, index: int) -> None:
        super().__init__()
        self.proj = PackedFloatConv(cin, cout, 1, 1, 0, norm)
        self.index = index

    def forward(self, ctx: Context, x: torch.Tensor, shape: tuple[int, int, int]) -> tuple[
            torch.Tensor, tuple[int, int, int]]:
        b, h, w = shape
        cout = self.proj.weight.shape[0]
        y = self.proj(ctx, x, b, ctx.ws.get("ds", (b * h * w, cout)))
        ho, wo = (h + 1) // 2, (w + 1) // 2
        t0 = time.perf_counter()
        out = ctx.ws.get(f"x{self.index}", (b * ho * wo, cout))
        ctx.kernels.pool_mix(y.view(b, h, w, cout), out)
        ctx.record(self.proj.qualname.rsplit(".", 1)[0] + ".pool", t0)
        return out, (b, ho, wo)


class PackedBiMLP(nn.Module):
    """Inference-only BiMLP with packed binary layers. Input (B, C, H, W) float32, output logits."""

    def __init__(self, config: dict[str, Any], backend: str = "auto") -> None:
        super().__init__()
        self.config = dict(config)
        cfg = self.config
        dims, depths, norm = list(cfg["dims"]), list(cfg["depths"]), cfg["norm"]
        ratios = cfg["mlp_ratios"]
        if cfg.get("downsample", "bimlp") != "bimlp":
            raise ValueError("the packed engine supports downsample='bimlp' only")
        uni, multi = cfg.get("uni_shortcut", True), cfg.get("multi_branch", True)
        self.stem = PackedFloatConv(cfg.get("in_chans", 3), dims[0], 7, 4, 2, norm)
        network: list[nn.Module] = []
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            network.append(nn.ModuleList(
                [PackedBlock(dim, ratios[i], norm, uni, multi) for _ in range(depth)]
            ))
            if i + 1 < len(dims):
                network.append(PackedDownsample(dim, dims[i + 1], norm, index=i + 1))
        self.network = nn.ModuleList(network)
        self.norm = PackedNorm(norm, dims[-1]) if norm == "group" else None
        self.register_buffer("head_weight", torch.zeros(cfg["num_classes"], dims[-1]))
        self.register_buffer("head_bias", torch.zeros(cfg["num_classes"]))
        self.backend = backend
        self.kernels: Any = None
        self.workspace = Workspace()
        for name, mod in self.named_modules():
            if hasattr(mod, "qualname") or isinstance(mod, PackedBlock):
                mod.qualname = name

    @torch.no_grad()
    def prepare(self) -> PackedBiMLP:
        """Convert packed bits into the kernels' layouts (call after changing buffers)."""
        self.kernels = select_kernels(self.backend)
        for mod in self.modules():
            if isinstance(mod, _PackedBinary):
                mod.prepare(self.kernels)
            elif isinstance(mod, (PackedBlock, PackedFloatConv)):
                mod.prepare()
        self._head_wt = self.head_weight.T.contiguous()
        return self

    @property
    def kernel_name(self) -> str:
        from .kernels import ISA_NAMES

        if self.kernels is None:
            return "unprepared"
        isa = self.kernels.isa()
        return "pytorch-fallback" if isa < 0 else f"native-{ISA_NAMES[isa]}"

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, times: dict[str, list[float]] | None = None) -> torch.Tensor:
        if self.kernels is None:
            self.prepare()
        if x.dim() != 4 or x.shape[1] != self.config.get("in_chans", 3):
            raise ValueError(f"expected (B, {self.config.get('in_chans', 3)}, H, W), got {tuple(x.shape)}")
        x = x.to(torch.float32)
        ctx = Context(self.kernels, self.workspace, times)
        b = x.shape[0]
        hgt, wid = (x.shape[2] + 4 - 7) // 4 + 1, (x.shape[3] + 4 - 7) // 4 + 1
        act = self.stem(ctx, x, b, ctx.ws.get("x0", (b * hgt * wid, self.stem.weight.shape[0])))
        shape = (b, hgt, wid)
        for layer in self.network:
            if isinstance(layer, PackedDownsample):
                act, shape = layer(ctx, act, shape)
            else:
                for block in layer:
                    block(ctx, act, shape)
        t0 = time.perf_counter()
        if self.norm is not None:
            act = self.norm.group_norm(act, b, ctx.ws.get("head_norm", act.shape))
        pooled = act.view(b, -1, act.shape[1]).mean(dim=1)  # (B, C)
        logits = torch.addmm(self.head_bias, pooled, self._head_wt)
        ctx.record("head", t0)
        return logits


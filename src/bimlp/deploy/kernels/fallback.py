"""Pure-PyTorch versions of the native kernels, with the same signatures and semantics.

Used when the C++ extension cannot be built (and as a second implementation in tests). Bits are
decoded back to ±1 floats and multiplied with ``torch.matmul``: integer sums below 2**24 are exact
in float32, so the results equal the native kernels'; it is just not faster than float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["TorchKernels"]

NR = 16
RES_NONE, RES_IDENTITY, RES_TILE, RES_GROUPMEAN = 0, 1, 2, 3
_SHIFTS = torch.arange(64, dtype=torch.int64)


def _words(negative: torch.Tensor) -> torch.Tensor:
    """(..., C) bool -> (..., ceil(C/64)) int64, channel c in bit c % 64 of word c // 64."""
    c = negative.shape[-1]
    kw = (c + 63) // 64
    padded = F.pad(negative.to(torch.int64), (0, kw * 64 - c))
    return (padded.reshape(*negative.shape[:-1], kw, 64) << _SHIFTS).sum(-1)


def _signs(words: torch.Tensor, k: int) -> torch.Tensor:
    """(..., KW) int64 -> (..., k) float ±1 (bit 1 = -1)."""
    bits = (words.unsqueeze(-1) >> _SHIFTS) & 1
    bits = bits.reshape(*words.shape[:-1], -1)[..., :k]
    return 1.0 - 2.0 * bits.to(torch.float32)


def _prelu(v: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return torch.where(v >= 0, v, slope * v)


class TorchKernels:
    """Same interface as the compiled ``bimlp_kernels`` module."""

    @staticmethod
    def isa() -> int:
        return -1

    @staticmethod
    def pack_signs(x, biases, out, scale=None, shift=None, z_out=None) -> None:
        if scale is not None:
            torch.add(x * scale, shift, out=z_out)
            x = z_out
        words = _words((x.unsqueeze(0) + biases.unsqueeze(1)) < 0)  # (P, M, KW)
        out.view(-1)[: words.numel()].copy_(words.reshape(-1))

    @staticmethod
    def make_panels(wbits: torch.Tensor) -> torch.Tensor:
        n, kw = wbits.shape
        p = (n + NR - 1) // NR
        padded = torch.zeros(p * NR, kw, dtype=torch.int64)
        padded[:n] = wbits
        return padded.reshape(p, NR, kw).permute(0, 2, 1).contiguous()

    @staticmethod
    def _epilogue(dot, alpha, beta, res_kind, res, group, res_params, act, base, gain, e1, w1,
                  e2, w2, out) -> None:
        v = alpha * dot + beta
        if res_kind != RES_NONE:
            if res_kind == RES_IDENTITY:
                r = res
            elif res_kind == RES_TILE:
                r = res.repeat(1, alpha.numel() // res.shape[1])
            else:
                r = res.reshape(res.shape[0], -1, group).sum(-1) / group
            if res_params is not None:
                rp = res_params.reshape(4, -1)
                r = _prelu(rp[0] * r + rp[1], rp[2]) + rp[3]
            v = v + r
        if act is not None:
            a = act.reshape(2, -1)
            v = _prelu(v, a[0]) + a[1]
        y = gain * v
        if e1 is not None:
            y = y + w1 * e1
        if e2 is not None:
            y = y + w2 * e2
        if base is not None:
            y = base + y
        out.copy_(y)

    @classmethod
    def bgemm(cls, abits, panels, k, alpha, beta, res_kind, res, group, res_params, act, base,
              gain, e1, w1, e2, w2, out) -> None:
        n = out.shape[1]
        w = panels.permute(0, 2, 1).reshape(-1, panels.shape[1])[:n]  # (N, KW)
        dot = _signs(abits, k) @ _signs(w, k).T
        cls._epilogue(dot, alpha, beta, res_kind, res, group, res_params, act, base, gain, e1,
                      w1, e2, w2, out)

    @classmethod
    def sconv(cls, planes, weights, axis, pairs, alpha, beta, res_kind, res, group, act,
              out) -> None:
        b, h, w, cs = planes.shape
        t = weights.shape[0]
        x = planes.permute(0, 3, 1, 2).to(torch.float32)  # (B, Cs, H, W)
        wt = weights.to(torch.float32).T.reshape(cs // pairs, pairs, 1, t)  # (N, pairs, 1, T)
        padding = (0, t // 2)
        if axis == 1:
            wt, padding = wt.transpose(2, 3), (t // 2, 0)
        dot = F.conv2d(x, wt, None, 1, padding, 1, cs // pairs)
        dot = dot.permute(0, 2, 3, 1).reshape(b * h * w, -1)
        cls._epilogue(dot, alpha, beta, res_kind, res, group, None, act, None, 1.0, None, 0.0,
                      None, 0.0, out)

    @staticmethod
    def sign_plane(x, bias, out) -> None:
        out.view(x.shape).copy_(torch.where(x + bias < 0, -1, 1).to(torch.int8))

    @staticmethod
    def wave_prep(amp, theta, bias, planes, pair_mean) -> None:
        u = torch.cat([amp * torch.cos(theta), amp * torch.sin(theta)], dim=1) + bias
        planes.view(u.shape).copy_(torch.where(u < 0, -1, 1).to(torch.int8))
        pair_mean.copy_(u.reshape(u.shape[0], -1, 2).sum(-1) / 2)

    @staticmethod
    def rprelu_(x, params) -> None:
        p = params.reshape(3, -1)
        x.copy_(_prelu(x + p[0], p[1]) + p[2])

    @staticmethod
    def patm_mix(h, w, c, z, logits, hw, bias, m_out, bits) -> None:
        bsz = h.shape[0] // hw
        a = logits.reshape(bsz, -1, 3).softmax(dim=2).permute(2, 0, 1).reshape(3, bsz, 1, -1)
        shape = (bsz, hw, -1)
        m = a[0] * h.view(shape) + a[1] * w.view(shape) + a[2] * c.view(shape) + z.view(shape)
        m_out.copy_(m.reshape(m_out.shape))
        words = _words((m_out + bias.reshape(1, -1)) < 0)
        bits.view(-1)[: words.numel()].copy_(words.reshape(-1))

    @staticmethod
    def pooled_sum(h, w, c, z, hw, out) -> None:
        s = (h + w + c + z).reshape(-1, hw, h.shape[1]).to(torch.float64).mean(1)
        out.copy_(s.to(torch.float32))

    @staticmethod
    def pool_mix(x, out) -> None:
        from ...layers import same_max_pool

        xc = x.permute(0, 3, 1, 2)
        y = sum(same_max_pool(xc, k, 2) for k in (2, 3, 5, 7)) / 4
        out.copy_(y.permute(0, 2, 3, 1).reshape(out.shape))

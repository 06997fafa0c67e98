"""Helpers for the deployment tests: a conditioned random BiMLP."""

from __future__ import annotations

import torch

import bimlp

SMALL = dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=10)


def conditioned_model(name: str = "bimlp_s", calib_size: int = 64, branch_gain: float = 0.05,
                      **kwargs) -> torch.nn.Module:
    """A paper-mode BiMLP with random non-trivial parameters and calibrated BatchNorm statistics.

    Every learnable bias, PReLU slope and BN affine is random; BN running statistics come from
    forward passes on random images (as in a trained network). The binary branches' BN gains are
    scaled by ``branch_gain`` so the network is numerically well conditioned: a random binary
    network with unit gains is chaotic -- the same PyTorch model in float32 and float64 then
    disagrees (cosine ~0.7-0.99), so no reimplementation could match it to 1e-5. Tests check the
    conditioning (float32 vs float64) before comparing the packed engine.
    """
    return condition(bimlp.create_model(name, **kwargs), calib_size, branch_gain,
                     (".attn.", ".mlp.", "norm_h", "norm_w"), passes=2)


def condition(m: torch.nn.Module, calib_size: int, branch_gain: float, branches: tuple[str, ...],
              passes: int) -> torch.nn.Module:
    """Random learnable biases, slopes, affines and mix weights, BN statistics from ``passes``
    training-mode passes on random images, the BN gains of modules named with ``branches``
    scaled by ``branch_gain``; in eval mode."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for pname, p in m.named_parameters():
            if "move" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif pname.endswith("act.weight"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5)
            elif p.dim() == 1 and p.shape != (2,):
                base = 1.0 if pname.endswith(".weight") else 0.0
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.1)
            elif p.shape == (2,):
                p.copy_(torch.randn(2, generator=g) * 0.2)
        for mname, mod in m.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None
                mod.reset_running_stats()
                if any(k in mname for k in branches):
                    mod.weight.mul_(branch_gain)
        m.train()
        for _ in range(passes):
            m(torch.randn(4, m.config.in_chans, calib_size, calib_size, generator=g))
    return m.eval()


def conditioned_reactnet(name: str = "reactnet_a_xs", calib_size: int = 33, branch_gain: float = 0.05,
                         **kwargs) -> torch.nn.Module:
    """A ReActNet with random non-trivial RSign shifts, RPReLU slopes and BN affines, calibrated BN
    statistics, and the binary units' BN gains scaled by ``branch_gain`` (numerically conditioned,
    as :func:`conditioned_model`)."""
    return condition(bimlp.create_model(name, **kwargs), calib_size, branch_gain, (".bn",), passes=1)


def sign_margins(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per sample, the smallest ``|v|`` over every value ``v`` any binary layer of ``model``
    takes the sign of, computed in float64 (the model is left in float32)."""
    from bimlp.layers import BinaryConv2d

    lows = []

    def record(module, inputs):
        lows.append(inputs[0].abs().flatten(1).amin(1))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()
             if isinstance(m, BinaryConv2d)]
    try:
        with torch.no_grad():
            model.double()(x.double())
    finally:
        model.float()
        for h in hooks:
            h.remove()
    return torch.stack(lows).amin(0)


def well_conditioned_inputs(model: torch.nn.Module, candidates: torch.Tensor,
                            margin: float = 2e-7, keep: int = 2) -> torch.Tensor:
    """The candidate images none of whose sign decisions lies within ``margin`` of 0 in float64.

    A value that close to the threshold rounds to either side in float32 depending on the
    order of summation, and its sign then flips one bit of a 1-bit network: two correct float32
    implementations (PyTorch's convolutions and the runtime's kernels) disagree there by design,
    and which inputs hit such a value depends on the CPU's kernels. Comparing only on inputs that
    keep every decision clear of the threshold tests the implementation, not the rounding.
    """
    ok = sign_margins(model, candidates) >= margin
    assert ok.sum() >= keep, f"only {int(ok.sum())} of {len(ok)} candidates are conditioned"
    return candidates[ok][:keep]

"""ReActNet's optimisation: decay only on conv/linear weights, linear decay, linear lr scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bimlp
from bimlp.layers import BinaryConv2d
from bimlp.train.config import OptimConfig
from bimlp.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups, scaled_lr


def _tiny():
    return bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=10,
                              binary_weights=False)


def test_weight_decay_only_on_conv_and_linear_weights():
    model = _tiny()
    decay, rest = param_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    expected = sorted(
        f"{m}.weight" for m, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    )
    assert decayed == expected
    # binary convs are convs: their latent weights are decayed
    binary = [f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, BinaryConv2d)]
    assert binary and set(binary) <= set(decayed)
    # norms, biases, learnable biases (move*), PReLU slopes and the MBB mix weight are not
    others = {names[id(p)] for p in rest["params"]}
    assert "patch_embed.proj.bias" in others and "head.bias" in others
    assert "network.0.0.weight" in others  # the (beta0, beta1) mix of MBB 2
    assert any(n.endswith("move1.bias") for n in others)
    assert any(n.endswith("norm1.weight") for n in others)
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_linear_lr_scaling_rule():
    cfg = OptimConfig(lr=5e-4, lr_ref_batch=256)
    assert scaled_lr(cfg, 256) == pytest.approx(5e-4)
    assert scaled_lr(cfg, 1024) == pytest.approx(5e-4 * 1024 / 256)
    assert scaled_lr(OptimConfig(lr=1e-3, lr_ref_batch=None), 64) == 1e-3


def test_adam_with_two_groups():
    opt = build_optimizer(_tiny(), OptimConfig(lr=5e-4, weight_decay=1e-5), global_batch=128)
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0]
    assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)


def test_linear_decay_reaches_zero_at_the_last_step():
    f = lr_factor("linear", total_steps=100)
    assert [f(0), f(25), f(50), f(99), f(100)] == pytest.approx([1.0, 0.75, 0.5, 0.01, 0.0])
    w = lr_factor("linear", total_steps=100, warmup_steps=10)
    assert [w(0), w(9), w(10), w(55)] == pytest.approx([0.1, 1.0, 1.0, 0.5])
    c = lr_factor("cosine", total_steps=100)
    assert [c(0), c(50), c(100)] == pytest.approx([1.0, 0.5, 0.0])


def test_scheduler_steps_per_optimizer_step():
    model = _tiny()
    cfg = OptimConfig(lr=1e-3, lr_ref_batch=None, epochs=2)
    opt = build_optimizer(model, cfg, 32)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3 * (1 - s / 10) for s in range(10)])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    # its state holds numbers only (checkpoints are loaded with weights_only=True)
    assert all(v is None for v in sched.state_dict()["lr_lambdas"])

"""ReActNet's optimisation: decay only on conv/linear weights, linear decay, linear lr scaling."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import bimlp
from bimlp.layers import BinaryConv2d
from bimlp.train.config import ConfigError, OptimConfig, config_from_dict
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


def test_lr_mult_puts_matching_parameters_at_a_multiple_of_the_rate():
    model = bimlp.create_model("bimlp_s", depths=(1, 1), dims=(16, 32), num_classes=10,
                               binary_weights=False)
    cfg = OptimConfig(lr=1e-3, lr_ref_batch=None, epochs=1, weight_decay=1e-5,
                      lr_mult={"network.1.proj.weight": 3.0, "network.1.norm.*": 0.5})
    opt = build_optimizer(model, cfg, 32)
    sched = build_scheduler(opt, cfg, steps_per_epoch=4)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [(g.get("lr_mult", 1.0), g["weight_decay"], sorted(names[id(p)] for p in g["params"]))
              for g in opt.param_groups]
    # the two base groups first (group 0 carries the base rate), then one group per factor
    assert [g[:2] for g in groups] == [(1.0, 1e-5), (1.0, 0.0), (3.0, 1e-5), (0.5, 0.0)]
    assert groups[2][2] == ["network.1.proj.weight"]  # the downsampling conv: still decayed
    assert groups[3][2] == ["network.1.norm.bias", "network.1.norm.weight"]
    assert sum(len(g[2]) for g in groups) == len(list(model.parameters()))
    opt.step()
    sched.step()  # the schedule scales every group's own rate
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(
        [7.5e-4, 7.5e-4, 2.25e-3, 3.75e-4])
    # without multipliers: the two groups of every earlier run (their checkpoints still resume)
    assert len(build_optimizer(model, OptimConfig(), 32).param_groups) == 2


@pytest.mark.parametrize("lr_mult, message", [
    ({"network.9.*": 2.0}, "no trainable parameter of the model matches 'network.9.*'"),
    ({"network.1.*": 2.0, "*.proj.weight": 3.0}, "'network.1.proj.weight' matches several"),
])
def test_lr_mult_patterns_that_match_nothing_or_overlap_are_refused(lr_mult, message):
    model = bimlp.create_model("bimlp_s", depths=(1, 1), dims=(16, 32), num_classes=10)
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_optimizer(model, OptimConfig(lr_mult=lr_mult), 32)


@pytest.mark.parametrize("value, message", [
    ({"x": 0}, "optim.lr_mult.x"), ({"x": "fast"}, "optim.lr_mult.x: expected a number"),
    ({"": 2}, "optim.lr_mult"), ([1, 2], "optim.lr_mult: expected a mapping"),
])
def test_lr_mult_bad_values_name_the_key(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"optim": {"lr_mult": value}})

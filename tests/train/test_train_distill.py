"""Distillation: the loss formula, the loss mix, and frozen teachers loaded from files."""

from __future__ import annotations

import math
import pickle

import pytest
import timm
import torch
import torch.nn.functional as F

import bimlp
from bimlp.checkpoint import CheckpointError, save_weights
from bimlp.convert import open_checkpoint
from bimlp.train.config import ConfigError, DistillConfig
from bimlp.train.distill import Criterion, distillation_loss, load_teacher


def test_loss_is_cross_entropy_against_the_teacher_distribution():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    t = torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]])
    by_hand = 0.0
    for srow, trow in zip(s.tolist(), t.tolist(), strict=True):
        zt = sum(math.exp(v) for v in trow)
        zs = sum(math.exp(v) for v in srow)
        pairs = zip(srow, trow, strict=True)
        by_hand += -sum(math.exp(tv) / zt * (sv - math.log(zs)) for sv, tv in pairs)
    assert float(distillation_loss(s, t)) == pytest.approx(by_hand / 2, rel=1e-6)


def test_loss_gradient_is_softmax_difference_over_batch():
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5)
    distillation_loss(s, t).backward()
    expected = (s.detach().softmax(-1) - t.softmax(-1)) / 4
    torch.testing.assert_close(s.grad, expected)


def test_confident_teacher_gives_label_cross_entropy():
    s = torch.randn(6, 10)
    y = torch.randint(0, 10, (6,))
    t = F.one_hot(y, 10).float() * 1e4  # softmax is one-hot
    torch.testing.assert_close(distillation_loss(s, t), F.cross_entropy(s, y))


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_criterion_mixes_distillation_and_labels():
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    y = torch.tensor([0, 1, 3])
    x = torch.zeros(3, 1)
    kd, ce = distillation_loss(s, t), F.cross_entropy(s, y)
    assert float(Criterion(_Fixed(t))(x, s, y)) == pytest.approx(float(kd))
    assert float(Criterion(_Fixed(t), 0.25)(x, s, y)) == pytest.approx(float(0.75 * kd + 0.25 * ce))
    assert float(Criterion(None)(x, s, y)) == pytest.approx(float(ce))  # teacher-free
    with pytest.raises(ValueError, match=r"teacher logits \(3, 5\).*\(3, 4\)"):
        Criterion(_Fixed(torch.randn(3, 5)))(x, s, y)
    with pytest.raises(ConfigError, match="label_weight"):
        Criterion(None, 1.5)


def test_timm_teacher_from_a_torch_file_is_frozen(tmp_path):
    ref = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}},
               tmp_path / "teacher.pth.tar")
    cfg = DistillConfig(teacher="resnet10t", teacher_checkpoint=str(tmp_path / "teacher.pth.tar"),
                        teacher_args={"num_classes": 10, "in_chans": 1})
    teacher = load_teacher(cfg)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    x = torch.randn(2, 1, 32, 32)
    ref.eval()
    torch.testing.assert_close(teacher(x), ref(x))


def test_registered_teacher_through_create_model(tmp_path):
    ref = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=10,
                             binary_weights=False).eval()
    save_weights(ref, tmp_path / "t.safetensors")
    teacher = load_teacher(DistillConfig(
        teacher="bimlp_s", teacher_checkpoint=str(tmp_path / "t.safetensors"),
        teacher_args={"binary_weights": False}))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x), ref(x))


def test_teacher_needs_weights_and_matching_keys(tmp_path):
    with pytest.raises(ConfigError, match="teacher_checkpoint"):
        load_teacher(DistillConfig(teacher="resnet10t"))
    state = timm.create_model("resnet10t", num_classes=10).state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    cfg = DistillConfig(teacher="resnet10t", teacher_checkpoint=str(tmp_path / "bad.pth"),
                        teacher_args={"num_classes": 10})
    with pytest.raises(CheckpointError, match=r"missing: fc\.bias; unexpected: extra\.weight"):
        load_teacher(cfg)


class Payload:  # an arbitrary object: a pickle that would run code on load
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_files_are_not_unpickled_blindly(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"state_dict": {"w": torch.zeros(1)}, "x": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        open_checkpoint(path)


def test_the_teacher_is_compiled_on_a_gpu_and_stays_eager_on_the_cpu():
    from bimlp.train.engine import compile_teacher

    teacher = torch.nn.Linear(4, 2)
    assert compile_teacher(teacher, torch.device("cpu")) is teacher
    compiled = compile_teacher(teacher, torch.device("cuda"))  # lazy: nothing runs on the device
    assert compiled is not teacher and compiled._orig_mod is teacher

"""PyTorch checkpoint files as untrusted input: what loads, and what is refused unexecuted."""

from __future__ import annotations

import argparse
import builtins
import os
import pickle
from pathlib import Path

import pytest
import torch

import bimlp
from bimlp.checkpoint import CheckpointError
from bimlp.convert import open_checkpoint
from bimlp.convert.torch_pickle import read_torch_checkpoint

WEIGHTS = {"fc.weight": torch.arange(6.0).reshape(2, 3), "fc.bias": torch.ones(2)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _training_checkpoint() -> dict:
    """What timm's train.py writes: weights, EMA copy, optimizer state, the argparse Namespace."""
    model = torch.nn.Linear(3, 2)
    model.load_state_dict({k.removeprefix("fc."): v for k, v in WEIGHTS.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    args = argparse.Namespace(model="WaveMLP_T", lr=1e-3, epochs=300, mean=None, input_size=None,
                              opt_betas=(0.9, 0.999), mixup=0.8, amp=True, data_dir="/imagenet")
    return {
        "epoch": 299, "arch": "WaveMLP_T", "version": 2, "metric": 80.9,
        "state_dict": {k: v.clone() for k, v in WEIGHTS.items()},
        "optimizer": opt.state_dict(),
        "state_dict_ema": {k: v + 1 for k, v in WEIGHTS.items()},
        "args": args,
    }


def test_bare_state_dict(tmp_path):
    torch.save(WEIGHTS, tmp_path / "bare.pth")
    assert _same(read_torch_checkpoint(tmp_path / "bare.pth"), WEIGHTS)


def test_training_checkpoint_with_namespace_optimizer_and_ema_loads_its_state_dict(tmp_path):
    path = tmp_path / "model_best.pth.tar"
    torch.save(_training_checkpoint(), path)
    # the raw file indeed needs the allow-list: plain weights_only refuses the Namespace
    with pytest.raises(pickle.UnpicklingError, match="Namespace"):
        torch.load(path, weights_only=True)
    state = read_torch_checkpoint(path)
    assert _same(state, WEIGHTS)  # the weights, not the EMA copy
    # the allow-list was scoped to the call, not added process-wide
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError, match="Namespace"):
        torch.load(path, weights_only=True)


def test_module_prefix_is_stripped(tmp_path):
    torch.save({"state_dict": {f"module.{k}": v for k, v in WEIGHTS.items()}}, tmp_path / "ddp.pth")
    assert _same(read_torch_checkpoint(tmp_path / "ddp.pth"), WEIGHTS)


def test_module_prefix_collision_is_an_error(tmp_path):
    state = {"fc.bias": torch.ones(2), "module.fc.bias": torch.zeros(2)}
    torch.save(state, tmp_path / "both.pth")
    with pytest.raises(CheckpointError, match="module"):
        read_torch_checkpoint(tmp_path / "both.pth")


class _RunsShell:
    """Unpickling this calls os.system -- the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsPython:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _write_raw_pickle(payload, path: Path) -> None:
    path.write_bytes(pickle.dumps({"state_dict": payload}, protocol=2))


def _write_torch_zip(payload, path: Path) -> None:
    torch.save({"state_dict": dict(WEIGHTS), "args": payload}, path)  # pickler only records it


@pytest.mark.parametrize("gadget", [_RunsShell, _RunsPython], ids=["os.system", "exec"])
@pytest.mark.parametrize("writer", [_write_raw_pickle, _write_torch_zip], ids=["pickle", "zip"])
def test_code_running_pickle_is_refused_and_never_executed(tmp_path, gadget, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth.tar"
    writer(gadget(marker), path)
    assert path.read_bytes()[:1] in (b"\x80", b"P")  # looks like any PyTorch file
    called = "system" if gadget is _RunsShell else "exec"
    with pytest.raises(CheckpointError, match=rf"evil\.pth\.tar: refused .*{called}"):
        read_torch_checkpoint(path)
    assert not marker.exists()
    # and through the public loaders, which go through the same reader
    with pytest.raises(CheckpointError, match="refused"):
        bimlp.load_wavemlp(path)
    with pytest.raises(CheckpointError, match="refused"):
        bimlp.create_model("wavemlp_t", checkpoint=path)
    assert not marker.exists()


def test_truncated_zip_file(tmp_path):
    path = tmp_path / "cut.pth.tar"
    torch.save(_training_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth\.tar: .*truncated or corrupt"):
        read_torch_checkpoint(path)


def test_truncated_legacy_pickle(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(WEIGHTS, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth"):
        read_torch_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.pth"):
        read_torch_checkpoint(tmp_path / "nothing.pth")


@pytest.mark.parametrize(
    "content, message",
    [
        ({}, "empty"),
        ({"state_dict": {}}, "empty"),
        ({"state_dict": [torch.ones(1)]}, "'state_dict' is a list"),
        ([torch.ones(1)], "holds a list"),
        ({"fc.weight": torch.ones(1), "step": 3}, "neither a state dict"),
        ({"state_dict": {"fc.weight": torch.ones(1), "fc.scale": 0.5}}, "tensors: fc.scale"),
        ({"state_dict_ema": dict(WEIGHTS)}, "neither a state dict"),
    ],
    ids=["empty", "empty-state-dict", "state-dict-list", "list", "mixed", "non-tensor", "ema-only"],
)
def test_not_a_state_dict(tmp_path, content, message):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        read_torch_checkpoint(path)


def test_open_checkpoint_dispatches_pickles_here(tmp_path):
    torch.save({"state_dict": dict(WEIGHTS)}, tmp_path / "w.pth")
    ck = open_checkpoint(tmp_path / "w.pth")
    assert ck.format == "torch" and _same(ck.state_dict(), WEIGHTS) and ck.config == {}

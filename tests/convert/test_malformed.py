"""Malformed but well-formed-looking checkpoints: each is a CheckpointError naming the file and
the offending tag, through every entry point (the builder, the readers, ``bimlp convert``) --
never an IndexError, ZeroDivisionError or a library's own exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bimlp
from bimlp.checkpoint import CheckpointError, save_weights, write_safetensors
from bimlp.cli import main as cli
from bimlp.convert import open_checkpoint
from bimlp.convert.mindspore import read_mindspore_ckpt
from bimlp.convert.torch_pickle import read_torch_checkpoint

DATA = Path(__file__).parents[1] / "data"
OFFICIAL = DATA / "official" / "tiny_bn.ckpt"
WAVE = DATA / "wavemlp" / "wave_tiny_bn.pth.tar"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_ckpt(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A minimal MindSpore checkpoint writer (docs/FORMATS.md), for crafting test files."""
    body = b""
    for tag, arr in tensors.items():
        dims = b"".join(_varint(1 << 3 | 0) + _varint(d) for d in arr.shape)
        tensor = dims + _len_field(2, b"Float32") + _len_field(3, arr.astype("<f4").tobytes())
        body += _len_field(1, _len_field(1, tag.encode()) + _len_field(2, tensor))
    path.write_bytes(body)
    return path


def _refused(path: Path, *tags: str, family: str = "bimlp") -> None:
    """Every way in raises CheckpointError naming the file (and the tags)."""
    name = "bimlp_s" if family == "bimlp" else "wavemlp_t"
    calls = [lambda: bimlp.create_model(name, checkpoint=path),
             lambda: bimlp.models.model_from_checkpoint(path, family=family)]
    for call in calls:
        with pytest.raises(CheckpointError) as info:
            call()
        message = str(info.value)
        assert str(path) in message, message
        for tag in tags:
            assert tag in message, message


_MINDSPORE_CASES = {
    "0-d head.weight": ("head.weight", lambda a: np.float32(1.0).reshape(())),
    "0-d gamma": ("network.0.0.norm1.gamma", lambda a: np.float32(1.0).reshape(())),
    "gamma of shape (0,)": ("network.0.0.norm1.gamma", lambda a: np.zeros((0,), np.float32)),
    "fc1 rows that do not fit": ("network.0.0.mlp.fc1.weight", lambda a: a[:7]),
    "1-D stem": ("patch_embed.proj.weight", lambda a: a.reshape(-1)),
}


@pytest.mark.parametrize("case", sorted(_MINDSPORE_CASES))
def test_malformed_mindspore_files(case, tmp_path, capsys):
    tag, mutate = _MINDSPORE_CASES[case]
    tensors = read_mindspore_ckpt(OFFICIAL)
    tensors[tag] = mutate(tensors[tag])
    path = write_ckpt(tmp_path / "bad.ckpt", tensors)
    _refused(path, tag)
    with pytest.raises(CheckpointError, match=str(path)):
        bimlp.load_official(path)
    out = tmp_path / "out.safetensors"
    assert cli(["convert", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bimlp convert: ") and tag in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt"]  # nothing written


_WAVE_CASES = {
    "1-D theta": "network.0.0.attn.theta_h_conv.0.weight",
    "1-D stem": "patch_embed.proj.weight",
    "1-D head": "head.weight",
    "0-d head": "head.weight",
}


@pytest.mark.parametrize("case", sorted(_WAVE_CASES))
def test_malformed_wavemlp_files(case, tmp_path):
    tag = _WAVE_CASES[case]
    obj = torch.load(WAVE, weights_only=True)
    state = obj["state_dict"]
    state[tag] = torch.tensor(1.0) if case.startswith("0-d") else state[tag].reshape(-1)
    path = tmp_path / "bad.pth.tar"
    torch.save(obj, path)
    _refused(path, tag, family="wavemlp")


@pytest.mark.parametrize("config", [[1, 2], {"depths": "abc"}, {"depths": [1, "x"]},
                                    {"dims": [16, -32]}, "not json", {"norm": 3}])
def test_bimlp_config_that_is_not_a_configuration(config, tmp_path):
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=2)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    raw = config if isinstance(config, str) else json.dumps(config)
    path = write_safetensors(tensors, tmp_path / "bad.safetensors",
                             {"bimlp_format": "weights-v1", "bimlp_config": raw,
                              "bimlp_family": "bimlp"})
    _refused(path, "bimlp_config" if isinstance(config, (str, list)) else "")


def test_safetensors_whose_header_length_starts_with_0x80(tmp_path):
    # header length 0x80 (128): the first byte is a pickle's PROTO opcode
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=2)
    good = save_weights(model, tmp_path / "good.safetensors")
    data = good.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    small = {"__metadata__": {"bimlp_format": "weights-v1"},
             "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    text = json.dumps(small).encode()
    assert len(text) < 128 and header
    text = text.ljust(128)
    path = tmp_path / "x80.safetensors"
    path.write_bytes((128).to_bytes(8, "little") + text + b"\0\0\0\0")
    assert path.read_bytes()[0] == 0x80
    ck = open_checkpoint(path)  # sniffed as safetensors, not as a pickle
    assert ck.format == "safetensors" and ck.shapes == {"w": (1,)}
    with pytest.raises(CheckpointError, match=str(path)):
        bimlp.create_model("bimlp_s", checkpoint=path)
    # cut short: read through the PyTorch path (which hands .safetensors files to the
    # safetensors library) it is a CheckpointError, not the library's raw SafetensorError
    for cut in (60, 137):
        broken = tmp_path / f"x80-cut{cut}.safetensors"
        broken.write_bytes(path.read_bytes()[:cut])
        with pytest.raises(CheckpointError, match=str(broken)):
            read_torch_checkpoint(broken)
        with pytest.raises(CheckpointError, match=str(broken)):
            bimlp.create_model("bimlp_s", checkpoint=broken)

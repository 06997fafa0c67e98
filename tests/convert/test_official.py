"""Official MindSpore checkpoints: fidelity to the release's outputs and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bimlp
from bimlp.checkpoint import CheckpointError, read_weights
from bimlp.cli import main as cli
from bimlp.convert.mindspore import read_mindspore_ckpt
from bimlp.convert.official import infer_official_config


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_ckpt(path, tensors: dict[str, np.ndarray]) -> None:
    """A minimal MindSpore checkpoint writer (the format in docs/FORMATS.md), for crafting test
    files."""
    body = b""
    for tag, arr in tensors.items():
        dims = b"".join(_varint(1 << 3 | 0) + _varint(d) for d in arr.shape)
        tensor = dims + _len_field(2, b"Float32") + _len_field(3, arr.astype("<f4").tobytes())
        body += _len_field(1, _len_field(1, tag.encode()) + _len_field(2, tensor))
    path.write_bytes(body)


@pytest.fixture(params=["bn", "gn"])
def fixture(request, data_dir):
    io = np.load(data_dir / "official" / f"tiny_{request.param}_io.npz")
    return data_dir / "official" / f"tiny_{request.param}.ckpt", io["input"], io["logits"]


def _check_matches(model, x, ref, min_cos=0.9999):
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    ref = torch.from_numpy(ref)
    cos = F.cosine_similarity(out, ref, dim=1)
    assert (cos >= min_cos).all(), cos
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_load_official_reproduces_release_outputs(fixture):
    path, x, ref = fixture
    model = bimlp.load_official(path)
    assert not model.training and model.mode == "official"
    _check_matches(model, x, ref)


def test_paper_mode_is_not_the_release_numerics(fixture):
    # the fidelity check can fail: the same weights in paper mode give other logits
    path, x, ref = fixture
    model = bimlp.create_model("bimlp_s", checkpoint=path, mode="paper").eval()
    with torch.no_grad():
        cos = F.cosine_similarity(model(torch.from_numpy(x)), torch.from_numpy(ref), dim=1)
    assert (cos < 0.99).all()


def test_inferred_configuration(data_dir):
    cfg = infer_official_config(read_mindspore_ckpt(data_dir / "official" / "tiny_bn.ckpt"))
    assert cfg == {"depths": [1, 2, 1, 1], "dims": [16, 32, 48, 64], "mlp_ratios": [4.0] * 4,
                   "num_classes": 10, "in_chans": 3, "norm": "batch"}
    gn = infer_official_config(read_mindspore_ckpt(data_dir / "official" / "tiny_gn.ckpt"))
    assert gn["norm"] == "group"


def test_convert_cli_roundtrip_both_modes(fixture, tmp_path, capsys):
    path, x, ref = fixture
    out = tmp_path / "tiny.safetensors"
    assert cli(["convert", str(path), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    state, config, family = read_weights(out)
    assert family == "bimlp" and config["dims"] == [16, 32, 48, 64]
    _check_matches(bimlp.create_model("bimlp_s", checkpoint=out, mode="official").eval(), x, ref)
    paper = bimlp.create_model("bimlp_s", checkpoint=out, mode="paper").eval()
    with torch.no_grad():
        assert paper(torch.from_numpy(x)).shape == (2, 10)


def test_truncated_checkpoint_names_file_and_tag(data_dir, tmp_path):
    data = (data_dir / "official" / "tiny_bn.ckpt").read_bytes()
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: truncated .* ends inside tag 'network\."):
        bimlp.load_official(bad)


def test_truncation_at_an_entry_boundary_is_caught_by_the_strict_load(data_dir, tmp_path):
    tensors = read_mindspore_ckpt(data_dir / "official" / "tiny_bn.ckpt")
    tensors.pop("head.bias")
    bad = tmp_path / "short.ckpt"
    write_ckpt(bad, tensors)
    with pytest.raises(CheckpointError, match=r"short\.ckpt: .*missing: head\.bias"):
        bimlp.load_official(bad)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match="notes.ckpt"):
        bimlp.load_official(text)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x0a\x05" + bytes(range(5)) + b"\xff" * 20)
    with pytest.raises(CheckpointError, match="garbage.ckpt"):
        bimlp.load_official(garbage)
    other = tmp_path / "other.ckpt"  # a valid MindSpore file of some other network
    write_ckpt(other, {"conv1.weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match=r"other\.ckpt: no 'network.*conv1\.weight"):
        bimlp.load_official(other)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        bimlp.load_official(tmp_path / "absent.ckpt")


def test_tensors_that_do_not_fit_are_named(data_dir, tmp_path):
    tensors = read_mindspore_ckpt(data_dir / "official" / "tiny_gn.ckpt")
    tensors["network.0.0.attn.fc_h.weight"] = np.zeros((16, 8, 1, 1), np.float32)
    tensors["network.0.0.attn.extra.weight"] = np.zeros((3,), np.float32)
    bad = tmp_path / "misfit.ckpt"
    write_ckpt(bad, tensors)
    with pytest.raises(CheckpointError) as err:
        bimlp.load_official(bad)
    msg = str(err.value)
    assert "misfit.ckpt" in msg and "unexpected: network.0.0.attn.extra.weight" in msg
    assert "network.0.0.attn.fc_h.weight: checkpoint (16, 8, 1, 1) vs model (16, 16, 1, 1)" in msg
    out = tmp_path / "never.safetensors"
    with pytest.raises(CheckpointError):
        bimlp.convert_official(bad, out)
    assert not out.exists()


def test_content_size_mismatch(tmp_path):
    bad = tmp_path / "size.ckpt"
    tensor = (b"\x08\x04" + _len_field(2, b"Float32") + _len_field(3, b"\x00" * 12))
    bad.write_bytes(_len_field(1, _len_field(1, b"w") + _len_field(2, tensor)))
    with pytest.raises(CheckpointError, match=r"tag 'w': dims \[4\] of Float32 need 16 bytes"):
        read_mindspore_ckpt(bad)


def test_stored_mode_and_step_are_restored(fixture, tmp_path):
    path, x, ref = fixture
    assert bimlp.create_model("bimlp_s", checkpoint=path).mode == "official"
    out = tmp_path / "c.safetensors"
    bimlp.convert_official(path, out)
    model = bimlp.create_model("bimlp_s", checkpoint=out).eval()
    assert model.mode == "official"
    _check_matches(model, x, ref)
    assert bimlp.create_model("bimlp_s", checkpoint=out, mode="paper").mode == "paper"


def test_step_one_weights_stay_real_valued_after_a_round_trip(tmp_path):
    from bimlp.checkpoint import save_weights

    step1 = bimlp.create_model("bimlp_s", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                               num_classes=3, binary_weights=False)
    save_weights(step1, tmp_path / "s1.safetensors")
    again = bimlp.create_model("bimlp_s", checkpoint=tmp_path / "s1.safetensors")
    assert again.config.binary_weights is False and again.config.dims == (8, 16, 24, 32)
    assert again.network[0][0].mlp.fc1.weight_precision == 32

"""The .bimlp artifact: round trip, size, and clear errors for damaged files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from deploy_helpers import SMALL, conditioned_model

import bimlp
from bimlp.checkpoint import save_weights
from bimlp.deploy import ArtifactError, export, load, pack_model, pack_weights
from bimlp.deploy.artifact import size_report


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    model = conditioned_model(calib_size=33, **SMALL)
    path = export(model, tmp_path_factory.mktemp("art") / "small.bimlp")
    return model, path


def test_round_trip_gives_identical_outputs(small_artifact):
    model, path = small_artifact
    x = torch.randn(2, 3, 33, 33)
    assert torch.equal(load(path)(x), pack_model(model)(x))
    assert torch.equal(load(path, threads=1)(x), pack_model(model, threads=2)(x))


def test_header_documents_config_and_bits(small_artifact):
    from safetensors import safe_open

    _, path = small_artifact
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        bits = {k: f.get_tensor(k) for k in f.keys() if k.endswith(".bits")}  # noqa: SIM118
    header = json.loads(meta["header"])
    assert meta["bimlp_format"] == "bimlp-packed" and header["version"] == 2
    assert header["numerics"] == "paper"
    assert header["config"]["dims"] == [16, 32, 48, 64] and header["config"]["mode"] == "paper"
    assert "LSB first" in header["bit_order"]
    # every binary weight is stored as packed bits: fc1 of stage 0 is 16 -> 64 channels
    assert all(t.dtype == torch.uint8 for t in bits.values())
    assert bits["network.0.0.mlp.fc1.bits"].numel() == 16 * 64 // 8
    assert bits["network.0.0.attn.tfc_h.bits"].numel() == (16 * 2 * 7 + 7) // 8


def test_bimlp_s_size_near_theory_and_10x_smaller(tmp_path):
    model = bimlp.create_model("bimlp_s").eval()
    packed = pack_weights(model)
    size = export(packed, tmp_path / "s.bimlp").stat().st_size
    report = size_report(packed)
    # theory: 1 bit per binary weight + 4 bytes per float value
    assert report["theoretical_bytes"] == report["binary_weights"] // 8 + 4 * report["float_values"]
    assert report["theoretical_bytes"] <= size <= 1.05 * report["theoretical_bytes"]
    float_size = save_weights(model, tmp_path / "f.safetensors").stat().st_size
    assert float_size / size >= 9.5
    # every binary conv weight of the float model is in the artifact as bits
    n_binary = sum(m.weight.numel() for m in model.modules() if isinstance(m, bimlp.layers.BinaryConv2d))
    assert report["binary_weights"] == n_binary


def test_truncated_file_is_refused(small_artifact, tmp_path):
    _, path = small_artifact
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.bimlp"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match="truncated|corrupt"):
            load(bad)


def test_tampered_tensor_bytes_are_refused(small_artifact, tmp_path):
    _, path = small_artifact
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # one bit of the last tensor
    bad = tmp_path / "flip.bimlp"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load(bad)


def _rewrite_metadata(path, tmp_path, edit) -> object:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n])
    edit(head["__metadata__"])
    text = json.dumps(head).encode()
    text += b" " * ((-len(text)) % 8)
    bad = tmp_path / "edited.bimlp"
    bad.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])
    return bad


def test_edited_header_is_refused(small_artifact, tmp_path):
    _, path = small_artifact

    def more_classes(meta):
        header = json.loads(meta["header"])
        header["config"]["num_classes"] = 11
        meta["header"] = json.dumps(header, sort_keys=True)

    with pytest.raises(ArtifactError, match="checksum"):
        load(_rewrite_metadata(path, tmp_path, more_classes))


def test_other_version_and_foreign_files_are_refused(small_artifact, tmp_path):
    _, path = small_artifact

    def bump(meta):
        meta["bimlp_format_version"] = "99"

    with pytest.raises(ArtifactError, match="version"):
        load(_rewrite_metadata(path, tmp_path, bump))
    weights = save_weights(bimlp.create_model("bimlp_s", **SMALL), tmp_path / "w.safetensors")
    with pytest.raises(ArtifactError, match="not a packed"):
        load(weights)
    with pytest.raises(ArtifactError, match="no such file"):
        load(tmp_path / "missing.bimlp")

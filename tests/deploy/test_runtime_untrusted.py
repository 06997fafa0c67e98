"""Untrusted artifacts and bad arguments: a clear error naming the problem, never a crash and
never silently different logits. Includes a bounded fuzz run over mutated artifacts (hypothesis)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_helpers import (
    edit_config,
    edit_header,
    load_error,
    read_raw,
    resign,
    set_version,
    write_raw,
)

import bimlp_runtime
from bimlp_runtime import ArtifactError


def test_missing_and_truncated_files(small_artifact, tmp_path):
    path, _ = small_artifact
    assert "cannot open" in load_error(tmp_path / "nope.bimlp")
    raw = path.read_bytes()
    for n in (0, 5, 100, len(raw) // 2, len(raw) - 1):
        (tmp_path / "t.bimlp").write_bytes(raw[:n])
        msg = load_error(tmp_path / "t.bimlp")
        assert any(w in msg for w in ("truncated", "too short", "outside", "not a safetensors")), msg


def test_tampered_bytes_fail_the_checksum(small_artifact, tmp_path):
    path, _ = small_artifact
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x10
    (tmp_path / "t.bimlp").write_bytes(bytes(raw))
    assert "checksum mismatch" in load_error(tmp_path / "t.bimlp")


def test_resigned_oversized_depths_are_refused_before_allocating(small_artifact, tmp_path):
    path, _ = small_artifact
    msg = load_error(edit_config(path, tmp_path / "big.bimlp", depths=[1, 1, 1, 10**7]))
    assert "depths" in msg and "[1, 64]" in msg
    msg = load_error(edit_config(path, tmp_path / "wide.bimlp", dims=[16, 32, 48, 2**20]))
    assert "dims" in msg
    msg = load_error(edit_config(path, tmp_path / "cls.bimlp", num_classes=10**9))
    assert "num_classes" in msg


def test_resigned_config_that_does_not_fit_the_tensors_names_the_tensor(small_artifact, tmp_path):
    path, _ = small_artifact
    msg = load_error(edit_config(path, tmp_path / "d.bimlp", dims=[16, 32, 48, 68]))
    assert "tensor 'network.5.proj.weight' has shape [64, 48, 1, 1], the configuration needs [68, 48, 1, 1]" in msg
    msg = load_error(edit_config(path, tmp_path / "m.bimlp", multi_branch=False))
    assert "unexpected tensors" in msg and "sfc_h" in msg
    msg = load_error(edit_config(path, tmp_path / "n.bimlp", norm="group"))
    assert "missing" in msg and "norm.affine" in msg


@pytest.mark.parametrize("field,value,match", [
    ("norm", "layer", "'norm' is 'layer', expected 'batch' or 'group'"),
    ("norm", 3, "'norm' is a number, expected a string"),
    ("mode", "official", "but the configuration's mode is 'official'"),
    ("downsample", "maxpool", "expected 'bimlp' or 'wavemlp'"),
    ("uni_shortcut", "yes", "'uni_shortcut' is a string, expected a boolean"),
    ("depths", [1.5, 1, 1, 1], "depths"),
    ("mlp_ratios", [4, 4, 4], "differ in length"),
    ("in_chans", 0, "in_chans"),
])
def test_bad_config_values_are_clear_errors(small_artifact, tmp_path, field, value, match):
    path, _ = small_artifact
    assert match in load_error(edit_config(path, tmp_path / "c.bimlp", **{field: value}))


def test_metadata_that_is_not_a_string_map(small_artifact, tmp_path):
    path, _ = small_artifact
    st_header, data = read_raw(path)
    st_header["__metadata__"] = [1]
    assert "no __metadata__ object" in load_error(write_raw(tmp_path / "a.bimlp", st_header, data))
    st_header["__metadata__"] = {"bimlp_format": 1}
    assert "is not a string" in load_error(write_raw(tmp_path / "b.bimlp", st_header, data))


def test_deeply_nested_json_is_refused_without_recursion(small_artifact, tmp_path):
    path, _ = small_artifact
    deep = "[" * 100_000 + "]" * 100_000
    text = ('{"__metadata__": ' + deep + "}").encode()
    (tmp_path / "deep.bimlp").write_bytes(struct.pack("<Q", len(text)) + text)
    assert "nesting deeper than 64" in load_error(tmp_path / "deep.bimlp")
    st_header, data = read_raw(path)
    header = json.loads(st_header["__metadata__"]["header"])
    st_header["__metadata__"]["header"] = json.dumps(header)[:-1] + ', "x": ' + deep + "}"
    assert "nesting deeper than 64" in load_error(write_raw(tmp_path / "d2.bimlp", resign(st_header, data), data))


def test_foreign_safetensors_and_other_versions(small_artifact, tmp_path):
    path, _ = small_artifact
    st_header, data = read_raw(path)
    st_header["__metadata__"]["bimlp_format_version"] = "3"
    assert "version '3', this runtime reads versions 1 to 2" in load_error(write_raw(tmp_path / "v.bimlp", st_header, data))
    del st_header["__metadata__"]["bimlp_format"]
    assert "not a packed BiMLP artifact" in load_error(write_raw(tmp_path / "f.bimlp", st_header, data))


def test_resigned_wrong_dtype_and_nan_weights(small_artifact, tmp_path):
    path, _ = small_artifact
    st_header, data = read_raw(path)
    name = "network.0.0.attn.fc_h.alpha"
    b0, b1 = st_header[name]["data_offsets"]
    nan = data[:b0] + np.full((b1 - b0) // 4, np.nan, dtype=np.float32).tobytes() + data[b1:]
    msg = load_error(write_raw(tmp_path / "nan.bimlp", resign(json.loads(json.dumps(st_header)), nan), nan))
    assert name in msg and "NaN" in msg
    st_header[name]["dtype"] = "U8"
    st_header[name]["shape"] = [b1 - b0]
    msg = load_error(write_raw(tmp_path / "dt.bimlp", resign(st_header, data), data))
    assert f"tensor '{name}' has dtype U8, expected F32" in msg


def test_bad_arguments_raise_clear_errors(small_artifact):
    path, _ = small_artifact
    model = bimlp_runtime.load(path, threads=1)
    cases = [
        (np.zeros((3, 33, 33), np.float32), "expected a \\(B, 3, H, W\\) array"),
        (np.zeros((1, 4, 33, 33), np.float32), "4 channels, the model takes 3"),
        (np.zeros((1, 3, 2, 33), np.float32), "out of range"),
        (np.zeros((0, 3, 33, 33), np.float32), "batch size 0"),
        (np.zeros((1, 3, 33, 33), np.complex64), "dtype"),
        (np.array([[["a"]]]), "expected a"),
    ]
    for x, match in cases:
        with pytest.raises(ValueError, match=match):
            model.run(x)
    with pytest.raises(ValueError, match="out must be"):
        model.run(np.zeros((1, 3, 33, 33), np.float32), out=np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="threads"):
        bimlp_runtime.load(path, threads=0)
    with pytest.raises(ValueError, match="threads"):
        model.threads = -1
    with pytest.raises(ValueError, match="input shape"):
        model.output_shape((1, 3, 33))
    assert model.output_shape((5, 3, 64, 64)) == (5, 10)
    with pytest.raises(ValueError, match="out of range"):
        model.output_shape((1, 3, 1 << 40, 1 << 40))
    model.close()
    with pytest.raises(ValueError, match="closed"):
        model.run(np.zeros((1, 3, 33, 33), np.float32))
    with pytest.raises(TypeError):
        bimlp_runtime.from_bytes(12345)
    with pytest.raises(ArtifactError, match="<bytes>"):
        bimlp_runtime.from_bytes(b"\x00" * 3)


def test_smallest_inputs_run(small_artifact):
    path, _ = small_artifact
    model = bimlp_runtime.load(path, threads=2)
    for h, w in [(3, 3), (3, 40), (7, 5)]:
        out = model.run(np.ones((1, 3, h, w), np.float32))
        assert out.shape == (1, 10) and np.isfinite(out).all()


def _mutate(raw: bytes, ops) -> bytes:
    b = bytearray(raw)
    for kind, pos, val in ops:
        if not b:
            break
        p = pos % len(b)
        if kind == 0:
            b[p] ^= val or 1
        elif kind == 1:
            del b[p:]
        elif kind == 2:
            b[p:p] = bytes([val]) * (1 + val % 7)
        else:
            b[p:p + 8] = struct.pack("<q", (val - 128) * 2**31)
    return bytes(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**31), st.integers(0, 255)), min_size=1,
                    max_size=4),
       header_only=st.booleans())
def test_fuzz_mutated_artifacts_never_crash(small_artifact, ops, header_only):
    """Random byte flips, truncations, insertions and 8-byte integer overwrites, anywhere or in the
    header only: loading raises ArtifactError or gives a model that runs (the flipped bytes were
    only when the mutation changed no byte that the checksum or the parser reads)."""
    path, _ = small_artifact
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    if header_only:
        ops = [(k, p % (n + 8), v) for k, p, v in ops]
    data = _mutate(raw, ops)
    try:
        model = bimlp_runtime.from_bytes(data, name="fuzz.bimlp", threads=1)
    except ArtifactError as e:
        assert "fuzz.bimlp" in str(e)
        return
    assert data == raw or json.loads(data[8:8 + n]).keys() == json.loads(raw[8:8 + n]).keys()
    out = model.run(np.ones((1, 3, 9, 9), np.float32))
    assert out.shape == (1, 10)


def test_numerics_are_checked_like_every_other_field(small_artifact, tmp_path, data_dir):
    import bimlp
    from bimlp.deploy import export

    path, _ = small_artifact
    assert "no 'numerics' string" in load_error(edit_header(path, tmp_path / "n.bimlp", drop=("numerics",)))
    msg = load_error(edit_header(path, tmp_path / "m.bimlp", numerics="official"))
    assert "'numerics' is 'official' but the configuration's mode is 'paper'" in msg
    assert "expected 'paper' or 'official'" in load_error(edit_config(path, tmp_path / "q.bimlp", mode="int4"))
    # a paper-mode file that claims official numerics: the tensors are wrong for it, named
    both = edit_header(edit_config(path, tmp_path / "b0.bimlp", mode="official"), tmp_path / "b.bimlp",
                       numerics="official")
    assert "tensor 'network.0.0.attn.tfc_h.taps' is missing" in load_error(both)
    # version 1 (before numerics) holds paper mode only; official files need version 2
    official = export(bimlp.load_official(data_dir / "official" / "tiny_bn.ckpt"), tmp_path / "o.bimlp")
    assert "version 1 artifact holds paper-mode numerics only" in load_error(set_version(official, tmp_path / "o1.bimlp", "1"))
    bimlp_runtime.load(set_version(path, tmp_path / "p1.bimlp", "1"))  # old paper files still load
    msg = load_error(edit_config(official, tmp_path / "t.bimlp", dims=[16, 32, 48, 68]))
    assert "tensor 'network" in msg and "shape" in msg


def test_wavemlp_downsampling_tensors_are_checked(small_artifact, tmp_path):
    path, _ = small_artifact
    msg = load_error(edit_config(path, tmp_path / "w.bimlp", downsample="wavemlp"))
    assert "tensor 'network.1.proj.weight' has shape [32, 16, 1, 1], the configuration needs [32, 16, 3, 3]" in msg
    assert "needs a version 2 artifact" in load_error(
        set_version(edit_config(path, tmp_path / "w0.bimlp", downsample="wavemlp"), tmp_path / "w1.bimlp", "1"))

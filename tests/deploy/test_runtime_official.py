"""Official (ternary) mode on the runtime: the released MindSpore code's outputs on the fixtures of
tests/data/official are reproduced by load_official -> export -> runtime (cosine >= 0.9999 per
sample, same argmax), through the Python API, `bimlp export` and `bimlp convert`; every
instruction set gives the same bits; the artifact header records the numerics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from runtime_helpers import cosines, read_raw

import bimlp
import bimlp_runtime
from bimlp.cli import main
from bimlp.deploy import export, pack_model
from bimlp_runtime import testing as T


@pytest.fixture(params=["bn", "gn"])
def fixture(request, data_dir):
    io = np.load(data_dir / "official" / f"tiny_{request.param}_io.npz")
    return data_dir / "official" / f"tiny_{request.param}.ckpt", io["input"], io["logits"]


def check_release(out: np.ndarray, ref: np.ndarray) -> None:
    assert out.shape == ref.shape
    assert cosines(out, ref).min() >= 0.9999, cosines(out, ref)
    assert np.array_equal(out.argmax(1), ref.argmax(1))


def test_load_official_export_runtime_reproduces_release_logits(fixture, tmp_path, monkeypatch):
    ckpt, x, ref = fixture
    model = bimlp.load_official(ckpt)
    path = export(model, tmp_path / "official.bimlp")
    outs = {}
    for isa in T.supported_isas():
        monkeypatch.setenv("BIMLP_ISA", isa)
        outs[isa] = bimlp_runtime.load(path, threads=2).run(x)
    check_release(outs["portable"], ref)
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa
    with torch.no_grad():
        assert cosines(outs["portable"], model(torch.from_numpy(x)).numpy()).min() >= 0.9999


def test_header_records_official_numerics(data_dir, tmp_path):
    path = export(bimlp.load_official(data_dir / "official" / "tiny_bn.ckpt"), tmp_path / "o.bimlp")
    st, _ = read_raw(path)
    header = json.loads(st["__metadata__"]["header"])
    assert st["__metadata__"]["bimlp_format_version"] == "2" and header["version"] == 2
    assert header["numerics"] == "official" and header["config"]["mode"] == "official"
    # 1x1 layers are bits; the token convs keep their real-valued taps (per-tap scales)
    assert st["network.0.0.attn.fc_h.bits"]["dtype"] == "U8"
    assert st["network.0.0.attn.tfc_h.taps"] == {**st["network.0.0.attn.tfc_h.taps"], "dtype": "F32",
                                                 "shape": [32, 7]}
    assert "network.0.0.sfc_w.bits" not in st and st["network.0.0.sfc_w.taps"]["shape"] == [16, 7]


def test_export_and_convert_commands_run_on_the_runtime(data_dir, tmp_path, capsys):
    ckpt = data_dir / "official" / "tiny_gn.ckpt"
    io = np.load(data_dir / "official" / "tiny_gn_io.npz")
    out = tmp_path / "cli.bimlp"
    assert main(["export", "--model", "bimlp_m", "--checkpoint", str(ckpt), "-o", str(out)]) == 0
    assert "official numerics" in capsys.readouterr().out
    check_release(bimlp_runtime.load(out, threads=1).run(io["input"]), io["logits"])
    conv = tmp_path / "tiny.safetensors"
    assert main(["convert", str(ckpt), "-o", str(conv)]) == 0
    out2 = tmp_path / "conv.bimlp"
    assert main(["export", "--model", "bimlp_m", "--checkpoint", str(conv), "-o", str(out2)]) == 0
    assert np.array_equal(bimlp_runtime.load(out2, threads=1).run(io["input"]),
                          bimlp_runtime.load(out, threads=1).run(io["input"]))


def test_pack_model_of_an_official_model_matches_it(data_dir):
    model = bimlp.load_official(data_dir / "official" / "tiny_bn.ckpt")
    x = torch.from_numpy(np.load(data_dir / "official" / "tiny_bn_io.npz")["input"])
    with torch.no_grad():
        ref = model(x).numpy()
    assert cosines(pack_model(model, threads=1)(x).numpy(), ref).min() >= 0.9999


def test_a_zero_binary_weight_is_refused_by_name(data_dir):
    model = bimlp.load_official(data_dir / "official" / "tiny_bn.ckpt")
    with torch.no_grad():
        model.network[0][0].attn.fc_c.weight[3, 5] = 0.0  # official sign(0) = 0: no 1-bit code
    with pytest.raises(ValueError, match=r"network\.0\.0\.attn\.fc_c .*output channel 3 .*zero weight"):
        export(model, "/nonexistent/never.bimlp")

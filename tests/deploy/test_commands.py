"""`bimlp export`, `bimlp bench` and the ONNX export of the simulated model."""

from __future__ import annotations

import json

import pytest
import torch
from deploy_helpers import SMALL, conditioned_model

from bimlp.checkpoint import save_weights
from bimlp.cli import main
from bimlp.deploy import load, pack_model, simulate
from bimlp.deploy.kernels import ISA_NAMES, native


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    model = conditioned_model(calib_size=33, **SMALL)
    return model, save_weights(model, tmp_path_factory.mktemp("ck") / "small.safetensors")


def test_export_command_writes_a_loadable_artifact(small_checkpoint, tmp_path, capsys):
    model, ckpt = small_checkpoint
    out = tmp_path / "small.bimlp"
    assert main(["export", "--model", "bimlp_s", "--checkpoint", str(ckpt), "-o", str(out)]) == 0
    assert "theoretical minimum" in capsys.readouterr().out
    x = torch.randn(2, 3, 33, 33)
    assert torch.equal(load(out)(x), pack_model(model)(x))


def test_export_command_explains_official_mode(small_checkpoint, tmp_path, capsys):
    _, ckpt = small_checkpoint
    code = main(["export", "--model", "bimlp_s", "--checkpoint", str(ckpt), "--mode", "official",
                 "-o", str(tmp_path / "x.bimlp")])
    assert code == 2
    assert "ternary" in capsys.readouterr().err
    assert not (tmp_path / "x.bimlp").exists()


def test_bench_command_writes_json_keyed_by_batch(small_checkpoint, tmp_path, capsys):
    _, ckpt = small_checkpoint
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", "bimlp_s", "--checkpoint", str(ckpt), "-b", "1", "2",
                 "--img-size", "33", "--repeats", "1", "--no-compile", "--no-memory",
                 "--all-isas", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert set(results) == {"1", "2"}
    for r in results.values():
        assert r["float_ms"] > 0 and r["packed_ms"] > 0
        assert r["speedup"] == pytest.approx(r["float_ms"] / r["packed_ms"])
        assert r["min_cosine_vs_float"] > 0.9999
        assert r["layers_1x1"] and r["layers"]
        for row in r["layers_1x1"]:  # the whole float unit does more than its conv
            assert row["float_unit_ms"] > 0 and row["speedup_unit"] == pytest.approx(
                row["float_unit_ms"] / row["packed_ms"])
        mod = native()
        if mod is not None:  # every supported instruction set timed, the best one left selected
            supported = {ISA_NAMES[i] for i in ISA_NAMES if mod.supported(i)}
            assert set(r["packed_ms_by_isa"]) == supported
            assert all(ms > 0 for ms in r["packed_ms_by_isa"].values())
    assert mod is None or ISA_NAMES[mod.isa()] == r["kernels"].removeprefix("native-")
    assert "speedup" in capsys.readouterr().out


def test_onnx_export_runs_in_onnxruntime_with_same_outputs(small_checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from bimlp.deploy.onnx import export_onnx

    model, _ = small_checkpoint
    path = export_onnx(model, tmp_path / "small.onnx", image_size=33)
    x = torch.randn(3, 3, 33, 33)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(sess.run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        ref = model(x)
        sim = simulate(model)(x)
    torch.testing.assert_close(sim, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))

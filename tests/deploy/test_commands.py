"""`bimlp export`, `bimlp bench` and the ONNX export of the simulated model."""

from __future__ import annotations

import json
import time

import pytest
import torch
from deploy_helpers import SMALL, conditioned_model

import bimlp
from bimlp.checkpoint import save_weights
from bimlp.cli import main
from bimlp.deploy import load, pack_model, simulate


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


def test_export_command_explains_what_it_cannot_pack(tmp_path, capsys):
    ckpt = save_weights(bimlp.create_model("bimlp_s", binary_weights=False, **SMALL),
                        tmp_path / "step1.safetensors")
    code = main(["export", "--model", "bimlp_s", "--checkpoint", str(ckpt), "-o", str(tmp_path / "x.bimlp")])
    assert code == 2
    assert "binary_weights=False" in capsys.readouterr().err
    assert not (tmp_path / "x.bimlp").exists()


def test_bench_command_writes_json_per_batch_and_threads(small_checkpoint, tmp_path, capsys):
    _, ckpt = small_checkpoint
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", "bimlp_s", "--checkpoint", str(ckpt), "-b", "1", "2", "--threads", "1", "2",
                 "--img-size", "33", "--repeats", "2", "--no-compile", "--no-memory", "--no-references",
                 "--all-isas", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert set(results["runs"]) == {"b1_t1", "b2_t1", "b1_t2", "b2_t2"}
    for r in results["runs"].values():
        ms = r["ms"]
        assert ms["runtime"] > 0 and ms["torch eager"] > 0
        assert set(r["speedup_vs"]) == set(ms) - {"runtime"}  # every other engine is compared
        assert set(r["ms_after_idle"]) == set(ms) and set(r["speedup_vs_after_idle"]) == set(r["speedup_vs"])
        assert r["min_cosine_vs_float"] > 0.9999
        assert "runtime portable" in ms and ms["runtime portable"] > 0
        assert r["runtime_steps_ms"]["stem"] > 0 and r["runtime_steps_ms"]["mlp"] > 0
        if "onnxruntime" in ms:
            assert ms["onnxruntime"] > 0
    assert results["files"]["artifact_bytes"] > 0 and "thread_scaling" in results
    assert set(results["thread_scaling_after_idle"]) == {"b1", "b2"}
    for b in ("b1", "b2"):  # from the runtime's own round, the thread counts interleaved
        timed = results["thread_scaling_ms"][b]
        assert set(timed["ms"]) == set(timed["ms_after_idle"]) == {"1", "2"}
        assert results["thread_scaling"][b]["2/1"] == pytest.approx(timed["ms"]["1"] / timed["ms"]["2"])
    printed = capsys.readouterr().out
    assert "runtime" in printed and "steady" in printed and "after idle" in printed


def test_interleaved_timing_separates_calls_after_idle_from_back_to_back_calls():
    from bimlp.deploy.bench import _interleaved

    last = {"cold": 0.0, "warm": 0.0}

    def engine(name, cold_s):  # slow when the previous call is long past, like a cold cache
        def call():
            now = time.perf_counter()
            time.sleep(cold_s if now - last[name] > 0.03 else 0.001)
            last[name] = time.perf_counter()
        return call

    steady, idle = _interleaved({"cold": engine("cold", 0.02), "warm": engine("warm", 0.001)}, rounds=3,
                                budget_s=10.0, settle_s=0.05, burst=3)
    assert set(steady) == set(idle) == {"cold", "warm"}
    assert idle["cold"] >= 20 and steady["cold"] < 10  # ms
    assert idle["warm"] < 10 and steady["warm"] < 10


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

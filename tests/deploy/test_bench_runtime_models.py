"""``benchmarks/bench_runtime_models.py``: binary models on the runtime beside ResNet-18 in ONNX
Runtime. Not timed here -- a tiny end-to-end run (small variants, 32x32, one round) that checks
the JSON holds every model's counts and a median per batch and thread count."""

from __future__ import annotations

import importlib.util
import json

import pytest


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("bench_runtime_models")


def test_models_bench_writes_a_row_per_model_batch_and_threads(script, tmp_path, capsys):
    out = tmp_path / "models.json"
    models = ["bimlp_xs", "bimlp_xs:official", "reactnet_a_xs"]
    code = script.main(["--models", *models, "--img-size", "32", "--num-classes", "10", "-b", "1", "2",
                        "--threads", "1", "--rounds", "1", "--batched-rounds", "1", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    reference = "resnet18 onnxruntime" in results["models"]
    assert reference == (importlib.util.find_spec("onnxruntime") is not None)
    engines = set(models) | ({"resnet18 onnxruntime"} if reference else set())
    assert set(results["models"]) == engines
    assert results["models"]["bimlp_xs:official"]["numerics"] == "official"
    assert results["models"]["bimlp_xs"]["numerics"] == "paper"
    for m in results["models"].values():
        assert m["params"] > 0 and m["ops"] > 0 and m["file_bytes"] > 0
        assert {"bops", "flops", "binary_params", "engine"} <= set(m)
    assert results["models"]["reactnet_a_xs"]["bops"] > 0
    assert results["models"]["reactnet_a_xs"]["runtime_steps_ms_b1_t1"]["binary_3x3"] > 0
    assert results["models"]["bimlp_xs:official"]["runtime_steps_ms_b1_t1"]["mlp"] > 0
    assert set(results["runs"]) == {"b1_t1", "b2_t1"}
    for r in results["runs"].values():
        assert set(r["ms"]) == engines and all(v > 0 for v in r["ms"].values())
        assert set(r["images_per_s"]) == engines
        if reference:
            assert set(r["speedup_vs_resnet18"]) == set(models)
    assert results["isa"] and "start" in results["load_average"] and "end" in results["load_average"]
    printed = capsys.readouterr().out
    assert "bimlp_xs:official" in printed and "b2 t1" in printed


def test_models_bench_refuses_a_folder_as_json(script, tmp_path, capsys):
    assert script.main(["--models", "bimlp_xs", "--json", str(tmp_path)]) == 2
    assert "folder" in capsys.readouterr().err

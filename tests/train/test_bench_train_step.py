"""``benchmarks/bench_train_step.py``: the JSON layout the issue fixes, the ratios, and the count of
C++ kernels a compiled configuration made inductor build. Eager only and tiny batches: what is
checked is the plumbing, not a speed (a compiled run takes minutes here; the benchmark itself
measures that)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def script(load_benchmark):
    return load_benchmark("bench_train_step")


def test_json_has_every_model_path_and_mode_with_speed_and_warmup(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "unused"))  # main() sets it; restored after
    out = tmp_path / "step.json"
    assert script.main(["--models", "wavemlp_fp", "naive", "--paths", "fast", "reference", "--modes", "eager",
                        "-b", "4", "--threads", "1", "--rounds", "2", "--cache-dir", str(tmp_path / "cache"),
                        "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["batch_size"] == 4 and data["config"]["image_size"] == 32
    for model in ("wavemlp_fp", "naive"):
        for path in ("fast", "reference"):
            r = data["results"][model][path]["eager"]
            assert r["img_s"] > 0 and r["warmup_s"] > 0 and len(r["times_s"]) == 2
            assert r["img_s"] == pytest.approx(4 / (r["step_ms"] / 1000))
            assert "kernels_built" not in r  # eager builds none
    assert set(data["ratios"]) == {"wavemlp_fp eager: fast / reference speed", "naive eager: fast / reference speed"}
    printed = capsys.readouterr().out
    assert "warm-up s" in printed and "kernels" in printed


def test_compiled_kernels_are_the_shared_libraries_in_the_cache(script, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert script._compiled_kernels() == 0
    for name in ("ab/one.so", "cd/two.so", "cd/two.cpp", "fxgraph/entry"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert script._compiled_kernels() == 2
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "missing"))
    assert script._compiled_kernels() == 0

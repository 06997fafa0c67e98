"""``benchmarks/bench_runtime_ab.py``: the runtime against another build of it. Not timed here --
a tiny run (BiMLP-XS at 32x32, two rounds) of the installed library against itself, which must
report the same logits, and against a library that computes differently, which must not."""

from __future__ import annotations

import json
import shutil

import pytest

import bimlp_runtime
import bimlp_runtime.testing


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("bench_runtime_ab")


def _run(script, tmp_path, *extra):
    out = tmp_path / "ab.json"
    lib = str(bimlp_runtime.library_path())
    code = script.main(["--baseline-lib", lib, "--model", "bimlp_xs", "--img-size", "32", "-b", "1", "3",
                        "--threads", "1", "--rounds", "2", "--json", str(out), *extra])
    return code, json.loads(out.read_text())


def test_a_library_against_itself_gives_the_same_logits(script, tmp_path):
    code, results = _run(script, tmp_path)
    assert code == 0
    assert set(results["runs"]) == {"b1_t1", "b3_t1"}
    assert results["isa"] == [bimlp_runtime.testing.supported_isas()[-1]]  # both workers, the best table
    for run in results["runs"].values():
        assert run["same_logits"] is True
        assert set(run["ms"]) == {"baseline", "candidate"} and min(run["ms"].values()) > 0
        assert run["speedup"] == pytest.approx(run["ms"]["baseline"] / run["ms"]["candidate"])


def test_isa_chooses_the_kernel_table_of_both_workers(script, tmp_path):
    code, results = _run(script, tmp_path, "--isa", "portable", "-b", "1")
    assert code == 0 and results["isa"] == ["portable"]


def test_different_logits_are_reported_and_fail(script, tmp_path, monkeypatch):
    # every kernel table gives the same bits by design, so a copy of the library whose worker
    # (told by the copy's name) feeds it the negated images stands in for a wrong build
    monkeypatch.setattr(script, "_WORKER", script._WORKER.replace(
        "out = rt.run(xs[b])", "out = rt.run(-xs[b]) if os.environ['BIMLP_RUNTIME_LIBRARY'].endswith('#') "
        "else rt.run(xs[b])"))
    copy = tmp_path / "candidate#"
    shutil.copy(bimlp_runtime.library_path(), copy)
    code, results = _run(script, tmp_path, "--candidate-lib", str(copy))
    assert code == 1
    assert not any(r["same_logits"] for r in results["runs"].values())


def test_a_missing_library_is_a_usage_error(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--baseline-lib", str(tmp_path / "none.so")])
    assert "no library at" in capsys.readouterr().err

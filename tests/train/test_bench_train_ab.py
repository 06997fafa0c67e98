"""``benchmarks/bench_train_ab.py``: the training step against another revision's. Not timed here:
the per-tree runs of ``bench_train_step.py`` are replaced by a recorder, so what is checked is the
plumbing -- a worktree of the baseline, one untimed build run per tree with its own extension
folder, rounds alternating the trees' order, the medians and ratios, the JSON, and usage errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def script(load_benchmark):
    return load_benchmark("bench_train_ab")


def test_runs_alternate_the_trees_and_report_medians(script, tmp_path, monkeypatch, capsys):
    calls = []
    ms = {"baseline": iter([0, 300.0, 310.0, 290.0]), "candidate": iter([0, 100.0, 90.0, 200.0])}

    def fake_run(tree, ext_dir, args, steps, out):
        name = "candidate" if tree == script.ROOT else "baseline"
        assert (tree / "benchmarks" / "bench_train_step.py").is_file()  # a real checkout
        calls.append((name, ext_dir.name, steps))
        return {"bimlp": {"fast": {"eager": {"step_ms": next(ms[name])}}}}

    monkeypatch.setattr(script, "_run_tree", fake_run)
    out = tmp_path / "ab.json"
    assert script.main(["--baseline", "HEAD", "--models", "bimlp", "--env", "BIMLP_CPU_LEVEL=v3",
                        "--json", str(out)]) == 0
    # one untimed build run per tree (1 step), then rounds in alternating order
    assert calls[:2] == [("baseline", "ext-baseline", 1), ("candidate", "ext-candidate", 1)]
    assert [c[0] for c in calls[2:]] == ["baseline", "candidate", "candidate", "baseline",
                                         "baseline", "candidate"]
    assert all(c[2] == 5 for c in calls[2:])
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["baseline_ms"], row["candidate_ms"]) == (300.0, 100.0)
    assert row["speedup"] == pytest.approx(3.0)
    assert "3.00x" in capsys.readouterr().out
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True,
                               text=True).stdout
    assert "bimlp-train-ab-" not in worktrees  # removed afterwards


@pytest.mark.parametrize(("argv", "message"), [
    (["--baseline", "no-such-revision-xyz"], "is not a git revision"),
    (["--baseline", "HEAD", "--env", "NOEQUALS"], "expected KEY=VALUE"),
    (["--baseline", "HEAD", "--rounds", "0"], "must be positive"),
])
def test_bad_arguments_are_errors_that_name_them(script, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        script.main(argv)
    assert message in str(e.value) + capsys.readouterr().err

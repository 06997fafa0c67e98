"""The training step against the training step of another revision (an A/B of a change to the
fast path or its C++ kernels): ``bench_train_step.py`` of each tree run in alternating processes.

    python benchmarks/bench_train_ab.py --baseline HEAD~1 --env BIMLP_CPU_LEVEL=v3 --json ab.json

The baseline is a git revision, checked out into a temporary worktree; the candidate is this
working tree or ``--candidate REV``. Each tree gets its own torch-extension folder, and an untimed
first process per tree builds its C++ kernels, so no timed process compiles anything. Then, in
each of ``--rounds`` rounds, one process per tree (in alternating order) runs
``benchmarks/bench_train_step.py`` of that tree with ``--paths`` ``--modes`` ``--models`` and
``--steps`` timed steps, with that tree's ``src`` first on ``PYTHONPATH`` and the ``--env``
settings. The per-process medians of step time are reduced to a median per tree; prints them with
baseline / candidate ratios and writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bimlp.deploy.bench import _cpu_name

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("wavemlp_fp", "naive", "bimlp", "reactnet_a")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="git revision of the baseline")
    p.add_argument("--candidate", default=None, help="git revision (default: this working tree)")
    p.add_argument("--models", nargs="+", default=["naive", "bimlp", "reactnet_a"], choices=MODELS)
    p.add_argument("--paths", nargs="+", default=["fast"], choices=("fast", "reference"))
    p.add_argument("--modes", nargs="+", default=["eager"], choices=("eager", "compile"))
    p.add_argument("--rounds", type=int, default=3, help="processes per tree, alternating")
    p.add_argument("--steps", type=int, default=5, help="timed steps per process")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set in both trees' processes (repeatable), e.g. BIMLP_CPU_LEVEL=v3")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.threads < 1 or args.batch_size < 1:
        p.error("--rounds, --steps, --threads and --batch-size must be positive")
    for kv in args.env:
        if "=" not in kv or not kv.split("=", 1)[0]:
            p.error(f"--env {kv!r}: expected KEY=VALUE")
    return args


def _rev(rev: str) -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"bench_train_ab: {rev!r} is not a git revision of {ROOT}")
    return r.stdout.strip()


def _worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), rev],
                   check=True)
    return where


def _run_tree(tree: Path, ext_dir: Path, args: argparse.Namespace, steps: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), TORCH_EXTENSIONS_DIR=str(ext_dir))
    env.update(kv.split("=", 1) for kv in args.env)
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_train_step.py"), "--models", *args.models,
           "--paths", *args.paths, "--modes", *args.modes, "--rounds", str(steps),
           "--threads", str(args.threads), "-b", str(args.batch_size), "--json", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    if r.returncode:
        raise SystemExit(f"bench_train_ab: {' '.join(cmd)} failed in {tree}:\n{r.stderr[-3000:]}")
    return json.loads(out.read_text())["results"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # resolved once: the commits measured are the commits recorded (HEAD may move meanwhile)
    base_commit = _rev(args.baseline)
    cand_commit = _rev(args.candidate) if args.candidate else None
    work = Path(tempfile.mkdtemp(prefix="bimlp-train-ab-"))
    trees: dict[str, Path] = {}
    try:
        trees["baseline"] = _worktree(base_commit, work / "baseline")
        trees["candidate"] = _worktree(cand_commit, work / "candidate") if cand_commit else ROOT
        for name in trees:
            (work / f"ext-{name}").mkdir()
        print(f"baseline {args.baseline}, candidate {args.candidate or 'working tree'}; "
              f"building each tree's kernels (untimed)", flush=True)
        for name, tree in trees.items():
            _run_tree(tree, work / f"ext-{name}", args, 1, work / "warm.json")
        ms: dict[tuple, dict[str, list[float]]] = {}
        for i in range(args.rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                res = _run_tree(trees[name], work / f"ext-{name}", args, args.steps, work / "r.json")
                for model, paths in res.items():
                    for path, modes in paths.items():
                        for mode, r in modes.items():
                            ms.setdefault((model, path, mode), {}).setdefault(name, []).append(r["step_ms"])
            print(f"  round {i + 1}/{args.rounds} done", flush=True)
    finally:
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    env = ", ".join(args.env) or "no extra environment"
    print(f"\ntraining step, batch {args.batch_size}, {args.threads} threads, {env}; median of "
          f"{args.rounds} processes per tree (each the median of {args.steps} steps)")
    print(f"{'model':<11} {'path':<10} {'mode':<8} {'baseline ms':>12} {'candidate ms':>13} {'speed-up':>9}")
    rows = []
    for (model, path, mode), by in ms.items():
        b, c = statistics.median(by["baseline"]), statistics.median(by["candidate"])
        rows.append({"model": model, "path": path, "mode": mode, "baseline_ms": b, "candidate_ms": c,
                     "speedup": b / c, "baseline_runs_ms": by["baseline"], "candidate_runs_ms": by["candidate"]})
        print(f"{model:<11} {path:<10} {mode:<8} {b:>12.1f} {c:>13.1f} {b / c:>8.2f}x")
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        config.update(baseline_commit=base_commit, candidate_commit=cand_commit or "working tree",
                      cpu=_cpu_name(), loadavg=os.getloadavg())
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"config": config, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

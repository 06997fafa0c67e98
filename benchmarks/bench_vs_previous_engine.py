"""The runtime against the engine it replaced (the torch-extension packed engine of commit ff84eca),
BiMLP-S at 224x224 with random weights, in two worker processes driven in interleaved rounds.

    python benchmarks/bench_vs_previous_engine.py --json docs/bench_runtime_vs_previous_engine.json

The previous engine lives only in the history: the script checks commit ff84eca out into a
temporary git worktree, imports that tree's ``bimlp`` in one worker (its kernels are built by
torch's extension builder on first use, about a minute) and the installed runtime in the other,
then asks each for one timed call per round (after an untimed call of the same shape), 0.2 s of
idle before each. Prints a table and writes JSON (runs keyed ``b{batch}_t{threads}``: median ms
per engine and the previous engine's time over the runtime's). Needs the repository's history
(a full clone), a C++ compiler and the venv's torch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREVIOUS = "ff84eca"  # the last commit with bimlp.deploy's torch-extension engine
ROOT = Path(__file__).resolve().parents[1]

_OLD = r"""
import sys, time, torch
import bimlp
from bimlp.deploy import pack_model
torch.manual_seed(0)
packed = pack_model(bimlp.create_model("bimlp_s").eval(), backend="native")
xs = {}
print("ready", flush=True)
for line in sys.stdin:
    b, t = map(int, line.split())
    torch.set_num_threads(t)
    x = xs.setdefault(b, torch.randn(b, 3, 224, 224))
    with torch.inference_mode():
        packed(x)
        t0 = time.perf_counter(); packed(x); dt = time.perf_counter() - t0
    print(f"{1e3 * dt:.4f}", flush=True)
"""

_NEW = r"""
import sys, time, tempfile, numpy as np
import bimlp_runtime
from bimlp.deploy.artifact import export
from bimlp.deploy.bench import _random_model
path = tempfile.mktemp(suffix=".bimlp")
export(_random_model("bimlp_s", None)[0], path)
models = {}
xs = {}
print("ready", flush=True)
for line in sys.stdin:
    b, t = map(int, line.split())
    rt = models.setdefault(t, bimlp_runtime.load(path, threads=t))
    if b not in xs:
        xs[b] = np.random.default_rng(b).standard_normal((b, 3, 224, 224)).astype(np.float32)
    x = xs[b]
    rt.run(x)
    t0 = time.perf_counter(); rt.run(x); dt = time.perf_counter() - t0
    print(f"{1e3 * dt:.4f}", flush=True)
"""


def _worker(code: str, env: dict[str, str]) -> subprocess.Popen:
    w = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    line = w.stdout.readline().strip()
    if line != "ready":
        w.kill()
        raise RuntimeError(
            f"a benchmark worker failed to start (said {line!r}); run it alone to see why"
        )
    return w


def ask_rounds(workers: dict[str, subprocess.Popen], batch: int, threads: int,
               rounds: int) -> dict[str, list[list[str]]]:
    """Each worker's replies (split into fields) to ``rounds`` interleaved requests of one timed
    call at ``batch`` and ``threads``, 0.2 s of idle before each."""
    replies: dict[str, list[list[str]]] = {k: [] for k in workers}
    for _ in range(rounds):
        for name, w in workers.items():
            time.sleep(0.2)
            w.stdin.write(f"{batch} {threads}\n")
            w.stdin.flush()
            replies[name].append(w.stdout.readline().split())
    return replies


def close_workers(workers: dict[str, subprocess.Popen]) -> None:
    for w in workers.values():
        if w.stdin:
            w.stdin.close()
        w.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-b", "--batch-size", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds at batch 1 (default 7)"
    )
    p.add_argument(
        "--batched-rounds", type=int, default=5, help="rounds at larger batches (default 5)"
    )
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if min(args.batch_size + args.threads + [args.rounds, args.batched_rounds]) < 1:
        p.error("batch sizes, threads and rounds must be >= 1")
    tree = Path(tempfile.mkdtemp(prefix="bimlp-previous-")) / "tree"
    try:
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(tree), PREVIOUS], cwd=ROOT, check=True
        )
    except (OSError, subprocess.CalledProcessError) as e:
        print(
            f"bench_vs_previous_engine: cannot check out {PREVIOUS} (a full clone is needed): {e}",
            file=sys.stderr,
        )
        return 2
    workers: dict[str, subprocess.Popen] = {}
    runs: dict[str, dict] = {}
    try:
        try:
            workers["previous engine"] = _worker(
                _OLD, {**os.environ, "PYTHONPATH": str(tree / "src")}
            )
            workers["runtime"] = _worker(_NEW, dict(os.environ))
        except RuntimeError as e:
            print(f"bench_vs_previous_engine: {e}", file=sys.stderr)
            return 2
        print("| batch | threads | previous engine | runtime | previous / runtime |")
        print("|---|---|---|---|---|")
        for t in args.threads:
            for b in args.batch_size:
                replies = ask_rounds(workers, b, t, args.rounds if b == 1 else args.batched_rounds)
                ms = {k: statistics.median(float(r[0]) for r in v) for k, v in replies.items()}
                ratio = ms["previous engine"] / ms["runtime"]
                runs[f"b{b}_t{t}"] = {
                    "batch": b,
                    "threads": t,
                    "ms": ms,
                    "speedup": ratio,
                    "rounds": len(replies["runtime"]),
                }
                old, new = ms["previous engine"], ms["runtime"]
                print(f"| {b} | {t} | {old:.1f} ms | {new:.1f} ms | {ratio:.2f}x |", flush=True)
    finally:
        close_workers(workers)
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    if args.json:
        from bimlp.deploy.bench import _cpu_name

        cpu = _cpu_name()
        out = {
            "previous_commit": PREVIOUS,
            "model": "bimlp_s",
            "size": 224,
            "machine": cpu,
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "runs": runs,
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The runtime against the runtime of another revision (an A/B of a kernel change): same artifact,
two worker processes driven in interleaved rounds, logits compared bit for bit.

    python benchmarks/bench_runtime_ab.py --baseline HEAD~1 --json ab.json
    python benchmarks/bench_runtime_ab.py --baseline-lib /tmp/old/libbimlp_runtime.so

The baseline is ``runtime/`` of a git revision, checked out into a temporary worktree and built
with CMake (Release, about a minute; needs cmake and a C++ compiler), or a library given with
``--baseline-lib``. The candidate is the installed ``bimlp_runtime`` library or
``--candidate-lib``. Each worker loads the library named by ``BIMLP_RUNTIME_LIBRARY`` and the same
artifact (a seeded random ``--model`` exported by ``bimlp export``'s code) with the kernel table
of ``--isa`` (``BIMLP_ISA``; default: the best this CPU supports), and per round times one
call of each batch size and thread count after an untimed call, 0.2 s of idle before each. Prints
medians and baseline / candidate ratios, says whether the logits were the same bits, writes JSON
(runs keyed ``b{batch}_t{threads}``) with ``--json``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_previous_engine import ROOT, _worker, ask_rounds, close_workers  # noqa: E402

_WORKER = r"""
import hashlib, os, sys, time
import numpy as np
import bimlp_runtime
path, size = os.environ["BIMLP_AB_ARTIFACT"], int(os.environ["BIMLP_AB_SIZE"])
models, xs = {}, {}
print("ready", flush=True)
for line in sys.stdin:
    b, t = map(int, line.split())
    rt = models.setdefault(t, bimlp_runtime.load(path, threads=t))
    if b not in xs:
        xs[b] = np.random.default_rng(b).standard_normal((b, rt.in_channels, size, size)).astype(np.float32)
    out = rt.run(xs[b])
    t0 = time.perf_counter(); rt.run(xs[b]); dt = time.perf_counter() - t0
    print(f"{1e3 * dt:.4f} {hashlib.sha256(out.tobytes()).hexdigest()[:16]} {rt.isa}", flush=True)
"""


def build_runtime(rev: str, work: Path) -> Path:
    """``runtime/`` of git revision ``rev`` built under ``work``: the shared library's path."""
    tree, build = work / "tree", work / "build"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), rev], cwd=ROOT, check=True)
    try:
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(["cmake", "-S", str(tree / "runtime"), "-B", str(build), *gen,
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1)], check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    lib = build / "libbimlp_runtime.so"
    if not lib.is_file():
        raise FileNotFoundError(f"the build of {rev} made no {lib.name} in {build}")
    return lib


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    base = p.add_mutually_exclusive_group()
    base.add_argument("--baseline", default="HEAD~1", help="git revision to build (default HEAD~1)")
    base.add_argument("--baseline-lib", type=Path, help="a built libbimlp_runtime.so instead")
    p.add_argument("--candidate-lib", type=Path,
                   help="library to compare (default: the installed bimlp_runtime's)")
    p.add_argument("--model", default="bimlp_s", help="registered model name (default bimlp_s)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("-b", "--batch-size", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--isa", help="kernel table of both workers (BIMLP_ISA: portable, avx2, avx512, neon)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if min(args.batch_size + args.threads + [args.rounds, args.img_size]) < 1:
        p.error("batch sizes, threads, rounds and the image size must be >= 1")
    for lib in (args.baseline_lib, args.candidate_lib):
        if lib is not None and not lib.is_file():
            p.error(f"no library at {lib}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import bimlp_runtime
    from bimlp.deploy.artifact import export
    from bimlp.deploy.bench import _cpu_name, _random_model

    work = Path(tempfile.mkdtemp(prefix="bimlp-ab-"))
    try:
        if args.baseline_lib is not None:
            baseline, label = args.baseline_lib.resolve(), str(args.baseline_lib)
        else:
            try:
                baseline, label = build_runtime(args.baseline, work), args.baseline
            except (OSError, subprocess.CalledProcessError) as e:
                print(f"bench_runtime_ab: cannot build {args.baseline}: {e}", file=sys.stderr)
                return 2
        candidate = (args.candidate_lib or bimlp_runtime.library_path()).resolve()
        artifact = work / f"{args.model}.bimlp"
        export(_random_model(args.model, None)[0], artifact)
        return _compare(args, {"baseline": baseline, "candidate": candidate}, label, artifact,
                        _cpu_name())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compare(args: argparse.Namespace, libs: dict[str, Path], label: str, artifact: Path,
             cpu: str) -> int:
    workers = {}
    try:
        for name, lib in libs.items():
            env = {**os.environ, "BIMLP_RUNTIME_LIBRARY": str(lib), "BIMLP_AB_ARTIFACT": str(artifact),
                   "BIMLP_AB_SIZE": str(args.img_size)}
            if args.isa:
                env["BIMLP_ISA"] = args.isa
            workers[name] = _worker(_WORKER, env)
        runs, same, isas = {}, True, set()
        print(f"{args.model} at {args.img_size} on {cpu} ({os.cpu_count()} CPUs): baseline {label} "
              f"vs candidate {libs['candidate']}, kernels {args.isa or os.environ.get('BIMLP_ISA') or 'default'}")
        print("| batch | threads | baseline | candidate | baseline / candidate | same logits |")
        print("|---|---|---|---|---|---|")
        for t in args.threads:
            for b in args.batch_size:
                replies = ask_rounds(workers, b, t, args.rounds)  # [ms, logits digest] each
                ms = {k: statistics.median(float(r[0]) for r in v) for k, v in replies.items()}
                digests = {k: {r[1] for r in v} for k, v in replies.items()}
                isas |= {r[2] for v in replies.values() for r in v}
                equal = digests["baseline"] == digests["candidate"] and len(digests["baseline"]) == 1
                same &= equal
                ratio = ms["baseline"] / ms["candidate"]
                runs[f"b{b}_t{t}"] = {"batch": b, "threads": t, "ms": ms, "speedup": ratio,
                                      "same_logits": equal, "rounds": args.rounds}
                print(f"| {b} | {t} | {ms['baseline']:.2f} ms | {ms['candidate']:.2f} ms | "
                      f"{ratio:.3f}x | {'yes' if equal else 'NO'} |", flush=True)
    finally:
        close_workers(workers)
    if args.json:
        out = {"model": args.model, "size": args.img_size, "baseline": label,
               "candidate": str(libs["candidate"]), "isa": sorted(isas), "machine": cpu, "cpus": os.cpu_count(),
               "load_average": list(os.getloadavg()), "runs": runs}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    if not same:
        print("bench_runtime_ab: the two libraries gave different logits", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

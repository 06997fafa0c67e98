"""What the installed distribution says about itself: license, version, lean core dependencies."""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest

import bimlp

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(extra: str | None = None) -> set[str]:
    names = set()
    for req in metadata.requires("bimlp") or []:
        marker = re.search(r'extra\s*==\s*"([^"]+)"', req)
        if (marker.group(1) if marker else None) == extra:
            names.add(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower())
    return names


def test_metadata_shows_the_apache_license_and_the_one_version():
    meta = metadata.metadata("bimlp")
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Version"] == bimlp.__version__
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "Version 2.0" in (ROOT / "LICENSE").read_text()


def test_core_dependencies_leave_plotting_and_scikit_learn_to_extras():
    core = _requirement_names()
    assert {"torch", "torchvision", "timm", "safetensors"} <= core
    assert not core & {"matplotlib", "scikit-learn", "onnx", "onnxscript"}
    assert "matplotlib" in _requirement_names("plot")
    assert {"onnx", "onnxscript"} <= _requirement_names("onnx")


def test_the_core_install_pulls_in_neither_matplotlib_nor_scikit_learn():
    # what `pip install -e .` installs: the core requirements and theirs, all the way down (read
    # from the installed distributions' metadata, markers evaluated for this interpreter)
    requirements = pytest.importorskip("packaging.requirements")
    seen, todo = set(), ["bimlp"]
    while todo:
        name = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (another platform's dependency)
        for line in requires:
            req = requirements.Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra, or not for this platform
            dep = re.sub(r"[-_.]+", "-", req.name).lower()
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert {"torch", "timm", "safetensors", "numpy"} <= seen
    assert not seen & {"matplotlib", "scikit-learn", "sklearn"}, sorted(seen)


def test_the_built_in_digits_ship_inside_the_package_with_their_license():
    data = resources.files("bimlp.data")
    with data.joinpath("digits.npz").open("rb") as f:
        stored = np.load(f, allow_pickle=False)
        images, labels = stored["images"], stored["labels"]
        train, test = stored["train_index"], stored["test_index"]
    assert images.shape == (1797, 8, 8) and images.max() == 16 and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert sorted([*train, *test]) == list(range(1797)) and len(test) == 360
    note = data.joinpath("DIGITS_LICENSE.md").read_text()
    assert "CC BY 4.0" in note and "archive.ics.uci.edu/dataset/80" in note


def test_the_stored_digits_are_scikit_learns_and_its_split():
    datasets = pytest.importorskip("sklearn.datasets")
    selection = pytest.importorskip("sklearn.model_selection")
    from bimlp.data.arrays import load_digits_split

    digits = datasets.load_digits()
    (xt, yt), (xv, yv) = load_digits_split(8)
    tr, te = selection.train_test_split(np.arange(1797), test_size=0.2, stratify=digits.target,
                                        random_state=0)
    assert yt.tolist() == digits.target[tr].tolist() and yv.tolist() == digits.target[te].tolist()
    expected = np.round(digits.images[te] / 16.0 * 255.0)
    assert np.array_equal(xv[:, 0].numpy(), expected.astype(np.uint8))


def test_another_holdout_is_a_fixed_stratified_split():
    from bimlp.data.arrays import load_digits_split

    (_, yt), (_, yv) = load_digits_split(8, holdout=0.5)
    (_, yt2), (_, yv2) = load_digits_split(8, holdout=0.5)
    assert yv.tolist() == yv2.tolist() and len(yt) + len(yv) == 1797
    counts = np.bincount(yv.numpy(), minlength=10)
    assert abs(len(yv) - 1797 / 2) <= 10 and counts.min() >= 86


# Neither scikit-learn nor matplotlib importable: what a core `pip install -e .` gives (cheaper to
# simulate in one interpreter than to build a fresh venv). ``None`` in sys.modules makes every
# import of the package and its submodules fail with ImportError.
_WITHOUT_EXTRAS = (
    "import sys\n"
    "for name in ('sklearn', 'matplotlib'):\n"
    "    sys.modules[name] = None\n"
    "from bimlp.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "leaked = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib')\n"
    "          and sys.modules[m] is not None]\n"
    "print('extras imported:', leaked)\n"
    "sys.exit(code)\n"
)


def test_the_main_job_runs_without_scikit_learn_and_matplotlib(tmp_path):
    # the README's `bimlp train` (the built-in digits, both steps) on a tiny budget
    import os
    import subprocess
    import sys

    args = ["train", "--output", str(tmp_path), "-j", "0", "--img-size", "16", "-b", "64",
            "model.depths=[1,1]", "model.dims=[16,32]", "optim.epochs=1", "data.train_limit=256",
            "data.val_limit=64", "run.progress=false", "run.device=\"cpu\""]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "extras imported: []" in done.stdout
    for step in ("step1", "step2"):
        assert (tmp_path / step / "model.safetensors").is_file(), step
        assert not (tmp_path / step / "curves.png").exists()  # no matplotlib, no chart
        assert "matplotlib is not installed" in (tmp_path / step / "train.log").read_text()


def test_the_fast_paths_cpp_source_ships_inside_the_package():
    # built on first use from the installed package (bimlp.layers.fused.cpu_kernels)
    csrc = resources.files("bimlp.layers").joinpath("csrc")
    assert "PYBIND11_MODULE" in csrc.joinpath("module.cpp").read_text()
    assert "tail_backward" in csrc.joinpath("unit_tail.cpp").read_text()
    assert "head_backward" in csrc.joinpath("unit_head.cpp").read_text()
    assert "chunked_sums" in csrc.joinpath("rows.h").read_text()


def test_the_sources_pass_the_projects_lint_rules():
    """``ruff check`` with the rules of pyproject.toml ([tool.ruff]) over every Python tree."""
    import shutil
    import subprocess
    import sys

    if importlib.util.find_spec("ruff") is None and shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    cmd = [sys.executable, "-m", "ruff"] if importlib.util.find_spec("ruff") else ["ruff"]
    paths = [p for p in ("src", "tests", "benchmarks", "experiments", "runtime") if (ROOT / p).is_dir()]
    out = subprocess.run([*cmd, "check", "--no-cache", "--output-format", "concise", *paths], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]

"""What the installed distribution says about itself: license, version, lean core dependencies."""

from __future__ import annotations

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


def test_the_fast_paths_cpp_source_ships_inside_the_package():
    # built on first use from the installed package (bimlp.layers.fused.cpu_kernels)
    source = resources.files("bimlp.layers").joinpath("csrc", "unit_tail.cpp").read_text()
    assert "PYBIND11_MODULE" in source and "tail_backward" in source

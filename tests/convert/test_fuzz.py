"""Bounded fuzzing of the three readers (MindSpore ``.ckpt``, PyTorch pickles, our safetensors
with its configuration): thousands of mutated files, each of which must give a model or a
CheckpointError -- no other exception, no hang, no runaway memory.

Mutations of a real, loadable file: overwritten bytes, a truncation, inserted bytes, and for
safetensors edits of the JSON configuration. Seeded (derandomized) so CI is reproducible.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bimlp
from bimlp.checkpoint import CheckpointError, save_weights
from bimlp.models import model_from_checkpoint

DATA = Path(__file__).parents[1] / "data"
PER_FILE_S = 2.0


def _fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


FUZZ = _fuzz(700)  # 400 + 700 x 3 = 2,500 files in all, about a minute on 2 busy cores


def _mutations(size: int):
    edits = st.lists(st.tuples(st.integers(0, max(size - 1, 0)), st.integers(0, 255)),
                     min_size=1, max_size=8)
    return st.tuples(edits, st.one_of(st.none(), st.integers(0, size)),
                     st.one_of(st.none(), st.tuples(st.integers(0, size), st.binary(max_size=16))))


def _apply(data: bytes, mutation) -> bytes:
    edits, cut, insert = mutation
    out = bytearray(data)
    for pos, value in edits:
        out[pos] = value
    if insert is not None:
        out[insert[0]:insert[0]] = insert[1]
    return bytes(out[:cut] if cut is not None else out)


def _load_or_refuse(path: Path, family: str) -> None:
    start = time.perf_counter()
    try:
        model = model_from_checkpoint(path, family=family)
        assert isinstance(model, torch.nn.Module)
    except CheckpointError as e:
        assert str(path) in str(e) or path.name in str(e), str(e)
    assert time.perf_counter() - start < PER_FILE_S, "one file took too long"


@pytest.fixture(scope="module")
def rss_guard():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 500 * 1024, f"peak memory grew by {grown / 1024:.0f} MB while fuzzing"


@pytest.fixture(scope="module")
def safetensors_file(tmp_path_factory) -> bytes:
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=3)
    path = save_weights(model, tmp_path_factory.mktemp("fuzz") / "seed.safetensors")
    return path.read_bytes()


@pytest.mark.parametrize("name, family, examples", [("official/tiny_bn.ckpt", "bimlp", 400),
                                                    ("wavemlp/wave_tiny_bn.pth.tar", "wavemlp", 700)])
def test_mutated_foreign_files(name, family, examples, tmp_path_factory, rss_guard):
    seed = (DATA / name).read_bytes()
    folder = tmp_path_factory.mktemp("fuzz")
    suffix = "".join(Path(name).suffixes)

    @_fuzz(examples)
    @given(_mutations(len(seed)))
    def run(mutation):
        path = folder / f"m{suffix}"
        path.write_bytes(_apply(seed, mutation))
        _load_or_refuse(path, family)

    run()


def test_mutated_safetensors_bytes(safetensors_file, tmp_path_factory, rss_guard):
    folder = tmp_path_factory.mktemp("fuzz")
    header_end = 8 + int.from_bytes(safetensors_file[:8], "little")

    @FUZZ
    @given(_mutations(header_end))  # mostly the header: the payload is only numbers
    def run(mutation):
        path = folder / "m.safetensors"
        path.write_bytes(_apply(safetensors_file[:header_end], mutation)
                         + safetensors_file[header_end:])
        _load_or_refuse(path, "bimlp")

    run()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                     children, max_size=4),
    max_leaves=12,
)
_FIELDS = ["depths", "dims", "mlp_ratios", "num_classes", "in_chans", "norm", "mode",
           "binary_weights", "uni_shortcut", "multi_branch", "downsample", "stem_stride"]


def test_mutated_safetensors_configuration(safetensors_file, tmp_path_factory, rss_guard):
    from bimlp.checkpoint import write_safetensors
    from bimlp.convert import open_checkpoint

    folder = tmp_path_factory.mktemp("fuzz")
    seed = folder / "seed.safetensors"
    seed.write_bytes(safetensors_file)
    ck = open_checkpoint(seed)
    tensors = ck.state_dict()
    config = dict(ck.config)

    @FUZZ
    @given(st.dictionaries(st.sampled_from(_FIELDS), _JSON, min_size=1, max_size=3))
    def run(changes):
        path = write_safetensors(tensors, folder / "m.safetensors", {
            "bimlp_format": "weights-v1", "bimlp_family": "bimlp",
            "bimlp_config": json.dumps({**config, **changes}),
        })
        _load_or_refuse(path, "bimlp")

    run()

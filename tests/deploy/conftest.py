"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest
import torch

from bimlp.deploy.kernels import ISA_NAMES, native
from bimlp.deploy.kernels.fallback import TorchKernels


@pytest.fixture(scope="session")
def kernel_sets():
    """(name, kernels) for every instruction set this CPU supports, plus the PyTorch fallback."""
    sets: list[tuple[str, object]] = [("torch", TorchKernels())]
    mod = native()
    if mod is not None:
        for isa in (0, 1, 2):
            if mod.supported(isa):
                sets.append((ISA_NAMES[isa], (mod, isa)))
        best = mod.isa()
    yield sets
    if mod is not None:
        mod.set_isa(best)



@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Whole-model tests run single-threaded: fast and stable on a shared machine (the kernels'
    multi-threaded paths have their own test)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory):
    """(path, model): a conditioned small BiMLP (odd sizes welcome) exported by bimlp."""
    from deploy_helpers import SMALL, conditioned_model

    from bimlp.deploy import export

    model = conditioned_model(calib_size=33, **SMALL)
    return export(model, tmp_path_factory.mktemp("rt") / "small.bimlp"), model

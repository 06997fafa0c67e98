"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """PyTorch references run single-threaded: fast and stable on a shared machine."""
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

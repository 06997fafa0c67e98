"""One process or many: the process group, the device, and small collective helpers.

Started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) the run joins a
process group -- NCCL on GPUs, gloo on CPUs -- and every process takes ``cuda:LOCAL_RANK``.
Started plainly, the world is one process and nothing here communicates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv", "DistributedTimeout", "setup_distributed", "teardown_distributed",
    "all_reduce_sum", "barrier", "collective_timeouts",
]


class DistributedTimeout(RuntimeError):
    """A collective operation waited longer than ``run.dist_timeout`` for the other processes."""


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _pick_device(name: str, local_rank: int) -> torch.device:
    from .config import ConfigError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"run.device must be auto, cpu, mps, cuda or cuda:N, got {name!r}") \
            from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"run.device={name} but no CUDA device is available")
        if dev.index is None:
            return torch.device("cuda", local_rank)
        if dev.index >= count:
            raise ConfigError(f"run.device={name} but only {count} CUDA device(s) exist")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"run.device={name} but MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"run.device must be auto, cpu, mps, cuda or cuda:N, got {name!r}")
    return dev


def setup_distributed(device: str = "auto", timeout: float = 600.0) -> DistEnv:
    """Join the torchrun process group if there is one; pick this process's device.

    ``timeout`` (seconds) bounds every collective: a process left waiting for the others (one
    of them crashed, or they took different paths) fails instead of hanging for torch's
    default 30 minutes.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout))
    return DistEnv(rank, world, local_rank, dev)


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few numbers over all processes (float64, on the process's device)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


@contextlib.contextmanager
def collective_timeouts(env: DistEnv, timeout: float) -> Iterator[None]:
    """Turn a backend's timeout inside the block into :class:`DistributedTimeout`, a one-line
    error saying which process waited, for how long, and what to check."""
    try:
        yield
    except RuntimeError as e:
        if not env.distributed or "timed out" not in str(e).lower():
            raise
        raise DistributedTimeout(
            f"process {env.rank} of {env.world} waited more than {timeout:g} s "
            f"(run.dist_timeout) for the others in a collective operation: another process "
            f"crashed, is stuck, or took a different path ({str(e).splitlines()[0][-160:]})"
        ) from e

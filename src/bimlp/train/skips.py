"""Undecodable images met during a run: warned about once each, counted at the end."""

from __future__ import annotations

import warnings

import torch.distributed as dist

from ..data import SkippedSample, UndecodableImageWarning
from .distributed import DistEnv

__all__ = ["SkipLog"]


class SkipLog:
    """Undecodable images: a warning the first time each is met, a count at the end."""

    def __init__(self, known: list[str] | None = None) -> None:
        self.paths: dict[str, str] = dict.fromkeys(known or [], "")

    def note(self, skipped: list[SkippedSample]) -> None:
        for s in skipped:
            if s.path not in self.paths:
                self.paths[s.path] = s.reason
                warnings.warn(
                    f"skipping undecodable image {s.path} ({s.reason})",
                    UndecodableImageWarning, stacklevel=2,
                )

    def gather(self, env: DistEnv) -> list[str]:
        """Every process's skipped files (sorted, unique)."""
        mine = sorted(self.paths)
        if not env.distributed:
            return mine
        everyone: list[list[str] | None] = [None] * env.world
        dist.all_gather_object(everyone, mine)
        return sorted({p for part in everyone for p in (part or [])})

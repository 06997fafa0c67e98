"""Writing files so that a crash, a kill or a full disk never leaves a half-written file under
the final name, and a bad output path is one clear error before any work is done.

Every writer in the package goes through :func:`atomic_write`: the bytes go to a temporary file
with a unique name in the destination folder (``.<name>.<random>.tmp``), are flushed and
``fsync``-ed, the file gets the mode a plain ``open(path, "w")`` would give it (``0666`` minus the
umask: 0644 usually), it is renamed over the destination with ``os.replace`` (atomic on POSIX),
and the folder is ``fsync``-ed so that the rename itself survives a power cut. On any error the
temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = [
    "OutputPathError", "atomic_write", "atomic_write_path", "atomic_write_text",
    "check_output_file", "check_output_dir", "stale_temp_files",
]


class OutputPathError(ValueError):
    """An output path that cannot be written: empty, a folder, below a file, not writable."""


def check_output_file(path: str | Path | None, what: str = "output") -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else :class:`OutputPathError`
    naming it (an empty path, an existing folder, a parent that is a file)."""
    if path is None or str(path).strip() == "":
        raise OutputPathError(f"{what}: empty path; give a file name")
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what}: {p} is a folder; give a file name inside it")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{what}: {parent} is a file, not a folder")
            break
    return p


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) and prove it writable with a probe file, or raise
    :class:`OutputPathError` naming it."""
    if str(path).strip() == "":
        raise OutputPathError(f"{what}: empty path")
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise OutputPathError(f"{what}: {q} is a file, not a folder")
            break
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputPathError(f"{what}: cannot write to {p} ({e.strerror or e})") from e
    return p


def _file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` creates files with."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other portable way to read it
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable (POSIX); not possible everywhere
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stale_temp_files(folder: str | Path, name: str) -> list[Path]:
    """Temporary files of ``folder/name`` left by a writer that was killed mid-write."""
    return sorted(Path(folder).glob(f".{name}.*.tmp"))


def atomic_write_path(path: str | Path, write: Callable[[str], None]) -> Path:
    """Atomically create ``path`` with ``write(tmp_path)`` (for libraries that write to a path
    themselves: safetensors, matplotlib, ONNX)."""
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Atomically create ``path`` with ``write(binary file object)``."""

    def through_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()

    return atomic_write_path(path, through_file)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically create ``path`` holding ``text`` (UTF-8)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))

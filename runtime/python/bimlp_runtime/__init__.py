"""bimlp_runtime: the standalone 1-bit BiMLP runtime (numpy only).

>>> model = bimlp_runtime.load("bimlp_s.bimlp", threads=2)
>>> logits = model.run(images)          # float32 (B, C, H, W) -> (B, classes)

The network runs in one native call (C++ kernels for AVX-512 VPOPCNTDQ, AVX2 or portable C++,
chosen when the model is loaded; ``BIMLP_ISA=portable|avx2|avx512|neon`` forces one). A loaded model
may be run from several Python threads at once; the GIL is released during a call.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["Model", "Error", "ArtifactError", "load", "from_bytes", "library_path", "__version__"]
__version__ = "0.1.0"

_EINVAL, _EARTIFACT, _ENOMEM = 1, 2, 3


class Error(RuntimeError):
    """A failure reported by the runtime library."""


class ArtifactError(Error, ValueError):
    """A missing, truncated, tampered or incompatible ``.bimlp`` artifact."""


def library_path() -> Path:
    """The shared library: ``$BIMLP_RUNTIME_LIBRARY`` if set (e.g. an AddressSanitizer build),
    else the one installed in this package."""
    env = os.environ.get("BIMLP_RUNTIME_LIBRARY")
    return Path(env) if env else Path(__file__).with_name("libbimlp_runtime.so")


def include_dir() -> Path:
    """Directory of ``bimlp_runtime.h`` (for compiling C programs against the library)."""
    return Path(__file__).with_name("include")


_lib = None
_lib_lock = threading.Lock()
_i64x4 = ctypes.c_int64 * 4
_i64x2 = ctypes.c_int64 * 2


def _load_library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not path.is_file():
            raise ImportError(f"bimlp_runtime: shared library {path} is missing (broken install?)")
        lib = ctypes.CDLL(str(path))
        P, c_int, c_size, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
        f32p, f64p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double)
        i64p = ctypes.POINTER(ctypes.c_int64)
        sigs = {
            "bimlp_load": (c_int, [c_char_p, c_int, ctypes.POINTER(P)]),
            "bimlp_load_buffer": (c_int, [ctypes.c_char_p, c_size, c_char_p, c_int, ctypes.POINTER(P)]),
            "bimlp_free": (None, [P]),
            "bimlp_in_channels": (c_int, [P]),
            "bimlp_num_classes": (c_int, [P]),
            "bimlp_output_shape": (c_int, [P, i64p, i64p]),
            "bimlp_run": (c_int, [P, f32p, i64p, f32p, c_size]),
            "bimlp_run_profiled": (c_int, [P, f32p, i64p, f32p, c_size, f64p, c_size]),
            "bimlp_num_steps": (c_int, [P]),
            "bimlp_step_name": (c_char_p, [P, c_int]),
            "bimlp_threads": (c_int, [P]),
            "bimlp_set_threads": (c_int, [P, c_int]),
            "bimlp_isa": (c_char_p, [P]),
            "bimlp_last_error": (c_char_p, []),
            "bimlp_version": (c_char_p, []),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _lib = lib
        return lib


def _raise(rc: int, lib: ctypes.CDLL) -> None:
    msg = (lib.bimlp_last_error() or b"").decode("utf-8", "replace")
    if rc == _EARTIFACT:
        raise ArtifactError(msg)
    if rc == _EINVAL:
        raise ValueError(msg)
    if rc == _ENOMEM:
        raise MemoryError(msg)
    raise Error(msg or f"runtime error {rc}")


def _threads_arg(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1 or threads > 256:
        raise ValueError(f"threads must be None or an integer in [1, 256], got {threads!r}")
    return int(threads)


class Model:
    """A loaded artifact. Use :func:`load` or :func:`from_bytes` to create one."""

    def __init__(self, handle: int, name: str) -> None:
        self._lib = _load_library()
        self._handle = ctypes.c_void_p(handle)
        self.name = name
        self._cv = threading.Condition()
        self._active = 0
        self.in_channels = int(self._lib.bimlp_in_channels(self._handle))
        self.num_classes = int(self._lib.bimlp_num_classes(self._handle))
        self.isa = self._lib.bimlp_isa(self._handle).decode()
        n = self._lib.bimlp_num_steps(self._handle)
        self.step_names = [self._lib.bimlp_step_name(self._handle, i).decode() for i in range(n)]

    # lifetime: close() waits for calls in flight, later calls raise
    def _enter(self) -> ctypes.c_void_p:
        with self._cv:
            if self._handle is None:
                raise ValueError(f"{self.name}: the model is closed")
            self._active += 1
            return self._handle

    def _exit(self) -> None:
        with self._cv:
            self._active -= 1
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            while self._active:
                self._cv.wait()
            if self._handle is not None:
                self._lib.bimlp_free(self._handle)
                self._handle = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_handle", None) is not None and not self._active:
                self._lib.bimlp_free(self._handle)
                self._handle = None
        except Exception:
            pass

    @property
    def threads(self) -> int:
        h = self._enter()
        try:
            return int(self._lib.bimlp_threads(h))
        finally:
            self._exit()

    @threads.setter
    def threads(self, value: int | None) -> None:
        n = _threads_arg(value)
        h = self._enter()
        try:
            self._lib.bimlp_set_threads(h, n)
        finally:
            self._exit()

    def _input(self, x) -> tuple[np.ndarray, ctypes.Array]:
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected a (B, {self.in_channels}, H, W) array, got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{self.name}: expected float32 images, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)  # no copy when already float32 C-contiguous
        return x, _i64x4(*x.shape)

    def output_shape(self, input_shape) -> tuple[int, int]:
        """(B, classes) for an input shape; ValueError for shapes the model cannot take."""
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 4:
            raise ValueError(f"{self.name}: input shape needs 4 entries, got {shape}")
        out = _i64x2()
        h = self._enter()
        try:
            rc = self._lib.bimlp_output_shape(h, _i64x4(*shape), out)
        finally:
            self._exit()
        if rc:
            _raise(rc, self._lib)
        return int(out[0]), int(out[1])

    def run(self, x, out: np.ndarray | None = None) -> np.ndarray:
        """Logits (B, classes) float32 of images x (B, C, H, W) (float32 is used without a copy)."""
        x, shape = self._input(x)
        out = self._output(x.shape[0], out)
        h = self._enter()
        try:
            rc = self._lib.bimlp_run(h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), shape,
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size)
        finally:
            self._exit()
        if rc:
            _raise(rc, self._lib)
        return out

    __call__ = run

    def profile(self, x, repeats: int = 1) -> tuple[np.ndarray, dict[str, float]]:
        """(logits, seconds per step summed over ``repeats`` calls), steps in execution order."""
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
        x, shape = self._input(x)
        out = self._output(x.shape[0], None)
        times = np.zeros(len(self.step_names), dtype=np.float64)
        h = self._enter()
        try:
            for _ in range(repeats):
                rc = self._lib.bimlp_run_profiled(
                    h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), shape,
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size,
                    times.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), times.size)
                if rc:
                    _raise(rc, self._lib)
        finally:
            self._exit()
        return out, dict(zip(self.step_names, times.tolist(), strict=True))

    def _output(self, batch: int, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            return np.empty((batch, self.num_classes), dtype=np.float32)
        if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (batch, self.num_classes)
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"{self.name}: out must be a writable C-contiguous float32 array of shape "
                             f"{(batch, self.num_classes)}")
        return out

    def __repr__(self) -> str:
        return (f"bimlp_runtime.Model({self.name!r}, in_channels={self.in_channels}, "
                f"num_classes={self.num_classes}, isa={self.isa!r}, threads={self.threads})")


def load(path: str | os.PathLike, threads: int | None = None) -> Model:
    """Load a ``.bimlp`` artifact. ``threads``: threads per call (default: all cores).

    Raises:
        ArtifactError: missing, truncated, tampered or incompatible file (the message names it).
        ValueError: bad arguments, or an unknown ``BIMLP_ISA``.
    """
    lib = _load_library()
    n = _threads_arg(threads)
    p = os.fspath(path)
    if not isinstance(p, str):
        p = os.fsdecode(p)
    handle = ctypes.c_void_p()
    rc = lib.bimlp_load(os.fsencode(p), n, ctypes.byref(handle))
    if rc:
        _raise(rc, lib)
    return Model(handle.value, p)


def from_bytes(data: bytes, name: str = "<bytes>", threads: int | None = None) -> Model:
    """Load an artifact from memory (e.g. ``safetensors.torch.save`` output)."""
    lib = _load_library()
    n = _threads_arg(threads)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    buf = bytes(data)
    handle = ctypes.c_void_p()
    rc = lib.bimlp_load_buffer(buf, len(buf), name.encode(), n, ctypes.byref(handle))
    if rc:
        _raise(rc, lib)
    return Model(handle.value, name)

"""Native kernels of the packed engine: built from ``bimlp_kernels.cpp`` on first use.

The extension is compiled with ``torch.utils.cpp_extension.load`` into PyTorch's extension cache
(``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``), so the first call takes
about a minute and later processes load the cached library. On Linux, where ATen's thread pool is
OpenMP, it is built with ``-fopenmp`` and shares torch's OpenMP runtime, so its kernels use
``torch.get_num_threads()`` threads; a compiler without OpenMP gives single-threaded kernels and a
warning. The instruction set (AVX-512
VPOPCNTDQ, AVX2 or portable C++) is chosen at run time from the CPU; ``BIMLP_ISA=avx2|portable``
forces a lesser one. ``BIMLP_NATIVE=0`` skips the extension and uses the pure-PyTorch path.
If the build fails, :func:`native` returns ``None`` and warns once with the reason.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["native", "native_error", "ISA_NAMES"]

ISA_NAMES = {0: "portable", 1: "avx2", 2: "avx512-vpopcntdq"}
_SOURCE = Path(__file__).with_name("bimlp_kernels.cpp")
_state: dict[str, object] = {}


def native() -> ModuleType | None:
    """The compiled kernel module, building it on first use; ``None`` if it cannot be built."""
    if "module" in _state:
        return _state["module"]  # type: ignore[return-value]
    module, error = None, None
    if os.environ.get("BIMLP_NATIVE", "1") == "0":
        error = "disabled by BIMLP_NATIVE=0"
    else:
        try:
            module = _build(openmp=_torch_uses_openmp())
        except Exception as e:  # compiler missing, headers missing, ninja missing, ...
            error = _first_error(e)
            if _torch_uses_openmp():
                try:  # a compiler without OpenMP: single-threaded kernels are still fast kernels
                    module = _build(openmp=False)
                    warnings.warn(
                        f"bimlp: native kernels built without OpenMP ({error}); they run on one "
                        "thread", RuntimeWarning, stacklevel=2)
                    error = None
                except Exception:
                    pass
    if error is not None:
        warnings.warn(
            f"bimlp: native 1-bit kernels unavailable ({error}); the packed engine falls back to "
            "its pure-PyTorch path (correct, but not faster than float)",
            RuntimeWarning,
            stacklevel=2,
        )
    _state["module"], _state["error"] = module, error
    return module


def _torch_uses_openmp() -> bool:
    """Whether ATen's thread pool is OpenMP (then the kernels must be compiled with -fopenmp, or
    every ``at::parallel_for`` in them silently runs on one thread)."""
    import torch

    return bool(getattr(torch._C, "has_openmp", False)) and sys.platform.startswith("linux")


def _build(openmp: bool) -> ModuleType:
    # -fopenmp links libgomp.so.1 by soname, which resolves to the copy torch has already loaded,
    # so the kernels share torch's OpenMP runtime and thread count (torch.set_num_threads)
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    omp = ["-fopenmp"] if openmp else []
    return _import_load()(
        name="bimlp_kernels" if openmp else "bimlp_kernels_serial",
        sources=[str(_SOURCE)],
        extra_cflags=flags + omp,
        extra_ldflags=omp,
        verbose=False,
    )


def _import_load():
    """``torch.utils.cpp_extension.load``, without its CUDA_HOME notice on CPU-only machines."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils.cpp_extension import load
    finally:
        logger.setLevel(level)
    return load


def _first_error(e: Exception) -> str:
    """The most telling line of a build failure (the first compiler error, else the last line)."""
    text = f"{e}\n{getattr(e, 'output', '') or ''}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln:
            return f"{type(e).__name__}: {ln}"
    return f"{type(e).__name__}: {lines[-1] if lines else e!r}"


def native_error() -> str | None:
    """Why the extension is unavailable (``None`` if it loaded or was not tried yet)."""
    return _state.get("error")  # type: ignore[return-value]

"""Single kernels of one instruction set, for tests (not a stable API): each takes float arrays
and uses their signs (x < 0 -> -1, else +1) where the kernel is binary."""

from __future__ import annotations

import ctypes

import numpy as np

from . import _load_library, _raise

ISAS = ("portable", "avx2", "avx512", "neon")
_f32p = ctypes.POINTER(ctypes.c_float)


def _lib():
    lib = _load_library()
    if not getattr(lib, "_testing_ready", False):
        c_int, c_char_p, i64, u64p = ctypes.c_int, ctypes.c_char_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_uint64)
        lib.bimlp_testing_bgemm.argtypes = [c_char_p, _f32p, i64, i64, _f32p, i64, _f32p]
        lib.bimlp_testing_tgemm.argtypes = [c_char_p, _f32p, i64, i64, _f32p, i64, _f32p]
        lib.bimlp_testing_token_conv.argtypes = [c_char_p, _f32p, i64, i64, i64, i64, _f32p, i64, c_int, c_int, _f32p]
        lib.bimlp_testing_token_conv_f32.argtypes = lib.bimlp_testing_token_conv.argtypes
        lib.bimlp_testing_bconv3x3.argtypes = [c_char_p, _f32p, i64, i64, i64, i64, _f32p, i64, c_int, c_int, _f32p]
        lib.bimlp_testing_sgemm.argtypes = [c_char_p, _f32p, i64, i64, _f32p, i64, _f32p]
        lib.bimlp_testing_pack.argtypes = [c_char_p, _f32p, i64, i64, _f32p, u64p]
        lib.bimlp_testing_isa_supported.argtypes = [c_char_p]
        lib.bimlp_testing_unit.argtypes = [c_char_p, c_int, _f32p, i64, i64, _f32p, i64, _f32p, c_int, _f32p, i64,
                                           c_int, _f32p, u64p, ctypes.POINTER(c_int)]
        for name in ("bgemm", "tgemm", "token_conv", "token_conv_f32", "bconv3x3", "sgemm", "pack", "isa_supported",
                     "unit"):
            getattr(lib, "bimlp_testing_" + name).restype = c_int
        lib._testing_ready = True
    return lib


def _f(a) -> tuple[np.ndarray, ctypes.POINTER]:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a, a.ctypes.data_as(_f32p)


def supported_isas() -> list[str]:
    return [i for i in ISAS if _lib().bimlp_testing_isa_supported(i.encode())]


def _check(rc: int) -> None:
    if rc:
        _raise(rc, _lib())


def bgemm(isa: str, x, w) -> np.ndarray:
    """sign(x) (M, K) @ sign(w)^T (N, K) as float32."""
    (x, xp), (w, wp) = _f(x), _f(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"bgemm: shapes {x.shape} and {w.shape}")
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    _check(_lib().bimlp_testing_bgemm(isa.encode(), xp, *x.shape, wp, w.shape[0], out.ctypes.data_as(_f32p)))
    return out


def unit(isa: str, x, w, params, res=None, res_kind: int = 0, scale: bool = False,
         fused: bool = True) -> tuple[np.ndarray, np.ndarray, bool]:
    """A binary 1x1 unit and its epilogue (see ``bimlp_testing_unit``): ``(out, bits, used_fused)``.

    ``params`` (9, N): alpha, beta, slope, shift, res_scale, res_bias, res_slope, res_shift and
    the packing threshold; ``res`` (M, N) for ``res_kind`` 1 (identity), (M, Cr) with N % Cr == 0
    for 2 (tile)."""
    (x, xp), (w, wp), (p, pp) = _f(x), _f(w), _f(params)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or p.shape != (9, w.shape[0]):
        raise ValueError(f"unit: shapes {x.shape}, {w.shape} and {p.shape}")
    M, N = x.shape[0], w.shape[0]
    r, rp, rc = None, None, 0
    if res_kind:
        r, rp = _f(res)
        if r.ndim != 2 or r.shape[0] != M:
            raise ValueError(f"unit: shortcut shape {r.shape} for {M} rows")
        rc = r.shape[1]
    out = np.empty((M, N), dtype=np.float32)
    bits = np.empty((M, (N + 63) // 64), dtype=np.uint64)
    used = ctypes.c_int(0)
    _check(_lib().bimlp_testing_unit(isa.encode(), int(fused), xp, *x.shape, wp, N, pp, res_kind, rp, rc,
                                     int(scale), out.ctypes.data_as(_f32p),
                                     bits.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)), ctypes.byref(used)))
    return out, bits, bool(used.value)


def tgemm(isa: str, x, w) -> np.ndarray:
    """round(clip(x, -1, 1)) (M, K) @ sign(w)^T (N, K) as float32 (ternary activations)."""
    (x, xp), (w, wp) = _f(x), _f(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"tgemm: shapes {x.shape} and {w.shape}")
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    _check(_lib().bimlp_testing_tgemm(isa.encode(), xp, *x.shape, wp, w.shape[0], out.ctypes.data_as(_f32p)))
    return out


def token_conv(isa: str, x, w, axis: int, pairs: int, real_taps: bool = False) -> np.ndarray:
    """x (B, H, W, Cs) signs, w (T, Cs) taps -> (B * H * W, Cs / pairs). ``real_taps``: official
    mode's kernel, ternary x (round(clip(x, -1, 1))) against the float taps w."""
    (x, xp), (w, wp) = _f(x), _f(w)
    if x.ndim != 4 or w.ndim != 2 or w.shape[1] != x.shape[3]:
        raise ValueError(f"token_conv: shapes {x.shape} and {w.shape}")
    b, h, wd, cs = x.shape
    out = np.empty((b * h * wd, cs // pairs), dtype=np.float32)
    fn = _lib().bimlp_testing_token_conv_f32 if real_taps else _lib().bimlp_testing_token_conv
    _check(fn(isa.encode(), xp, b, h, wd, cs, wp, w.shape[0], axis, pairs, out.ctypes.data_as(_f32p)))
    return out


def bconv3x3(isa: str, x, w, stride: int, pad_value: int = 1) -> np.ndarray:
    """sign(x) (B, H, W, C) conv sign(w) (N, C, 3, 3), stride 1 or 2, zero padding 1 ->
    (B * Ho * Wo, N); ``pad_value`` is the kernel's padding before its exact correction."""
    (x, xp), (w, wp) = _f(x), _f(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[1:] != (x.shape[3], 3, 3):
        raise ValueError(f"bconv3x3: shapes {x.shape} and {w.shape}")
    b, h, wd, c = x.shape
    ho, wo = (h + 1) // 2 if stride == 2 else h, (wd + 1) // 2 if stride == 2 else wd
    out = np.empty((b * ho * wo, w.shape[0]), dtype=np.float32)
    _check(_lib().bimlp_testing_bconv3x3(isa.encode(), xp, b, h, wd, c, wp, w.shape[0], stride, pad_value,
                                         out.ctypes.data_as(_f32p)))
    return out


def sgemm(isa: str, a, w) -> np.ndarray:
    (a, ap), (w, wp) = _f(a), _f(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"sgemm: shapes {a.shape} and {w.shape}")
    out = np.empty((a.shape[0], w.shape[0]), dtype=np.float32)
    _check(_lib().bimlp_testing_sgemm(isa.encode(), ap, *a.shape, wp, w.shape[0], out.ctypes.data_as(_f32p)))
    return out


def pack(isa: str, x, thresh) -> np.ndarray:
    """(M, ceil(C / 64)) uint64 words of x + thresh < 0."""
    (x, xp), (t, tp) = _f(x), _f(thresh)
    if x.ndim != 2 or t.shape != (x.shape[1],):
        raise ValueError(f"pack: shapes {x.shape} and {t.shape}")
    out = np.empty((x.shape[0], (x.shape[1] + 63) // 64), dtype=np.uint64)
    _check(_lib().bimlp_testing_pack(isa.encode(), xp, *x.shape, tp,
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64))))
    return out

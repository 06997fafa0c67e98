"""Model-level numbers of docs/MODEL.md ("Configurations", "Complexity") at 224 x 224, with the
formulas behind them."""

from __future__ import annotations

import pytest

import bimlp

DIMS = (64, 128, 320, 512)
SIDES = (56, 28, 14, 7)  # token grid of each stage at 224


def block_bops(c: int, n: int) -> int:
    """BOPs of one BiMLP block with C channels on N tokens (paper mode).

    PATM: six C->C 1x1 convs, two 2C->C 1x7 / 7x1 convs (groups C: 2 x 7 taps) and the
    re-weighting Mlp(C, C/4, 3C) on one pooled token; channel MLP C->4C->C; 1x7 and 7x1 depthwise.
    """
    patm = 6 * c * c * n + 2 * c * n * 2 * 7 + (c * (c // 4) + (c // 4) * 3 * c)
    mlp = 2 * c * 4 * c * n
    depthwise = 2 * c * n * 7
    return patm + mlp + depthwise


# full-precision MACs: stem 7x7/4, three 1x1 downsample convs before pooling, classifier
STEM = 64 * 56 * 56 * 3 * 7 * 7
DOWNSAMPLE = 128 * 56 * 56 * 64 + 320 * 28 * 28 * 128 + 512 * 14 * 14 * 320
HEAD = 512 * 1000
FLOPS = STEM + DOWNSAMPLE + HEAD


def expected_bops(depths: tuple[int, ...]) -> int:
    return sum(d * block_bops(c, s * s) for d, c, s in zip(depths, DIMS, SIDES, strict=True))


@pytest.fixture(scope="module")
def profiles():
    cache = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = bimlp.profile(bimlp.create_model(name, **kwargs), (3, 224, 224))
        return cache[key]

    return get


@pytest.mark.parametrize(
    "name, depths, bops, flops, ops, params, mb_packed, mb_fp32",
    [
        ("bimlp_s", (2, 2, 4, 2), 2.242e9, 1.199e8, 1.550e8, 15.84e6, 6.3, 63),
        ("bimlp_m", (2, 3, 10, 3), 4.309e9, 1.199e8, 1.873e8, 29.69e6, 9.3, 119),
    ],
)
def test_bimlp_complexity_at_224(
    profiles, name, depths, bops, flops, ops, params, mb_packed, mb_fp32
):
    r = profiles(name)
    assert r.bops == pytest.approx(bops, rel=5e-3)
    assert r.flops == pytest.approx(flops, rel=5e-3)
    assert r.ops == pytest.approx(ops, rel=5e-3)
    # the same numbers, exactly, from the architecture
    assert r.bops == expected_bops(depths)
    assert r.flops == FLOPS
    assert r.params == pytest.approx(params, abs=5e3)  # 15.84 M / 29.69 M
    assert r.size_bytes_packed / 1e6 == pytest.approx(mb_packed, abs=0.05)
    assert r.size_bytes_fp32 / 1e6 == pytest.approx(mb_fp32, abs=0.5)
    stages = {s.name: s for s in r.stages}
    assert stages["patch_embed"].flops == STEM
    assert sum(stages[f"network.{i}"].flops for i in (1, 3, 5)) == DOWNSAMPLE
    assert stages["head"].flops == HEAD


def test_official_mode_has_no_bops(profiles):
    paper, official = profiles("bimlp_s"), profiles("bimlp_s", mode="official")
    assert official.bops == 0
    assert official.flops == paper.macs == official.macs  # ternary activations: all FLOPs
    # depthwise sfc_h / sfc_w weights (C x 7 each) are effectively full precision there
    depthwise = sum(d * 2 * c * 7 for d, c in zip((2, 2, 4, 2), DIMS, strict=True))
    assert paper.binary_params - official.binary_params == depthwise
    assert any("ternary" in note for note in official.notes)


@pytest.mark.parametrize(
    "name, params, macs", [("wavemlp_t", 17.2e6, 2.46e9), ("wavemlp_s", 30.7e6, 4.52e9)]
)
def test_wavemlp_params_and_macs_at_224(profiles, name, params, macs):
    r = profiles(name)
    assert r.params == pytest.approx(params, rel=5e-3)
    assert r.macs == pytest.approx(macs, rel=5e-3)
    assert (r.bops, r.binary_params) == (0, 0)
    assert r.size_bytes_packed == r.size_bytes_fp32

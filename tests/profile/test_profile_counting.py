"""The profiler on small hand-built networks: every expected count is written as arithmetic,
``MACs = output elements x in / groups x kh x kw``, memory = ``bits x count``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bimlp
from bimlp.layers import BinaryConv2d, get_quantizer
from bimlp.profile.counting import count_macs, input_precision, weight_precision
from bimlp.profile.report import _stage_split, plot_ops
from bimlp.profile.trace import stage_of


def binary(cin, cout, kernel=1, **kw) -> BinaryConv2d:
    """A paper-mode binary conv: 1-bit inputs, 1-bit weights."""
    return BinaryConv2d(
        cin, cout, kernel, input_quantizer="approx_sign", weight_quantizer="scaled_sign", **kw
    )


def only_row(result):
    (row,) = [r for r in result.layers if r.computes]
    return row


# geometry: every stride, padding, dilation and grouping -------------------------------------
CONV_CASES = {
    # name: (conv arguments, input (C, H, W), expected MACs)
    "3x3 same": (dict(cin=8, cout=16, kernel=3, padding=1), (8, 10, 10), 16 * 10 * 10 * 8 * 3 * 3),
    "3x3 stride 2 padded": (
        dict(cin=8, cout=16, kernel=3, stride=2, padding=1),
        (8, 10, 10),
        16 * 5 * 5 * 8 * 3 * 3,
    ),  # out (10 + 2 - 3) // 2 + 1 = 5
    "3x3 stride 2 valid, odd input": (
        dict(cin=8, cout=16, kernel=3, stride=2),
        (8, 11, 11),
        16 * 5 * 5 * 8 * 3 * 3,
    ),  # out (11 - 3) // 2 + 1 = 5
    "stride (2, 1)": (
        dict(cin=4, cout=4, kernel=3, stride=(2, 1), padding=1),
        (4, 8, 8),
        4 * 4 * 8 * 4 * 3 * 3,
    ),
    "1x1 stride 4": (dict(cin=6, cout=12, kernel=1, stride=4), (6, 16, 16), 12 * 4 * 4 * 6),
    "grouped 4": (
        dict(cin=8, cout=16, kernel=3, padding=1, groups=4),
        (8, 10, 10),
        16 * 10 * 10 * (8 // 4) * 3 * 3,
    ),
    "depthwise 1x7": (
        dict(cin=8, cout=8, kernel=(1, 7), padding=(0, 3), groups=8),
        (8, 10, 10),
        8 * 10 * 10 * 1 * 1 * 7,
    ),
    "pair 2C->C 7x1 (tfc)": (
        dict(cin=16, cout=8, kernel=(7, 1), padding=(3, 0), groups=8),
        (16, 10, 10),
        8 * 10 * 10 * 2 * 7 * 1,
    ),
    "dilation 2": (
        dict(cin=8, cout=16, kernel=3, padding=2, dilation=2),
        (8, 10, 10),
        16 * 10 * 10 * 8 * 3 * 3,
    ),
    "7x7 stride 4 stem": (
        dict(cin=3, cout=64, kernel=7, stride=4, padding=2),
        (3, 32, 32),
        64 * 8 * 8 * 3 * 7 * 7,
    ),  # out (32 + 4 - 7) // 4 + 1 = 8
}


@pytest.mark.parametrize("case", CONV_CASES, ids=list(CONV_CASES))
def test_float_conv_macs_are_flops(case):
    args, size, macs = CONV_CASES[case]
    a = dict(args)
    conv = nn.Conv2d(a.pop("cin"), a.pop("cout"), a.pop("kernel"), bias=False, **a)
    row = only_row(bimlp.profile(nn.Sequential(conv), size))
    assert (row.macs, row.flops, row.bops) == (macs, macs, 0)
    assert (row.weight_precision, row.input_precision) == (32, 32)


@pytest.mark.parametrize("case", [c for c in CONV_CASES if "dilation" not in c])
def test_binary_conv_macs_are_bops(case):
    args, size, macs = CONV_CASES[case]
    a = dict(args)
    conv = binary(a.pop("cin"), a.pop("cout"), a.pop("kernel"), **a)
    result = bimlp.profile(nn.Sequential(conv), size)
    row = only_row(result)
    assert (row.macs, row.bops, row.flops) == (macs, macs, 0)
    assert result.ops == macs / 64


def test_the_example_of_the_brief():
    result = bimlp.profile(nn.Sequential(binary(8, 16, 3, padding=1)), (8, 10, 10))
    bops = 8 * 16 * 3 * 3 * 10 * 10
    assert (result.bops, result.flops, result.ops) == (bops, 0, bops / 64)
    assert result.layers[0].output_shape == (1, 16, 10, 10)


def test_linear_conv1d_and_transposed_conv():
    assert only_row(bimlp.profile(nn.Sequential(nn.Linear(20, 10)), (20,))).flops == 20 * 10
    # linear over 5 tokens: every token is a matrix-vector product
    assert only_row(bimlp.profile(nn.Sequential(nn.Linear(16, 32)), (5, 16))).flops == 5 * 16 * 32
    # Conv1d, kernel 3, no padding: out length 12 - 3 + 1 = 10
    assert (
        only_row(bimlp.profile(nn.Sequential(nn.Conv1d(4, 6, 3)), (4, 12))).flops == 6 * 10 * 4 * 3
    )
    # transposed: every input element meets out x kh x kw weights
    up = nn.ConvTranspose2d(8, 4, 2, stride=2)
    row = only_row(bimlp.profile(nn.Sequential(up), (8, 5, 5)))
    assert row.flops == 8 * 5 * 5 * 4 * 2 * 2
    assert row.output_shape == (1, 4, 10, 10)
    assert row.params == 8 * 4 * 2 * 2 + 4


def test_rows_describe_each_layer():
    net = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=(2, 1), padding=1),
        binary(8, 8, (1, 7), padding=(0, 3), groups=8),
        nn.Conv2d(8, 8, 7, stride=4, padding=2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 4, 3),
    )
    rows = bimlp.profile(net, (4, 16, 16)).layers
    assert [r.detail for r in rows] == ["4->8 3x3/2x1", "8->8 1x7 g8", "8->8 7x7/4", "64->3"]
    assert [r.kind for r in rows] == ["Conv2d", "BinaryConv2d", "Conv2d", "Linear"]
    assert [r.output_shape for r in rows] == [(1, 8, 8, 16), (1, 8, 8, 16), (1, 8, 2, 4), (1, 3)]


# precision: a BOP needs both operands 1-bit --------------------------------------------------
PRECISION_CASES = [
    # (input quantizer, weight quantizer, kernel, groups, W bits, A bits, bops?, binary weights?)
    ("approx_sign", "scaled_sign", 1, 1, 1, 1, True, True),  # paper mode
    ("approx_sign", "identity", 1, 1, 32, 1, False, False),  # recipe step 1: real weights
    ("identity", "scaled_sign", 1, 1, 1, 32, False, True),  # real inputs, binary weights
    ("ternary_round", "channel_mean_sign", 1, 1, 1, 2, False, True),  # official mode
    ("ternary_round", "channel_mean_sign", (1, 7), 8, 32, 2, False, False),  # official depthwise
    ("approx_sign", "scaled_sign", (1, 7), 8, 1, 1, True, True),  # paper depthwise is binary
]


@pytest.mark.parametrize("qa, qw, kernel, groups, wbits, abits, is_bop, is_binary", PRECISION_CASES)
def test_precision_decides_bops_flops_and_memory(
    qa, qw, kernel, groups, wbits, abits, is_bop, is_binary
):
    padding = (0, 3) if kernel == (1, 7) else 0
    conv = BinaryConv2d(
        8, 8, kernel, padding=padding, groups=groups, input_quantizer=qa, weight_quantizer=qw
    )
    row = only_row(bimlp.profile(nn.Sequential(conv), (8, 6, 6)))
    kh, kw = conv.kernel_size
    macs = 8 * 6 * 6 * (8 // groups) * kh * kw
    weights = 8 * (8 // groups) * kh * kw
    assert (row.weight_precision, row.input_precision) == (wbits, abits)
    assert (row.bops, row.flops) == ((macs, 0) if is_bop else (0, macs))
    assert row.binary_params == (weights if is_binary else 0)
    assert row.memory_bits == (1 if is_binary else 32) * weights


def test_official_mode_notes_say_ternary_macs_are_flops():
    net = nn.Sequential(
        BinaryConv2d(
            8, 8, 1, input_quantizer="ternary_round", weight_quantizer="channel_mean_sign"
        ),
        BinaryConv2d(
            8,
            8,
            (1, 7),
            padding=(0, 3),
            groups=8,
            input_quantizer="ternary_round",
            weight_quantizer="channel_mean_sign",
        ),
    )
    result = bimlp.profile(net, (8, 6, 6))
    assert result.bops == 0 and result.flops == 8 * 6 * 6 * 8 + 8 * 6 * 6 * 7
    text = "\n".join(result.notes)
    assert f"{8 * 6 * 6 * 8:,} MACs in 1 layers with 1-bit weights x 2-bit inputs (ternary" in text
    assert f"{8 * 6 * 6 * 7:,} MACs in 1 layers with 32-bit weights x 2-bit inputs" in text
    assert f"{8 * 7:,} weights stored and counted as 32-bit" in text
    assert "counted as FLOPs" in str(result)


class DeclaredLinear(nn.Linear):
    """Says its precisions with plain attributes -- no quantizer modules, not a BinaryConv2d."""

    input_precision = 1
    weight_precision = 1


class Precision(nn.Module):
    """A bare quantizer: only a ``precision`` attribute, no ``precision_for``."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.precision = bits

    def forward(self, x):
        return x


class QuantizedConv(nn.Conv2d):
    """Carries quantizer modules but no ``input_precision`` / ``weight_precision`` properties."""

    def __init__(self, *args, qa: nn.Module | None, qw: nn.Module | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.input_quantizer = qa
        self.weight_quantizer = qw


def test_precision_protocol_is_read_from_attributes_not_types():
    row = only_row(bimlp.profile(nn.Sequential(DeclaredLinear(64, 10, bias=False)), (64,)))
    assert (row.bops, row.binary_params, row.memory_bits) == (64 * 10, 64 * 10, 1 * 64 * 10)

    conv = QuantizedConv(4, 4, 3, padding=1, bias=False, qa=Precision(1), qw=Precision(1))
    assert (input_precision(conv), weight_precision(conv)) == (1, 1)
    assert only_row(bimlp.profile(nn.Sequential(conv), (4, 5, 5))).bops == 4 * 5 * 5 * 4 * 3 * 3
    conv = QuantizedConv(4, 4, 3, padding=1, bias=False, qa=Precision(1), qw=None)  # None: float
    assert (input_precision(conv), weight_precision(conv)) == (1, 32)
    assert only_row(bimlp.profile(nn.Sequential(conv), (4, 5, 5))).flops == 4 * 5 * 5 * 4 * 3 * 3


def test_weight_precision_asks_the_quantizer_about_the_weight_shape():
    # channel_mean_sign is binary, except for kernels with one input channel per group
    qa, qw = get_quantizer("ternary_round"), get_quantizer("channel_mean_sign")
    pointwise = QuantizedConv(8, 8, 1, bias=False, qa=qa, qw=qw)
    depthwise = QuantizedConv(8, 8, (1, 7), padding=(0, 3), groups=8, bias=False, qa=qa, qw=qw)
    assert (weight_precision(pointwise), input_precision(pointwise)) == (1, 2)
    assert (weight_precision(depthwise), input_precision(depthwise)) == (32, 2)
    rows = bimlp.profile(nn.Sequential(pointwise, depthwise), (8, 6, 6)).layers
    assert [r.binary_params for r in rows] == [8 * 8, 0]
    assert [r.memory_bits for r in rows] == [1 * 8 * 8, 32 * 8 * 7]


class Matmul(nn.Module):
    """Not a conv or linear layer, but it counts its own MACs."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 4))
        self.input_precision = self.weight_precision = 1

    def forward(self, x):
        return x @ self.weight.t()

    def profile_macs(self, inputs, output) -> int:
        return output.numel() * self.weight.shape[1]


def test_modules_can_count_their_own_macs():
    row = only_row(bimlp.profile(nn.Sequential(Matmul()), (3, 4)))
    assert (row.bops, row.binary_params) == (3 * 6 * 4, 6 * 4)
    assert count_macs(nn.ReLU(), (torch.ones(3),), torch.ones(3)) == 0


# parameters, memory, sizes ---------------------------------------------------------------------
def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 0: float, with bias
        nn.BatchNorm2d(8),  # 1
        binary(8, 16),  # 2: 1x1 binary
        nn.AdaptiveAvgPool2d(1),  # 3: no parameters, no MACs: no row
        nn.Flatten(),  # 4
        nn.Linear(16, 10),  # 5
    )


def test_parameters_memory_and_sizes_of_a_small_net():
    result = bimlp.profile(small_net(), (3, 10, 10))
    assert [r.name for r in result.layers] == ["0", "1", "2", "5"]
    conv, norm, bconv, fc = 8 * 3 * 3 * 3 + 8, 2 * 8, 16 * 8, 16 * 10 + 10
    assert result.params == conv + norm + bconv + fc
    assert result.binary_params == bconv
    assert result.fp_params == conv + norm + fc
    assert result.buffers == 2 * 8  # running mean and variance; num_batches_tracked is an int
    bits = 32 * conv + 32 * norm + 1 * bconv + 32 * fc
    assert result.memory_bits == bits
    assert result.size_bytes_fp32 == 4 * (conv + norm + bconv + fc)
    assert result.size_bytes_packed == (bits + 7) // 8
    assert result.compression == pytest.approx(4 * (conv + norm + bconv + fc) / ((bits + 7) // 8))
    flops = 8 * 10 * 10 * 3 * 3 * 3 + 16 * 10
    bops = 16 * 10 * 10 * 8
    assert (result.flops, result.bops, result.macs) == (flops, bops, flops + bops)
    assert result.ops == flops + bops / 64
    norm_row = result.layers[1]
    assert (norm_row.weight_precision, norm_row.input_precision, norm_row.macs) == (32, None, 0)
    assert result.precision_breakdown() == {(32, 32): (2, flops), (1, 1): (1, bops)}


class Reuse(nn.Module):
    """One conv called twice, two linears sharing a weight, and one module never called."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.fc1 = nn.Linear(4, 4, bias=False)
        self.fc2 = nn.Linear(4, 4, bias=False)
        self.fc2.weight = self.fc1.weight
        self.unused = nn.Linear(4, 7)

    def forward(self, x):
        x = self.conv(self.conv(x))
        return self.fc2(self.fc1(x.mean(dim=(2, 3))))


def test_reused_shared_and_unused_modules():
    result = bimlp.profile(Reuse(), (4, 6, 6))
    rows = {r.name: r for r in result.layers}
    assert rows["conv"].calls == 2 and rows["conv"].macs == 2 * (4 * 6 * 6 * 4 * 3 * 3)
    assert rows["fc1"].params == 4 * 4 and rows["fc2"].params == 0  # the shared weight counts once
    assert rows["fc2"].macs == 4 * 4
    assert rows["unused"].params == 4 * 7 + 7
    assert (rows["unused"].calls, rows["unused"].macs, rows["unused"].output_shape) == (0, 0, None)
    assert result.params == 4 * 4 * 3 * 3 + 4 * 4 + 4 * 7 + 7
    notes = "\n".join(result.notes)
    assert f"1 modules with {4 * 7 + 7:,} parameters did not run" in notes
    assert "1 modules ran more than once" in notes


def test_profiling_restores_training_flags_and_does_not_touch_statistics():
    net = small_net().train()
    net[1].eval()
    before = {name: m.training for name, m in net.named_modules()}
    stats = net[1].running_mean.clone()
    bimlp.profile(net, (3, 10, 10))
    assert {name: m.training for name, m in net.named_modules()} == before
    assert torch.equal(net[1].running_mean, stats)


# stages --------------------------------------------------------------------------------------
class Staged(nn.Module):
    """Names like BiMLP's: stem, a flat ``network`` list, norm, head, and a root parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.network = nn.ModuleList(
            [
                nn.Sequential(binary(8, 8), binary(8, 8, 3, padding=1)),
                nn.Conv2d(8, 16, 1),
            ]
        )
        self.norm = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x) * self.scale
        for layer in self.network:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=(2, 3)))


def test_stages_follow_module_names():
    model = Staged()
    result = bimlp.profile(model, (3, 16, 16))
    stages = {s.name: s for s in result.stages}
    assert list(stages) == ["(root)", "stem", "network.0", "network.1", "norm", "head"]
    assert stages["(root)"].params == 1
    assert stages["stem"].flops == 8 * 4 * 4 * 3 * 4 * 4
    assert stages["network.0"].bops == 8 * 4 * 4 * 8 + 8 * 4 * 4 * 8 * 3 * 3
    assert stages["network.0"].contents == "2 x BinaryConv2d"
    assert stages["network.0"].binary_params == 8 * 8 + 8 * 8 * 3 * 3
    assert stages["network.1"].flops == 16 * 4 * 4 * 8
    assert stages["network.1"].output_shape == (1, 16, 4, 4)
    assert stages["head"].flops == 16 * 5
    for attr in ("params", "bops", "flops", "memory_bits"):
        assert sum(getattr(s, attr) for s in result.stages) == getattr(result, attr)
    assert stage_of("network.0.1.weight_quantizer", model) == "network.0"
    assert stage_of("norm", model) == "norm"
    assert [s.name for s in bimlp.profile(small_net(), (3, 10, 10)).stages] == ["0", "1", "2", "5"]


def test_report_and_dict_carry_the_same_numbers():
    result = bimlp.profile(Staged(), (3, 16, 16), name="staged")
    text = str(result)
    assert text.startswith("staged at input 3x16x16")
    assert f"BOPs {result.bops:,} + FLOPs {result.flops:,}" in text
    assert f"OPs         {result.ops:.3e}  (FLOPs + BOPs / 64)" in text
    assert "network.0.1" in text and "norm " not in result.format().split("stages")[0]
    assert "norm " in result.format(all_layers=True).split("stages")[0]
    d = result.to_dict()
    for key in ("params", "binary_params", "bops", "flops", "size_bytes_fp32", "size_bytes_packed"):
        assert isinstance(d[key], int) and d[key] == getattr(result, key)
    assert d["ops"] == result.ops and isinstance(d["ops"], float)
    assert sum(row["bops"] for row in d["layers"]) == d["bops"]
    assert [s["name"] for s in d["stages"]] == [s.name for s in result.stages]


def test_chart_splits_full_precision_low_bit_flops_and_bops(tmp_path):
    net = nn.Sequential(
        nn.Conv2d(3, 8, 1),  # float x float
        BinaryConv2d(
            8, 8, 1, input_quantizer="ternary_round", weight_quantizer="channel_mean_sign"
        ),
        binary(8, 8),  # 1-bit x 1-bit
    )
    result = bimlp.profile(net, (3, 4, 4))
    m = 1e6  # the chart is in millions
    assert _stage_split(result) == [
        (8 * 4 * 4 * 3 / m, 0.0, 0.0),
        (0.0, 8 * 4 * 4 * 8 / m, 0.0),
        (0.0, 0.0, 8 * 4 * 4 * 8 / 64 / m),
    ]
    path = plot_ops(result, tmp_path / "chart" / "ops.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

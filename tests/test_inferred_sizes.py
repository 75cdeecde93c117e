"""Sizes left out (design.md §1.1): in_channels, in_features and num_features come from the
incoming shape, as PyTorch's LazyConv2d, LazyLinear and LazyBatchNorm2d take them."""

from __future__ import annotations

import pytest

import netspec

SPEC = """\
input: {shape: [3, 16, 16]}
layers:
  - Conv2d: {out_channels: 8, kernel_size: 3, bias: false}
  - BatchNorm2d
  - ReLU
  - Flatten
  - Linear: {out_features: 10}
"""


def test_left_out_sizes_are_taken_from_the_shapes_and_reported():
    spec = netspec.loads(SPEC)
    assert [row.inferred for row in netspec.infer(spec).rows] == [
        {"in_channels": 3},
        {"num_features": 8},
        {},
        {},
        {"in_features": 8 * 14 * 14},
    ]
    assert spec.layers[0].in_channels == 3 and spec.layers[4].in_features == 1568
    shapes = {k: v.shape for k, v in netspec.compile(spec).state_dict().items()}
    assert shapes["0.weight"] == (8, 3, 3, 3) and shapes["4.weight"] == (10, 1568)


def test_the_written_out_spec_is_the_same_network():
    spelled = SPEC.replace("out_channels: 8,", "in_channels: 3, out_channels: 8,")
    spelled = spelled.replace("- BatchNorm2d", "- BatchNorm2d: {num_features: 8}")
    spelled = spelled.replace("{out_features: 10}", "{in_features: 1568, out_features: 10}")
    assert netspec.loads(SPEC).fingerprint() == netspec.loads(spelled).fingerprint()


def test_a_given_size_is_still_checked():
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(SPEC.replace("{out_features: 10}", "{in_features: 100, out_features: 10}"))
    (d,) = info.value.errors
    assert d.code == "features" and d.hint.startswith("set in_features: 1568")


def test_inferred_channels_must_divide_by_groups():
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(SPEC.replace("bias: false", "bias: false, groups: 2"))
    assert [(d.line, d.code) for d in info.value.errors] == [(3, "groups")]
    assert "the input has 3 channels, groups=2" in info.value.errors[0].message


def test_the_lazy_modules_of_pytorch_make_the_same_parameters():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(
        torch.nn.LazyConv2d(8, 3, bias=False),
        torch.nn.LazyBatchNorm2d(),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(10),
    )
    model(torch.zeros(2, 3, 16, 16))
    ours = netspec.compile(netspec.loads(SPEC)).state_dict()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ours.items()
    }

"""Hostile but well-formed specs (issue 9): values at the edges of int64, sizes that are legal
and degenerate, and random mutations of the example specs. Whatever a spec holds, netspec
answers with its own errors, through check, compile and a training step, never a traceback."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec.frontend.source import parse
from netspec.frontend.training_memory import training_memory
from netspec.training.bench import bench

BIG = 2**63 - 1  # the largest int64: PyTorch keeps every int argument in one


def train_step(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Output and input gradient of one forward/backward in training mode, float64."""
    spec = netspec.loads(text)
    net = netspec.compile(spec, dtype="float64", seed=0).train()
    x = np.random.default_rng(0).standard_normal((2, *spec.input.shape))
    y = net(x)
    return y, net.backward(np.ones_like(y))


IMAGE = "input: {shape: [2, 8, 8]}\nlayers:\n  - "


@pytest.mark.parametrize(
    "layer",
    [
        "Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 3, stride: STRIDE}",
        "Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 3, stride: [1, STRIDE]}",
        "Conv2d: {in_channels: 2, out_channels: 2, kernel_size: 3, stride: STRIDE, groups: 2}",
        "MaxPool2d: {kernel_size: 2, stride: STRIDE}",
        "MaxPool2d: {kernel_size: 2, stride: [STRIDE, 2], ceil_mode: true}",
        "AvgPool2d: {kernel_size: 3, stride: STRIDE, padding: 1, ceil_mode: true}",
    ],
)
def test_a_stride_as_large_as_int64_computes_what_any_stride_past_the_input_does(layer):
    huge, modest = (train_step(IMAGE + layer.replace("STRIDE", str(s))) for s in (BIG, 50))
    for a, b in zip(huge, modest, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ("Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 3, stride: 2**63}", "stride"),
        ("Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 3, padding: 2**63}", "padding"),
        ("MaxPool2d: {kernel_size: 2, dilation: [1, 2**63]}", "dilation"),
        ("Softmax: {dim: -2**63-1}", "dim"),
    ],
)
def test_an_int_beyond_int64_is_a_located_error(layer, field):
    text = IMAGE + layer.replace("-2**63-1", str(-(2**63) - 1)).replace("2**63", str(2**63))
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    (d,) = info.value.diagnostics
    assert d.file == "m.yaml" and d.line == 3
    assert d.message.startswith(field) and "922337203685477580" in d.message


def test_an_input_dimension_beyond_int64_is_a_located_error():
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(f"input: {{shape: [{2**63}]}}\nlayers: [ReLU]\n", source="m.yaml")
    (d,) = info.value.diagnostics
    assert (d.line, d.col) == (1, 17) and "shape[0]" in d.message


def test_linear_with_no_outputs_trains_as_in_pytorch():
    y, gx = train_step(
        "input: {shape: [8]}\nlayers:\n  - Linear: {in_features: 8, out_features: 0}\n"
    )
    assert y.shape == (2, 0)
    np.testing.assert_array_equal(gx, np.zeros((2, 8)))


# -- random mutations of every example spec --------------------------------------------------
EXAMPLES = sorted(Path("specs").rglob("*.yaml"))
ODD_VALUES = [
    0, -1, 1, 2, 3, 7, 2**31, BIG, 2**63, -(2**63) - 1, 0.5, -0.0, 1e-300, 1e308,
    math.inf, -math.inf, math.nan, True, False, None, "", "same", "valid", "zeros", "x",
    "input", "0", [], [0], [1], [0, 0], [1, 2], [2, 1, 1], [-1, 3], [None, 2], {}, {"a": 1},
]  # fmt: skip
ODD_INTS = [0, 1, 2, 3, 5, 8, 9, 13, 64, 1000, -1, -2, BIG]
MEMORY_LIMIT = 256 * 2**20  # a mutation may ask for terabytes; train refuses those (above)


def leaves(tree, path=()):
    """Every path into the tree, containers included."""
    yield path
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list)
        else ()
    )
    for key, value in items:
        yield from leaves(value, (*path, key))


@st.composite
def mutated_specs(draw) -> str:
    tree = parse(draw(st.sampled_from(EXAMPLES)).read_text()).data
    for _ in range(draw(st.integers(1, 2))):
        paths = [p for p in leaves(tree) if p]
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        kind = int if isinstance(old, int) and not isinstance(old, bool) else None
        if kind is None and draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        elif kind is int and draw(st.booleans()):  # an int where one belongs: gets past check
            parent[path[-1]] = draw(st.sampled_from(ODD_INTS))
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
    return yaml.safe_dump(tree, sort_keys=False)


def fits_in_memory(spec: netspec.Spec) -> bool:
    return training_memory(spec, spec.graph, 2).on_device < MEMORY_LIMIT


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI does not find new ones by chance
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(mutated_specs())
def test_mutated_examples_raise_only_netspec_errors_through_a_training_step(text):
    try:
        spec = netspec.loads(text)
        if fits_in_memory(spec):
            bench(spec, batch_size=2, repeats=1, warmup=0)
    except netspec.NetspecError:
        pass


# -- what a spec's text may show on a terminal ------------------------------------------------
@pytest.mark.parametrize("char", ["\x1b", "\x07", "\u202e", "\u200b", "\x9b"])
def test_control_and_format_characters_from_a_spec_are_escaped_in_diagnostics(char):
    escaped = repr(char)[1:-1]  # YAML's own escape, inside double quotes; raw C0 is refused
    text = f'input: {{shape: [3]}}\nlayers:\n  - {{name: "a{escaped}", type: "Re{escaped}LU"}}\n'
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    (d,) = [d for d in info.value.diagnostics if d.code == "unknown-layer"]
    shown = d.format(text)
    assert char not in shown and f"unknown layer 'Re{escaped}LU'" in shown
    excerpt, caret = shown.splitlines()[1:3]
    assert excerpt[caret.index("^") :].startswith("type:")  # past the escaped name


@pytest.mark.parametrize("name", ["\u0430", "a\u200b", "b\u00a0"])  # Cyrillic a, zero-width, nbsp
def test_look_alike_names_are_refused(name):
    text = f'input: {{shape: [3]}}\nlayers:\n  - {{type: ReLU, name: "{name}"}}\n'
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    assert [d.code for d in info.value.diagnostics] == ["name"]


def test_a_raw_bidi_override_in_the_source_line_is_escaped_and_the_caret_follows():
    text = 'input: {shape: [3]}\nlayers:\n  - {name: "a\u202eb", type: Rex}\n'
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    (d,) = [d for d in info.value.diagnostics if d.code == "unknown-layer"]
    excerpt, caret = d.format(text).splitlines()[1:3]
    assert "\u202e" not in excerpt and "\\u202e" in excerpt
    assert excerpt[caret.index("^") :].startswith("type:")

"""The spec as a graph: names, inputs, cycles, shape errors (and inference going on past
them), astronomically large shapes, and the ShapeReport that `infer` returns."""

from __future__ import annotations

import dataclasses
import json
import time
import tracemalloc
from pathlib import Path

import pytest

import netspec
from netspec.errors import Diagnostic
from netspec.frontend.shape_report import Row, Totals

SPECS = Path(__file__).resolve().parent.parent / "specs"
HEAD = "input: {shape: [3, 8, 8]}\nlayers:\n"


def diagnostics(text: str) -> list[Diagnostic]:
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="g.yaml")
    return info.value.diagnostics


def errors(text: str) -> list[Diagnostic]:
    return [d for d in diagnostics(text) if d.is_error]


def only(text: str) -> Diagnostic:
    found = errors(text)
    assert len(found) == 1, [str(d) for d in found]
    return found[0]


def head(d: Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}]"


# -- names and inputs -------------------------------------------------------------------------
def test_duplicate_names_are_errors_at_the_second_name():
    found = errors(HEAD + "  - {type: ReLU, name: a}\n  - {type: Tanh, name: a}\n")
    duplicate = next(d for d in found if d.code == "name")
    assert head(duplicate) == "g.yaml:4:18: error[name]"
    assert duplicate.message == "duplicate layer name 'a' (first used by layer 0)"


@pytest.mark.parametrize(
    "layers",
    [
        "  - {type: ReLU, name: a}\n  - {type: Tanh, name: a}\n",
        "  - {type: ReLU, name: '1'}\n  - Tanh\n",
    ],
)
def test_duplicate_names_are_reported_once_without_a_spurious_cycle(layers):
    assert [d.code for d in errors(HEAD + layers)] == ["name"]


def test_names_that_would_be_ambiguous_are_refused():
    found = errors(HEAD + "  - {type: ReLU, name: input}\n  - {type: ReLU, name: a.b}\n")
    assert [(head(d), d.message) for d in found] == [
        ("g.yaml:3:18: error[name]", "'input' cannot name a layer: it is the spec's input"),
    ]  # a dotted name is a module path (design.md §1), no longer refused


def test_a_default_name_clashing_with_an_explicit_one_is_a_duplicate():
    found = errors(HEAD + "  - {type: ReLU, name: '1'}\n  - Tanh\n")
    d = next(d for d in found if d.code == "name")
    assert head(d) == "g.yaml:4:5: error[name]"  # the layer whose default name clashes
    assert d.message == "duplicate layer name '1' (first used by layer 0)"


def test_dangling_inputs_are_located_at_the_item_with_a_suggestion():
    d = only(HEAD + "  - {type: ReLU, name: conv_1}\n  - {type: Tanh, inputs: [conv1]}\n")
    assert head(d) == "g.yaml:4:27: error[unknown-input]"
    assert d.message == "unknown input 'conv1'"
    assert d.hint == "did you mean 'conv_1'?"
    d = only(HEAD + "  - {type: ReLU, inputs: [zzz]}\n")
    assert d.hint == "known: 0, input"


def test_cycles_are_errors():
    d = only(
        HEAD + "  - {type: ReLU, name: a, inputs: [b]}\n  - {type: ReLU, name: b, inputs: [a]}\n"
    )
    assert head(d) == "g.yaml:3:27: error[cycle]"
    assert d.message == "layers form a cycle: a -> b -> a"
    d = only(HEAD + "  - {type: ReLU, name: a, inputs: [a]}\n")
    assert d.message == "layers form a cycle: a -> a"


def test_a_cycle_names_only_its_own_layers_in_the_order_data_flows():
    d = only(
        HEAD + "  - {type: ReLU, name: a, inputs: [c]}\n  - {type: ReLU, name: b, inputs: [a]}\n"
        "  - {type: ReLU, name: c, inputs: [b]}\n  - {type: ReLU, name: d, inputs: [c]}\n"
        "  - {type: ReLU, name: e, inputs: [d]}\n"
    )
    assert head(d) == "g.yaml:3:27: error[cycle]"
    assert d.message == "layers form a cycle: a -> b -> c -> a"


def test_each_cycle_is_reported_once_and_downstream_layers_are_not_named():
    found = errors(
        HEAD + "  - {type: ReLU, name: d, inputs: [b]}\n  - {type: ReLU, name: a, inputs: [b]}\n"
        "  - {type: ReLU, name: b, inputs: [a]}\n  - {type: Add, name: x, inputs: [x, d]}\n"
    )
    assert [(head(d), d.message) for d in found] == [
        ("g.yaml:4:27: error[cycle]", "layers form a cycle: a -> b -> a"),
        ("g.yaml:6:26: error[cycle]", "layers form a cycle: x -> x"),
    ]


def test_diagnostics_name_layers_as_the_user_wrote_them():
    found = diagnostics(
        HEAD + "  - {type: MaxPool2d, name: x, kernel_size: 2, return_indices: true}\n"
        "  - {type: ReLU, name: a}\n  - {type: ReLU, name: a}\n"
        "  - {type: ReLU, name: x.indices, inputs: [x]}\n  - {type: ReLU, inputs: [a]}\n"
    )
    unused = [(head(d), d.message) for d in found if d.code == "unused"]
    assert unused == [
        ("g.yaml:5:5: warning[unused]", "the output of layer 'a' is never used"),
        ("g.yaml:6:5: warning[unused]", "the output of layer 'x.indices' is never used"),
    ]
    assert not any("#" in d.message for d in found)


def test_a_loss_on_several_outputs_is_refused():
    d = only(
        HEAD + "  - {type: ReLU, name: r}\n  - {type: Tanh, name: t, inputs: [input]}\n"
        "outputs: [r, t]\nloss: MSELoss\n"
    )
    assert head(d) == "g.yaml:5:1: error[outputs]"
    assert d.message == "the loss trains one output, but the network has 2: r, t"
    assert d.hint == (
        "list the one layer the loss applies to in `outputs`, "
        "or leave out `loss` to only run the network"
    )


def test_unknown_outputs_are_errors():
    d = only(HEAD + "  - {type: ReLU, name: relu}\noutputs: [rleu]\n")
    assert head(d) == "g.yaml:4:11: error[unknown-output]"
    assert d.hint == "did you mean 'relu'?"


def test_indices_exist_only_with_return_indices():
    d = only(
        HEAD + "  - {type: MaxPool2d, name: p, kernel_size: 2}\n"
        "  - {type: Identity, inputs: [p.indices]}\n"
    )
    assert head(d) == "g.yaml:4:31: error[unknown-input]"
    assert d.message == "unknown input 'p.indices'"


def test_indices_are_a_second_output():
    spec = netspec.loads(
        HEAD + "  - {type: MaxPool2d, name: p, kernel_size: 2, return_indices: true}\n"
        "  - {type: ReLU, name: r}\n  - {type: Identity, name: i, inputs: [p.indices]}\n"
        "outputs: [r, p.indices, i]\n"
    )
    report = netspec.infer(spec, batch_size=5)
    assert report.outputs == ["r", "p.indices", "i"]
    assert report.output_shapes == [(5, 3, 4, 4)] * 3
    assert report.rows[2].inputs == ["p.indices"]
    assert not report.chain


def test_add_and_concat_need_two_or_more_inputs():
    d = only(HEAD + "  - {type: ReLU, name: r}\n  - {type: Add, inputs: [r]}\n")
    assert head(d) == "g.yaml:4:17: error[arity]"
    assert d.message == "Add joins two or more inputs, received 1"


@pytest.mark.parametrize(
    "layer",
    [
        "{type: ReLU, inputs: []}",
        "{type: ReLU, inputs: [input, input]}",
        "{type: Add, inputs: []}",
        "{type: Concat, inputs: []}",
    ],
)
def test_wrong_input_counts_are_diagnostics(layer):
    d = only(HEAD + f"  - {layer}\n")
    assert d.code == "arity"


# -- shape errors --------------------------------------------------------------------------------
def test_add_and_concat_shape_mismatches():
    branches = (
        "  - {type: Conv2d, name: a, in_channels: 3, out_channels: 4, kernel_size: 3}\n"
        "  - {type: Conv2d, name: b, inputs: [input], in_channels: 3, out_channels: 4, "
        "kernel_size: 1}\n"
    )
    d = only(HEAD + branches + "  - {type: Add, inputs: [a, b]}\n")
    assert head(d) == "g.yaml:5:5: error[merge]"
    assert d.message == "Add needs inputs of one shape, received (N, 4, 6, 6), (N, 4, 8, 8)"
    d = only(HEAD + branches + "  - {type: Concat, inputs: [a, b]}\n")
    assert head(d) == "g.yaml:5:5: error[merge]"
    assert "(N, 4, 6, 6), (N, 4, 8, 8)" in d.message
    d = only(HEAD + branches + "  - {type: Concat, inputs: [b, input], dim: 4}\n")
    assert d.code == "dim"
    assert d.message == "Dimension out of range (expected to be in range of [-4, 3], but got 4)"


def test_concat_joins_along_dim():
    spec = netspec.loads(
        HEAD + "  - {type: Conv2d, name: a, in_channels: 3, out_channels: 5, kernel_size: 1}\n"
        "  - {type: Concat, inputs: [a, input, a]}\n"
        "  - {type: Concat, name: wide, inputs: [input, input], dim: -1}\n"
        "outputs: [1, wide]\n"
    )
    assert netspec.infer(spec).output_shapes == [(None, 13, 8, 8), (None, 3, 8, 16)]


def test_conv2d_on_a_flat_tensor_says_what_it_expected():
    d = only(HEAD + "  - Flatten\n  - Conv2d: {in_channels: 3, out_channels: 6, kernel_size: 3}\n")
    assert head(d) == "g.yaml:4:5: error[rank]"
    assert "(N, C, H, W)" in d.message and "(N, 192)" in d.message


def test_conv2d_on_a_sample_without_channels_mentions_the_batch():
    d = only(
        "input: {shape: [3, 8]}\nlayers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 6, kernel_size: 3}\n"
    )
    assert d.code == "rank"
    assert "(N, 3, 8)" in d.message and "batch" in d.message


def test_channel_and_feature_mismatches_hint_the_right_number():
    d = only(HEAD + "  - Conv2d: {in_channels: 4, out_channels: 6, kernel_size: 3}\n")
    assert head(d) == "g.yaml:3:14: error[channels]"
    assert d.message == (
        "Given groups=1, weight of size [6, 4, 3, 3], expected input[N, 3, 8, 8] to have 4 "
        "channels, but got 3 channels instead"
    )
    assert d.hint == "set in_channels: 3"
    d = only(HEAD + "  - BatchNorm2d: {num_features: 4}\n")
    assert head(d) == "g.yaml:3:19: error[channels]"
    assert d.hint == "set num_features: 3"


def test_the_flatten_hint_says_what_to_write():
    text = (SPECS / "lenet5.yaml").read_text().replace("in_features: 400", "in_features: 256")
    (d,) = errors(text)
    assert d.code == "features"
    assert d.message == "in_features is 256 but the input (N, 400) has 400 features"
    assert d.hint == "set in_features: 400 — Flatten '6' after '5' yields (N, 16, 5, 5) = 400"


def test_a_kernel_larger_than_the_padded_input():
    d = only(HEAD + "  - Conv2d: {in_channels: 3, out_channels: 6, kernel_size: 11, padding: 1}\n")
    assert head(d) == "g.yaml:3:47: error[kernel-size]"
    assert d.message == (
        "Calculated padded input size per channel: (10 x 10). Kernel size: (11 x 11). "
        "Kernel size can't be greater than actual input size"
    )


def test_outputs_shrinking_to_zero():
    d = only(HEAD + "  - MaxPool2d: {kernel_size: 2}\n" * 4)
    assert head(d) == "g.yaml:6:17: error[size]"
    assert d.message == (
        "Given input size: (3x1x1). Calculated output size: (3x0x0). Output size is too small"
    )
    d = only(HEAD + "  - AvgPool2d: {kernel_size: 4}\n" * 3)
    assert (d.line, d.code) == (4, "size")  # 8 -> 2 -> (2 - 4) // 4 + 1 = 0


def test_inference_goes_on_past_a_shape_error_with_the_declared_values():
    text = HEAD + (
        "  - Conv2d: {in_channels: 2, out_channels: 6, kernel_size: 3}\n"  # 3: wants 2, gets 3
        "  - ReLU\n"
        "  - Conv2d: {in_channels: 5, out_channels: 7, kernel_size: 3}\n"  # 5: gets the 6 above
        "  - Flatten\n"
        "  - Linear: {in_features: 10, out_features: 2}\n"  # 7: 7 * 4 * 4 = 112
        "  - Linear: {in_features: 3, out_features: 2}\n"  # 8: gets the 2 above
    )
    found = errors(text)
    assert [(d.line, d.code, d.hint) for d in found] == [
        (3, "channels", "set in_channels: 3"),
        (5, "channels", "set in_channels: 6"),
        (7, "features", "set in_features: 112 — Flatten '3' after '2' yields (N, 7, 4, 4) = 112"),
        (8, "features", "set in_features: 2"),
    ]


def test_every_problem_is_reported_in_one_run():
    found = errors(
        "input: {shape: [3, 32, 32]}\nlayers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 8, kernel_size: 3, padding: -1, stride: 0}\n"
        "  - MaxPool2d: {kernel_size: 2, padding: 2}\n"
        "  - Conv2d: {in_channels: 4, out_channels: 8, kernel_size: 3}\n"
        "  - ReLU\n"
    )
    assert [(head(d), d.message) for d in found] == [
        ("g.yaml:3:63: error[padding]", "negative padding is not supported"),
        ("g.yaml:3:76: error[stride]", "non-positive stride is not supported"),
        (
            "g.yaml:4:33: error[value]",
            "pad should be at most half of effective kernel size, but got pad=2, "
            "kernel_size=2 and dilation=1",
        ),
        (
            "g.yaml:5:14: error[channels]",
            "Given groups=1, weight of size [8, 4, 3, 3], expected input[N, 8, 17, 17] to have "
            "4 channels, but got 8 channels instead",
        ),
    ]


def test_every_constructor_rule_a_layer_breaks_is_reported():
    found = errors(
        HEAD + "  - Conv2d: {in_channels: 4, out_channels: 8, kernel_size: 3, groups: 3, "
        "padding: same, stride: 2}\n"
    )
    assert [(head(d), d.message) for d in found] == [
        ("g.yaml:3:14: error[invalid-arg]", "in_channels must be divisible by groups"),
        ("g.yaml:3:30: error[invalid-arg]", "out_channels must be divisible by groups"),
        (
            "g.yaml:3:74: error[invalid-arg]",
            "padding='same' is not supported for strided convolutions",
        ),
    ]


def test_size_errors_after_a_guessed_shape_are_not_reported():
    # With stride 0 refused, the sizes after it are a guess: only what does not depend on
    # them (the channels) is checked further on.
    found = errors(
        HEAD + "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: 0}\n"
        "  - Flatten\n  - Linear: {in_features: 5, out_features: 2}\n"
        "  - BatchNorm2d: {num_features: 3}\n"
    )
    assert [(d.line, d.code) for d in found] == [(3, "stride"), (6, "rank")]


def test_shape_inference_goes_on_past_a_shape_keeping_layer_that_failed_validation():
    found = errors(
        HEAD
        + "  - Dropout: {p: 2.0}\n  - Conv2d: {in_channels: 4, out_channels: 8, kernel_size: 3}\n"
    )
    assert [(d.line, d.code) for d in found] == [(3, "invalid-arg"), (4, "channels")]


def test_a_layer_that_failed_validation_does_not_cascade():
    text = HEAD + "  - Nope\n  - Linear: {in_features: 1, out_features: 2}\n  - Conv2d: {}\n"
    found = errors(text)
    assert [(d.line, d.code) for d in found] == [
        (3, "unknown-layer"),
        (5, "missing-arg"),  # out_channels and kernel_size; in_channels is inferred
        (5, "missing-arg"),
    ]


def test_astronomical_shapes_are_checked_without_allocating():
    text = (
        "input: {shape: [3, 100000000, 100000000]}\nlayers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 64, kernel_size: 3}\n"
        "  - MaxPool2d: {kernel_size: 2}\n"
        "  - Flatten\n"
        "  - Linear: {in_features: 10, out_features: 10}\n"
    )
    tracemalloc.start()
    start = time.perf_counter()
    (d,) = errors(text)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 20 * 2**20
    assert head(d) == "g.yaml:6:14: error[features]"
    assert d.hint == (
        "set in_features: 159999993600000064 — Flatten '2' after '1' yields "
        "(N, 64, 49999999, 49999999) = 159999993600000064"
    )
    fixed = netspec.loads(text.replace("in_features: 10,", "in_features: 159999993600000064,"))
    report = netspec.infer(fixed, batch_size=1_000_000)
    assert report.rows[0].output_shape == (1_000_000, 64, 99999998, 99999998)
    assert report.rows[0].macs == 1_000_000 * 64 * 99999998**2 * 27
    assert report.totals.activation_bytes > 10**24


# -- the report ---------------------------------------------------------------------------------
def test_rows_and_totals_have_the_names_design_md_gives():
    assert [f.name for f in dataclasses.fields(Row)] == [
        "name",
        "type",
        "inputs",
        "input_shapes",
        "output_shape",
        "params",
        "trainable_params",
        "macs",
        "inferred",
    ]
    assert [f.name for f in dataclasses.fields(Totals)] == [
        "params",
        "trainable_params",
        "macs",
        "param_bytes",
        "activation_bytes",
    ]


LENET_PARAMS = [156, 0, 0, 2416, 0, 0, 0, 48120, 0, 0, 10164, 0, 850]
LENET_MACS = [117600, 0, 0, 240000, 0, 0, 0, 48000, 0, 0, 10080, 0, 840]
LENET_SHAPES = [
    (6, 28, 28),
    (6, 28, 28),
    (6, 14, 14),
    (16, 10, 10),
    (16, 10, 10),
    (16, 5, 5),
    (400,),
    (120,),
    (120,),
    (120,),
    (84,),
    (84,),
    (10,),
]


def test_lenet_report_with_a_symbolic_batch():
    report = netspec.infer(netspec.load(SPECS / "lenet5.yaml"))
    assert report.batch_size is None and report.chain
    assert report.input_shape == (None, 1, 28, 28)
    assert [r.name for r in report.rows] == [str(i) for i in range(13)]
    assert [r.type for r in report.rows][:4] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert [r.output_shape for r in report.rows] == [(None, *s) for s in LENET_SHAPES]
    assert report.rows[0].inputs == ["input"] and report.rows[0].input_shapes == [(None, 1, 28, 28)]
    assert report.rows[5].inputs == ["4"] and report.rows[5].input_shapes == [(None, 16, 10, 10)]
    assert [r.params for r in report.rows] == LENET_PARAMS
    assert [r.trainable_params for r in report.rows] == LENET_PARAMS
    assert [r.macs for r in report.rows] == LENET_MACS  # per sample
    activations = sum(_prod(s) for s in LENET_SHAPES)
    assert report.totals == Totals(
        params=61706,
        trainable_params=61706,
        macs=416520,
        param_bytes=61706 * 4,
        activation_bytes=activations * 4,
    )
    assert report.outputs == ["12"] and report.output_shapes == [(None, 10)]


def test_lenet_report_with_a_concrete_batch():
    report = netspec.infer(netspec.load(SPECS / "lenet5.yaml"), batch_size=8)
    assert report.batch_size == 8
    assert [r.output_shape for r in report.rows] == [(8, *s) for s in LENET_SHAPES]
    assert [r.macs for r in report.rows] == [8 * m for m in LENET_MACS]
    assert report.totals.macs == 8 * 416520
    assert report.totals.param_bytes == 61706 * 4  # parameters do not scale with the batch
    assert report.totals.activation_bytes == 8 * 4 * sum(_prod(s) for s in LENET_SHAPES)


def test_float64_doubles_the_bytes_and_frozen_statistics_hold_no_parameters():
    spec = netspec.loads(
        "input: {shape: [4, 6, 6], dtype: float64}\nlayers:\n"
        "  - BatchNorm2d: {num_features: 4, affine: false}\n"
        "  - BatchNorm2d: {num_features: 4}\n"
    )
    report = netspec.infer(spec)
    assert [r.params for r in report.rows] == [0, 8]
    assert report.totals.param_bytes == 8 * 8
    assert report.totals.activation_bytes == 2 * 144 * 8


def test_a_graph_report_lists_inputs():
    report = netspec.infer(netspec.load(SPECS / "resnet_tiny.yaml"), batch_size=2)
    assert not report.chain
    adds = [r for r in report.rows if r.type == "Add"]
    assert adds and all(len(r.inputs) == 2 and len(r.input_shapes) == 2 for r in adds)
    assert all(r.input_shapes[0] == r.input_shapes[1] == r.output_shape for r in adds)


def test_the_report_is_plain_data():
    report = netspec.infer(netspec.load(SPECS / "all_layers.yaml"), batch_size=3)
    document = json.loads(json.dumps(report.to_dict()))
    assert document["totals"]["params"] == report.totals.params
    assert document["rows"][0]["output_shape"] == list(report.rows[0].output_shape)


def _prod(shape) -> int:
    result = 1
    for d in shape:
        result *= d
    return result


def test_analysis_grows_linearly_with_the_number_of_layers():
    """A set rebuilt per layer made 40,000 layers take 68 s; 4x the layers must take about
    4x the time (quadratic would be 16x). A ratio, so a slow machine does not fail it."""
    import gc
    import time

    def seconds(n: int) -> float:
        text = "input: {shape: [4]}\nlayers:\n" + "  - ReLU\n" * n
        gc.collect()  # the collector's passes grow with everything a full run keeps alive:
        gc.disable()  # they made the ratio noisy (5-9x), not the analysis
        try:
            start = time.perf_counter()
            netspec.loads(text)
            return time.perf_counter() - start
        finally:
            gc.enable()

    seconds(500)  # warm the imports
    small, large = min(seconds(4_000) for _ in range(2)), seconds(16_000)
    assert large < 7 * small, (small, large)

"""The spec language: the three equal forms, graph keys, and every validation error as a
located diagnostic with PyTorch's words, all of them in one SpecError."""

from __future__ import annotations

import pytest

import netspec
from netspec.errors import Diagnostic

HEAD = "input: {shape: [3, 8, 8]}\nlayers:\n"


def diagnostics(text: str) -> list[Diagnostic]:
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    return info.value.diagnostics


def only(text: str) -> Diagnostic:
    found = diagnostics(text)
    assert len(found) == 1, [str(d) for d in found]
    return found[0]


def head(d: Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}]"


def layer_error(line: str) -> Diagnostic:
    """The one diagnostic of a spec whose only layer is `line` (on line 3, after "  - ")."""
    return only(HEAD + f"  - {line}\n")


# -- the three equal forms ----------------------------------------------------------------
FORMS = {
    "bare": "  - ReLU\n  - Flatten\n",
    "null": "  - ReLU:\n  - Flatten: null\n",
    "one-key": "  - ReLU: {}\n  - Flatten: {}\n",
    "typed": "  - {type: ReLU}\n  - type: Flatten\n",
}


@pytest.mark.parametrize("form", list(FORMS))
def test_argument_free_layers_in_every_form_are_equal(form):
    spec = netspec.loads(HEAD + FORMS[form])
    assert spec.model_dump() == netspec.loads(HEAD + FORMS["bare"]).model_dump()


CONV = (
    "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [3, 5], padding: same}\n",
    "  - Conv2d:\n      in_channels: 3\n      out_channels: 4\n      kernel_size: [3, 5]\n"
    "      padding: same\n",
    "  - {type: Conv2d, in_channels: 3, out_channels: 4, kernel_size: [3, 5], padding: same}\n",
    "  - type: Conv2d\n    in_channels: 3\n    out_channels: 4\n    kernel_size: [3, 5]\n"
    "    padding: same\n",
)


@pytest.mark.parametrize("layer", CONV)
def test_layers_with_arguments_in_every_form_are_equal(layer):
    spec = netspec.loads(HEAD + layer)
    assert spec.model_dump() == netspec.loads(HEAD + CONV[0]).model_dump()
    assert spec.layers[0].kernel_size == (3, 5)  # a YAML list is PyTorch's tuple
    assert spec.fingerprint() == netspec.loads(HEAD + CONV[0]).fingerprint()


SECTIONS = (
    "loss: CrossEntropyLoss\ntrain: {optimizer: Adam, lr_schedule: {StepLR: {step_size: 2}}}\n",
    "loss: {CrossEntropyLoss: {}}\n"
    "train: {optimizer: {Adam: null}, lr_schedule: {type: StepLR, step_size: 2}}\n",
    "loss: {type: CrossEntropyLoss}\n"
    "train:\n  optimizer: {type: Adam}\n  lr_schedule:\n    StepLR:\n      step_size: 2\n",
)


@pytest.mark.parametrize("sections", SECTIONS)
def test_losses_optimizers_and_schedules_take_the_same_three_forms(sections):
    text = "input: {shape: [5]}\nlayers: [Identity]\n"
    spec = netspec.loads(text + sections)
    assert spec.model_dump() == netspec.loads(text + SECTIONS[0]).model_dump()
    assert (spec.loss.type, spec.train.optimizer.type) == ("CrossEntropyLoss", "Adam")
    assert spec.train.lr_schedule.step_size == 2


def test_graph_keys_sit_beside_the_one_key_form():
    spec = netspec.loads(
        HEAD + "  - {ReLU: {inplace: true}, name: act, inputs: [input]}\n"
        "  - {Tanh: null, name: t, inputs: [act]}\n"
    )
    assert [(layer.name, layer.inputs) for layer in spec.layers] == [
        ("act", ["input"]),
        ("t", ["act"]),
    ]
    assert spec.layers[0].inplace is True


# -- graph keys ----------------------------------------------------------------------------
def test_names_default_to_indices_and_inputs_accept_them_as_ints():
    spec = netspec.loads(
        HEAD + "  - ReLU\n  - Tanh\n  - {type: Add, inputs: [0, 1]}\n" + "outputs: [2, 0]\n"
    )
    assert spec.layers[2].inputs == ["0", "1"]
    assert spec.outputs == ["2", "0"]
    assert spec.layers[0].name is None  # the index is the default name
    report = netspec.infer(spec)
    assert [row.name for row in report.rows] == ["0", "1", "2"]
    assert report.outputs == ["2", "0"]


def test_the_spec_name_defaults_to_model_and_must_be_a_plain_word():
    assert netspec.loads(HEAD + "  - ReLU\n").name == "model"
    d = only("name: my model\n" + HEAD + "  - ReLU\n")
    assert head(d) == "m.yaml:1:1: error[invalid-arg]"
    assert "'my model'" in d.message


def test_inputs_must_be_a_list_of_names():
    d = layer_error("{type: ReLU, inputs: input}")
    assert head(d) == "m.yaml:3:18: error[type]"
    assert d.message == "inputs: expected a list, received 'input'"
    d = layer_error("{type: ReLU, inputs: [[a]]}")
    assert head(d) == "m.yaml:3:27: error[type]"
    assert d.message == "inputs[0]: expected a string, received ['a']"


def test_a_layer_name_must_be_a_string():
    d = layer_error("{type: ReLU, name: [a]}")
    assert head(d) == "m.yaml:3:18: error[type]"
    assert "name: expected a string" in d.message


# -- unknown names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "col", "name", "hint"),
    [
        ("Conv2D: {kernel_size: 3}", 5, "Conv2D", "did you mean 'Conv2d'?"),
        ("{type: Conv2x, kernel_size: 3}", 6, "Conv2x", "did you mean 'Conv2d'?"),
        ("relu", 5, "relu", "did you mean 'ReLU'?"),
        ("MaxPool: {kernel_size: 2}", 5, "MaxPool", "did you mean 'MaxPool2d'?"),
        ("Transformer", 5, "Transformer", "known layers: Conv2d, MaxPool2d"),
    ],
)
def test_unknown_layers_get_suggestions(line, col, name, hint):
    d = layer_error(line)
    assert head(d) == f"m.yaml:3:{col}: error[unknown-layer]"
    assert d.message == f"unknown layer '{name}'"
    assert d.hint.startswith(hint)


@pytest.mark.parametrize(
    ("line", "col", "key", "hint"),
    [
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, strides: 2}",
            63,
            "strides",
            "did you mean 'stride'?",
        ),
        (
            "{type: MaxPool2d, kernal_size: 2, kernel_size: 2}",
            23,
            "kernal_size",
            "did you mean 'kernel_size'?",
        ),
        ("ReLU: {in_place: true}", 12, "in_place", "did you mean 'inplace'?"),
        ("Softmax: {zzz: 1}", 15, "zzz", "allowed: name, inputs, dim"),
    ],
)
def test_unknown_arguments_get_suggestions(line, col, key, hint):
    d = layer_error(line)
    assert head(d) == f"m.yaml:3:{col}: error[unknown-arg]"
    assert d.message.startswith(f"unknown argument '{key}' for ")
    assert d.hint == hint


def test_unknown_top_level_and_section_keys_get_suggestions():
    found = diagnostics(HEAD + "  - ReLU\nouput: [0]\ntrain: {epoch: 3}\n")
    assert [head(d) for d in found] == [
        "m.yaml:4:1: error[unknown-arg]",
        "m.yaml:5:9: error[unknown-arg]",
    ]
    assert [d.hint for d in found] == ["did you mean 'outputs'?", "did you mean 'epochs'?"]


def test_a_missing_required_argument_names_it():
    d = layer_error("Conv2d: {in_channels: 3, out_channels: 4}")
    assert head(d) == "m.yaml:3:5: error[missing-arg]"
    assert d.message == "Conv2d needs 'kernel_size'"


def test_missing_input_and_layers_are_errors():
    found = diagnostics("name: m\n")
    assert {d.message for d in found} == {"needs 'input'", "needs 'layers'"}
    d = only("input: {shape: [3]}\nlayers: []\n")
    assert head(d) == "m.yaml:2:1: error[invalid-arg]"
    assert "at least 1" in d.message


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ("{ReLU: {}, Tanh: {}}", "bad-layer"),
        ("{ReLU: [1]}", "bad-layer"),
        ("42", "bad-layer"),
        ("[ReLU]", "bad-layer"),
    ],
)
def test_malformed_layer_entries_are_explained(entry, code):
    d = layer_error(entry)
    assert head(d).startswith("m.yaml:3:")
    assert d.code == code
    assert d.hint.startswith("write `")


# -- wrong types -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "col", "message"),
    [
        (
            "Conv2d: {in_channels: true, out_channels: 4, kernel_size: 3}",
            14,
            "in_channels: expected an int, received true",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: '3'}",
            47,
            "kernel_size: expected an int or a list, received '3'",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3.0}",
            47,
            "kernel_size: expected an int or a list, received 3.0",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, bias: 1}",
            63,
            "bias: expected true or false, received 1",
        ),
        ("ReLU: {inplace: 'yes'}", 12, "inplace: expected true or false, received 'yes'"),
        (
            "LeakyReLU: {negative_slope: abc}",
            17,
            "negative_slope: expected a number, received 'abc'",
        ),
        ("Softmax: {dim: false}", 15, "dim: expected an int, received false"),
        (
            "Linear: {in_features: [4], out_features: 2}",
            14,
            "in_features: expected an int, received [4]",
        ),
    ],
)
def test_wrong_types_are_errors_and_bool_is_not_an_int(line, col, message):
    d = layer_error(line)
    assert head(d) == f"m.yaml:3:{col}: error[type]"
    assert d.message == message


def test_an_int_is_a_float_where_torch_takes_a_float():
    spec = netspec.loads(HEAD + "  - LeakyReLU: {negative_slope: 1}\n")
    assert spec.layers[0].negative_slope == 1.0


# -- values out of range -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "col", "words"),
    [
        (
            "Conv2d: {in_channels: 3, out_channels: -1, kernel_size: 3}",
            30,
            "out_channels must be greater than or equal to 0, received -1",
        ),
        ("Dropout: {p: 1.5}", 15, "dropout probability has to be between 0 and 1, but got 1.5"),
        ("Dropout2d: {p: -0.1}", 17, "dropout probability has to be between 0 and 1"),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, padding: sam}",
            63,
            "Invalid padding string 'sam', should be one of {'valid', 'same'}",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, padding_mode: mirror}",
            63,
            "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, but got "
            "padding_mode='mirror'",
        ),
        ("GELU: {approximate: fast}", 12, "approximate argument must be either none or tanh."),
    ],
)
def test_out_of_range_values_use_pytorch_words(line, col, words):
    d = layer_error(line)
    assert head(d) == f"m.yaml:3:{col}: error[invalid-arg]"
    assert words in d.message


def test_input_dimensions_must_be_positive():
    d = only("input: {shape: [3, 0, 8]}\nlayers: [ReLU]\n")
    assert head(d) == "m.yaml:1:20: error[invalid-arg]"
    assert d.message == "shape[1] must be greater than 0, received 0"
    d = only("input: {shape: []}\nlayers: [ReLU]\n")
    assert head(d) == "m.yaml:1:9: error[invalid-arg]"


# -- tuples of the wrong length -----------------------------------------------------------------
def test_a_tuple_that_is_too_long_is_an_error_at_the_argument():
    d = layer_error("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [3, 3, 3]}")
    assert head(d) == "m.yaml:3:47: error[invalid-arg]"
    assert d.message.startswith("kernel_size ") and "at most 2 items" in d.message


def test_a_tuple_that_is_too_short_is_not_reported_as_missing():
    d = layer_error("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [3]}")
    assert head(d) == "m.yaml:3:47: error[invalid-arg]"
    assert "needs" not in d.message and "2" in d.message


# -- cross-field rules (PyTorch's constructor errors) -------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, padding: same, stride: 2}",
            "padding='same' is not supported for strided convolutions",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, groups: 2}",
            "in_channels must be divisible by groups",
        ),
        (
            "Conv2d: {in_channels: 4, out_channels: 3, kernel_size: 3, groups: 2}",
            "out_channels must be divisible by groups",
        ),
        (
            "Conv2d: {in_channels: 3, out_channels: 3, kernel_size: 3, groups: 0}",
            "groups must be a positive integer",
        ),
    ],
)
def test_cross_field_rules_give_pytorch_messages(line, message):
    d = layer_error(line)
    assert d.code == "invalid-arg" and d.line == 3
    assert d.message == message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            HEAD + "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, padding: same, "
            "stride: 2}\n",
            "3:63",
        ),  # padding
        (
            HEAD + "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, groups: 2}\n",
            "3:14",
        ),  # in_channels
        (
            "input: {shape: [5]}\nlayers: [Identity]\n"
            "loss: {CrossEntropyLoss: {label_smoothing: 2.0}}\n",
            "3:27",
        ),  # label_smoothing
        (
            "input: {shape: [5]}\nlayers: [Identity]\ntrain: {optimizer: {SGD: {lr: -1}}}\n",
            "3:27",
        ),  # lr
    ],
)
def test_cross_field_errors_point_at_the_argument(text, where):
    (d,) = diagnostics(text)
    assert head(d) == f"m.yaml:{where}: error[invalid-arg]"


@pytest.mark.parametrize("pool", ["MaxPool2d", "AvgPool2d"])
def test_pool_padding_may_be_at_most_half_the_kernel(pool):
    d = layer_error(f"{pool}: {{kernel_size: 3, padding: 2}}")
    col = 5 + len(pool) + 19  # the `padding` key
    assert head(d) == f"m.yaml:3:{col}: error[value]"
    assert d.message == (
        "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 "
        "and dilation=1"
    )
    assert d.hint == "use padding <= 1"


# -- the other sections --------------------------------------------------------------------------
FRAME = "input: {shape: [5]}\nlayers: [Identity]\n"


def test_loss_errors():
    d = only(FRAME + "loss: {CrossEntropyLoss: {label_smoothing: 2.0}}\n")
    assert (d.line, d.code) == (3, "invalid-arg")
    assert d.message == "label_smoothing must be between 0.0 and 1.0. Got: 2"  # ATen's words
    d = only(FRAME + "loss: {CrossEntropyLoss: {weight: [1, 2]}}\n")
    assert head(d) == "m.yaml:3:27: error[classes]"
    assert "defined either for all 5 classes" in d.message
    assert d.hint == "give 5 class weights, one for each of the 5 outputs"
    d = only(FRAME + "loss: {MSELoss: {reduction: average}}\n")
    assert head(d) == "m.yaml:3:18: error[invalid-arg]"
    assert d.message == "average is not a valid value for reduction"


def test_an_unknown_loss_gets_a_suggestion():
    d = diagnostics(FRAME + "loss: CrossEntropy\n")[0]
    assert head(d) == "m.yaml:3:1: error[unknown-loss]"
    assert d.hint == "did you mean 'CrossEntropyLoss'?"


def test_an_unknown_loss_is_reported_once():
    assert len(diagnostics(FRAME + "loss: CrossEntropy\n")) == 1


def test_train_section_errors():
    found = diagnostics(
        FRAME + "train:\n  epochs: 0\n  optimizer: {SGD: {lr: -1, nesterov: true}}\n"
        "  lr_schedule: {StepLR: {}}\n"
    )
    assert [(d.line, d.code, d.message) for d in found] == [
        (4, "invalid-arg", "epochs must be greater than 0, received 0"),
        (5, "invalid-arg", "Invalid learning rate: -1.0"),
        (6, "missing-arg", "StepLR needs 'step_size'"),
    ]
    assert head(found[0]) == "m.yaml:4:3: error[invalid-arg]"
    assert head(found[2]) == "m.yaml:6:17: error[missing-arg]"
    d = only(FRAME + "train: {optimizer: Adamm}\n")
    assert head(d) == "m.yaml:3:9: error[unknown-optimizer]"
    assert d.hint == "did you mean 'Adam'?"


def test_data_section_errors():
    d = only(FRAME + "data: {source: digitz}\n")
    assert d.line == 3 and d.code == "invalid-arg"
    assert "digitz" in d.message


# -- all at once --------------------------------------------------------------------------------
def test_every_error_of_a_spec_comes_in_one_spec_error_in_source_order():
    text = (
        "input: {shape: [3, 32, 32]}\n"  # 1
        "layers:\n"  # 2
        "  - Conv2d: {in_channels: 3, out_channels: 8, kernal_size: 3}\n"  # 3
        "  - BatchNorm: {num_features: 8}\n"  # 4
        "  - ReLU: {inplace: 1}\n"  # 5
        "  - Dropout: {p: 2}\n"  # 6
        "  - MaxPool2d: {kernel_size: 2, padding: 2}\n"  # 7
        "loss: {MSELoss: {reduction: everything}}\n"  # 8
        "train: {epochs: -1}\n"  # 9
    )
    found = diagnostics(text)
    assert [(d.line, d.code) for d in found] == [
        (3, "missing-arg"),
        (3, "unknown-arg"),
        (4, "unknown-layer"),
        (5, "type"),
        (6, "invalid-arg"),
        (8, "invalid-arg"),
        (9, "invalid-arg"),
    ]
    assert found[2].hint == "did you mean 'BatchNorm2d'?"
    message = str(netspec.SpecError(found))
    assert message.startswith("7 error(s) in spec; first: m.yaml:3:5: error[missing-arg]")


def test_warnings_ride_along_in_a_spec_error():
    found = diagnostics(HEAD + "  - Softmax\n  - Nope\n")
    assert [(d.code, d.severity) for d in found] == [
        ("softmax-dim", "warning"),
        ("unknown-layer", "error"),
    ]
    found = diagnostics(
        HEAD + "  - Softmax\n  - Conv2d: {in_channels: 5, out_channels: 2, kernel_size: 1}\n"
    )
    assert {(d.code, d.severity) for d in found} == {
        ("softmax-dim", "warning"),
        ("channels", "error"),
    }
    errors = netspec.SpecError(found).errors
    assert [d.code for d in errors] == ["channels"]


def test_load_reads_a_file_and_remembers_where(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD + "  - ReLU\n")
    spec = netspec.load(path)
    assert spec.source_name == str(path)
    assert spec.spec_dir == tmp_path.resolve()
    assert netspec.load(str(path)).model_dump() == spec.model_dump()
    assert netspec.loads(HEAD + "  - ReLU\n").spec_dir is None


@pytest.mark.parametrize("value", ["[]", "{a: 1}"])
def test_an_unhashable_top_level_type_key_is_a_diagnostic(value):
    # Found by the garbage fuzzer: `type` holding a list used to escape as a TypeError.
    found = diagnostics(f"type: {value}\nfoo: 1\n")
    assert [(d.line, d.code) for d in found] == [
        (1, "missing-arg"),
        (1, "missing-arg"),
        (1, "unknown-arg"),
        (2, "unknown-arg"),
    ]

"""Warnings: legal but suspect specs load, and say why they are suspect."""

from __future__ import annotations

import pytest

import netspec
from netspec.errors import Diagnostic


def warnings(text: str) -> list[Diagnostic]:
    spec = netspec.loads(text, source="w.yaml")
    assert all(not d.is_error for d in spec.warnings)
    return spec.warnings


def head(d: Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}]"


CLASSIFIER = "input: {shape: [10]}\nlayers:\n  - Linear: {in_features: 10, out_features: 3}\n"


def test_softmax_feeding_cross_entropy():
    (d,) = warnings(CLASSIFIER + "  - Softmax: {dim: 1}\nloss: CrossEntropyLoss\n")
    assert head(d) == "w.yaml:4:5: warning[softmax-cross-entropy]"
    assert "applies log-softmax itself" in d.message
    assert d.hint == "remove the final Softmax (apply it at inference only)"


@pytest.mark.parametrize(
    "tail",
    [
        "  - Softmax: {dim: 1}\nloss: MSELoss\n",  # a regression onto probabilities: fine
        "  - Softmax: {dim: 1}\n",  # no loss at all
        "  - Softmax: {dim: 1}\n  - Linear: {in_features: 3, out_features: 2}\n"
        "loss: CrossEntropyLoss\n",  # Softmax inside the network
    ],
)
def test_softmax_elsewhere_is_fine(tail):
    assert warnings(CLASSIFIER + tail) == []


def test_softmax_without_dim_says_which_dim_pytorch_picks():
    (d,) = warnings(CLASSIFIER + "  - Softmax\n")
    assert head(d) == "w.yaml:4:5: warning[softmax-dim]"
    assert d.message == (
        "Softmax without `dim`: PyTorch's implicit choice is deprecated (here dim=1)"
    )
    assert d.hint.startswith("set dim: 1")


@pytest.mark.parametrize(
    "producer",
    [
        "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 1}",
        "Linear: {in_features: 8, out_features: 4}",
    ],
)
def test_a_bias_before_batchnorm(producer):
    text = (
        f"input: {{shape: [3, 8, 8]}}\nlayers:\n  - {producer}\n"
        "  - BatchNorm2d: {num_features: 4}\n"
    )
    if producer.startswith("Linear"):
        text = text.replace("[3, 8, 8]", "[4, 8, 8]")  # Linear acts on W: (N, 4, 8, 4)
    (d,) = warnings(text)
    assert head(d) == "w.yaml:3:5: warning[bias-before-batchnorm]"
    kind = producer.split(":")[0]
    assert d.message == f"{kind} '0' has a bias that BatchNorm2d '1' cancels out"
    assert d.hint == "set bias: false on the layer before BatchNorm2d"


@pytest.mark.parametrize(
    "change",
    [
        ("kernel_size: 1}", "kernel_size: 1, bias: false}"),
        ("num_features: 4}", "num_features: 4, affine: false}"),
    ],
)
def test_no_bias_warning_without_a_bias_or_without_affine(change):
    text = (
        "input: {shape: [3, 8, 8]}\nlayers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 1}\n"
        "  - BatchNorm2d: {num_features: 4}\n"
    )
    assert warnings(text.replace(*change)) == []


def test_a_layer_whose_output_nobody_uses():
    (d,) = warnings(
        "input: {shape: [3, 8, 8]}\nlayers:\n"
        "  - {type: ReLU, name: lost}\n  - {type: Tanh, inputs: [input]}\n"
    )
    assert head(d) == "w.yaml:3:5: warning[unused]"
    assert d.message == "the output of layer 'lost' is never used"
    assert "outputs" in d.hint


def test_layers_listed_in_outputs_are_used():
    assert (
        warnings(
            "input: {shape: [3, 8, 8]}\nlayers:\n"
            "  - {type: ReLU, name: kept}\n  - {type: Tanh, inputs: [input]}\n"
            "outputs: [kept, 1]\n"
        )
        == []
    )


@pytest.mark.parametrize(
    ("flags", "reduction"),
    [
        ("size_average: false", "sum"),
        ("reduce: false", "none"),
        ("size_average: true, reduce: true", "mean"),
    ],
)
def test_legacy_loss_flags_warn_with_the_reduction_to_use(flags, reduction):
    (d,) = warnings(CLASSIFIER + f"loss: {{MSELoss: {{{flags}}}}}\n")
    assert head(d) == "w.yaml:4:8: warning[deprecated]"
    assert d.message == (
        "size_average and reduce args will be deprecated, please use "
        f"reduction='{reduction}' instead."
    )


def test_dropout2d_on_a_3d_input():
    (d,) = warnings("input: {shape: [4, 10]}\nlayers:\n  - Dropout2d: {p: 0.5}\n")
    assert head(d) == "w.yaml:3:5: warning[dropout2d-3d]"


@pytest.mark.parametrize(("shape", "rank"), [("[10]", 2), ("[2, 3, 4, 5]", 5)])
def test_dropout2d_on_a_2d_or_5d_input_warns_as_pytorch_does(shape, rank):
    (d,) = warnings(f"input: {{shape: {shape}}}\nlayers:\n  - Dropout2d: {{p: 0.5}}\n")
    assert head(d) == "w.yaml:3:5: warning[dropout2d-rank]"
    assert d.message.startswith(
        f"dropout2d: Received a {rank}-D input to dropout2d, which is deprecated"
    )
    assert d.hint == "use Dropout, or give Dropout2d an (N, C, H, W) input"


def test_dropout2d_on_a_4d_input_does_not_warn():
    assert warnings("input: {shape: [2, 4, 4]}\nlayers:\n  - Dropout2d: {p: 0.5}\n") == []


def test_the_examples_are_clean_of_unexpected_warnings():
    spec = netspec.loads(CLASSIFIER + "  - ReLU\nloss: CrossEntropyLoss\n")
    assert spec.warnings == []


def test_warnings_do_not_stop_inference():
    spec = netspec.loads(CLASSIFIER + "  - Softmax\nloss: CrossEntropyLoss\n")
    assert {d.code for d in spec.warnings} == {"softmax-dim", "softmax-cross-entropy"}
    assert netspec.infer(spec, batch_size=2).output_shapes == [(2, 3)]


# -- the input against a built-in data source ---------------------------------------------
def spec_errors(text: str) -> list[Diagnostic]:
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="w.yaml")
    return info.value.errors


CONV_NET = (
    "input: {shape: [1, 28, 28]}\nlayers:\n"
    "  - Conv2d: {in_channels: 1, out_channels: 4, kernel_size: 3}\n"
    "  - Flatten\n  - Linear: {in_features: 2704, out_features: 10}\n"
    "loss: CrossEntropyLoss\n"
)
FLAT_NET = (
    "input: {shape: [784]}\nlayers:\n  - Linear: {in_features: 784, out_features: 10}\n"
    "loss: CrossEntropyLoss\n"
)


@pytest.mark.parametrize(
    ("text", "declared", "fits"),
    [(CONV_NET, "[1, 28, 28]", "[1, 8, 8]"), (FLAT_NET, "[784]", "[64]")],
)
def test_an_input_shape_the_digits_cannot_fill_is_an_error_with_a_hint_for_the_network(
    text, declared, fits
):
    (d,) = spec_errors(text + "data: {source: digits}\n")
    assert head(d) == "w.yaml:1:9: error[data-shape]"
    assert d.message == (
        f"the digits source gives samples of shape [1, 8, 8] or [64], "
        f"but the input shape is {declared}"
    )
    assert d.hint == (
        f"set input: {{shape: {fits}}} and size the layers for it, "
        "or bring your own data with source: npz"
    )


@pytest.mark.parametrize(
    ("shape", "data"),
    [
        ("[1, 8, 8]", "{source: digits}"),
        ("[64]", "{source: digits, validation_split: 0.1}"),
        ("[3, 5, 7]", "{source: synthetic}"),  # synthetic data takes any shape
        ("[3, 5, 7]", "{source: npz, path: x.npz}"),  # known only once the file is read
    ],
)
def test_inputs_that_the_data_can_fill_check_clean(shape, data):
    netspec.loads(
        f"input: {{shape: {shape}}}\nlayers:\n  - ReLU\nloss: MSELoss\ndata: {data}\n",
        source="w.yaml",
    )

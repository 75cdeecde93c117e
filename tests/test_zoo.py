"""The zoo specs (specs/zoo/) are torchvision's models: the published parameter counts, and,
with torch installed, torchvision's state dict (keys, order, shapes), which loads as is, and
the same outputs and gradients in float64 as the same model built by hand in torch
(tests/torchvision_models.py; torchvision itself is not installable here).

The parity tests run each spec at a small input (the adaptive pools make the classifier
independent of it): 32x32 for VGG (five halvings to 1x1), 63x63 for AlexNet, the smallest its
11x11/4 convolution and three 3x3/2 pools take. The ResNets would run at 32x32 too, but in
train mode layer4's BatchNorm then normalises two values per channel, which amplifies rounding
to 1e-9 of the largest gradient; at 64x64 (eight values) netspec and torch agree to 2e-13.

How long the specs are, against their flat form (one line per layer; the flat count is
`len(netspec.load(path).layers)`), counting the lines of `blocks:` and `layers:`. The sizes
a layer reads (in_channels, num_features, in_features) are left out: inference gives them.

    spec        blocks + layers   of which layers   flat layers   whole file
    resnet18          35                11               69            50
    resnet34          35                11              125            52
    vgg11_bn          29                29               38            44
    alexnet           28                28               22            36

ResNet-34 is ResNet-18 with other repeats: layer2-4 are `[DownBlock: {planes: P},
{type: BasicBlock, planes: P, repeat: K}]`, whose unnamed `repeat` adds its copies to the
Sequential's list (see test_repeat_inside_a_sequential below). VGG's features are
written flat, three layers a line: a block would nest them one level deeper than torchvision's
`features.N`. AlexNet is torchvision's two Sequentials, one layer a line, plus the
Sequential headers: longer than flat, but with torchvision's names.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import netspec

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "specs" / "zoo"
# name -> (published parameter count, input side of the parity tests)
MODELS = {
    "resnet18": (11_689_512, 64),
    "resnet34": (21_797_672, 64),
    "vgg11_bn": (132_868_840, 32),
    "alexnet": (61_100_840, 63),
}
# Warnings a zoo spec carries on purpose: torchvision's VGG convolutions have a bias that the
# BatchNorm2d after them cancels; the spec keeps it so that the state dict is the same.
INTENDED_WARNINGS = {"vgg11_bn": {"bias-before-batchnorm"}}
# float64 agreement: relative 1e-8, absolute 1e-9 of the array's largest entry.
RTOL, ATOL_OF_MAX = 1e-8, 1e-9
BATCH = 2


def _load(name: str, side: int | None = None) -> netspec.Spec:
    """The zoo spec, at its own input (224x224) or at side x side."""
    path = ZOO / f"{name}.yaml"
    text = path.read_text()
    if side is not None:
        written = "input: {shape: [3, 224, 224]}"
        assert written in text
        text = text.replace(written, f"input: {{shape: [3, {side}, {side}]}}")
    return netspec.loads(text, source=str(path))


def _section_lines(name: str) -> dict[str, int]:
    """Lines of each top-level section (`blocks`, `layers`, ...), its key line left out."""
    counts: dict[str, int] = {}
    section = None
    for line in (ZOO / f"{name}.yaml").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            section = line.split(":")[0]
            counts[section] = 0
        elif section is not None and line.strip() and not line.lstrip().startswith("#"):
            counts[section] += 1
    return counts


# -- without torch ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_zoo_specs_have_the_published_parameter_counts(name):
    spec = _load(name)
    assert {d.code for d in spec.warnings} == INTENDED_WARNINGS.get(name, set())
    report = netspec.infer(spec)
    assert report.totals.params == report.totals.trainable_params == MODELS[name][0]
    assert report.output_shapes == [(None, 1000)]
    assert tuple(spec.input.shape) == (3, 224, 224) and spec.loss.type == "CrossEntropyLoss"


@pytest.mark.parametrize("name", MODELS)
def test_zoo_specs_name_the_schema_for_editors(name):
    first = (ZOO / f"{name}.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/netspec.schema.json"


def test_resnet18_takes_at_most_25_lines_of_layers():
    lines = _section_lines("resnet18")
    assert lines["layers"] <= 25
    assert (lines["blocks"], lines["layers"], len(_load("resnet18").layers)) == (24, 11, 69)


@pytest.mark.parametrize(
    "name, blocks_and_layers, flat, whole",
    [
        ("resnet18", 35, 69, 50),
        ("resnet34", 35, 125, 52),
        ("vgg11_bn", 29, 38, 44),
        ("alexnet", 28, 22, 36),
    ],
)
def test_the_line_counts_in_the_docstring(name, blocks_and_layers, flat, whole):
    lines = _section_lines(name)
    assert lines.get("blocks", 0) + lines["layers"] == blocks_and_layers
    assert len(_load(name).layers) == flat
    assert len((ZOO / f"{name}.yaml").read_text().splitlines()) == whole


def test_parameter_names_are_torchvisions_module_paths():
    names = _state_names(_load("resnet18"))
    assert names[:5] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
    ]
    assert "layer2.0.downsample.0.weight" in names
    assert "layer2.0.downsample.1.running_var" in names
    assert (
        "layer1.0.downsample.0.weight" not in names and "layer2.1.downsample.0.weight" not in names
    )
    assert names[-2:] == ["fc.weight", "fc.bias"]
    assert {"features.0.weight", "features.1.running_var", "classifier.6.bias"} <= set(
        _state_names(_load("vgg11_bn"))
    )
    alexnet = _state_names(_load("alexnet"))
    assert alexnet[:2] == ["features.0.weight", "features.0.bias"]
    assert alexnet[-2:] == ["classifier.6.weight", "classifier.6.bias"]


def _state_shapes(spec: netspec.Spec) -> dict[str, tuple[int, ...]]:
    """The state dict's names and shapes, from the spec alone (nothing compiled)."""
    shapes = {}
    for node in sorted(spec.graph.nodes, key=lambda n: n.index):
        for kind in (node.layer.parameter_shapes(), node.layer.buffer_shapes()):
            shapes.update({f"{node.name}.{k}": tuple(v) for k, v in kind.items()})
    return shapes


def _state_names(spec: netspec.Spec) -> list[str]:
    return list(_state_shapes(spec))


REPEAT_IN_SEQUENTIAL = """
name: repeat_in_sequential
input: {shape: [4]}
layers:
  - {type: Sequential, name: s, layers: [ReLU, {type: ReLU, repeat: 3}]}
"""


def test_repeat_inside_a_sequential_adds_copies_to_its_list():
    spec = netspec.loads(REPEAT_IN_SEQUENTIAL)
    assert [node.name for node in spec.graph.nodes] == ["s.0", "s.1", "s.2", "s.3"]
    assert [list(node.inputs) for node in spec.graph.nodes] == [
        ["input"],
        ["s.0"],
        ["s.1"],
        ["s.2"],
    ]


ZERO_CLASSES = """
name: zero_classes
input: {shape: [8]}
layers:
  - Linear: {in_features: 8, out_features: 0}
loss: CrossEntropyLoss
"""


def test_bench_of_a_classifier_with_no_classes_ends_in_no_traceback():
    from netspec.training.bench import bench

    with contextlib.suppress(netspec.NetspecError):
        bench(netspec.loads(ZERO_CLASSES), batch_size=2, repeats=1, warmup=0)


# -- against torch ------------------------------------------------------------------------------
@dataclass
class Pair:
    """A zoo spec at its test resolution, compiled, and the hand-built torch model whose
    (randomised) state dict it loaded."""

    name: str
    spec: netspec.Spec
    net: Any
    model: Any
    torch: Any


@contextlib.contextmanager
def _default_dtype(torch, dtype):
    """Build the torch model in float64 at once: no float32 copy of 100M weights to convert."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _randomise_batchnorm(torch, model) -> None:
    """Running statistics and affine parameters away from 0/1, so eval mode tests them."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
            module.num_batches_tracked.fill_(7)


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request):
    """One model at a time (pytest groups the tests by it), freed before the next."""
    torch = pytest.importorskip("torch")
    from tests import torchvision_models

    name = request.param
    torch.manual_seed(0)
    with _default_dtype(torch, torch.float64), torch.no_grad():
        model = getattr(torchvision_models, name)()
        _randomise_batchnorm(torch, model)
    spec = _load(name, side=MODELS[name][1])
    net = netspec.compile(spec, dtype="float64")
    net.load_state_dict(model.state_dict())  # torch tensors, torchvision's names: as is
    yield Pair(name, spec, net, model, torch)
    del net, model


def test_the_state_dict_is_torchvisions(pair):
    theirs = pair.model.state_dict()
    ours = pair.net.state_dict()
    assert list(ours) == list(theirs)  # the same keys, in torchvision's order
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in theirs.items()
    }
    assert _state_shapes(_load(pair.name)) == {k: tuple(v.shape) for k, v in theirs.items()}
    for key, value in theirs.items():
        assert np.array_equal(ours[key], value.numpy()), key  # loaded as is


def test_eval_mode_outputs_and_gradients_agree_with_torch(pair):
    _compare(pair, training=False)


def test_train_mode_batch_statistics_agree_with_torch(pair):
    if not pair.name.startswith("resnet"):
        pytest.skip("Dropout in train mode draws other masks than torch's")
    _compare(pair, training=True)


def _compare(pair: Pair, training: bool) -> None:
    torch, net, model = pair.torch, pair.net, pair.model
    net.train(training)
    model.train(training)
    net.zero_grad()
    model.zero_grad()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, *pair.spec.input.shape))
    target = rng.integers(0, 1000, size=BATCH)
    loss = netspec.compile_loss(pair.spec.loss, dtype="float64")

    y = net(x)
    value = loss(y, target)
    gx = net.backward(loss.backward())
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = model(tx)
    tvalue = torch.nn.functional.cross_entropy(ty, torch.from_numpy(target))
    tvalue.backward()

    assert np.std(y) > 1e-3  # the network does not just return zeros
    _assert_close(y, ty.detach().numpy(), "output")
    _assert_close(np.asarray(value), tvalue.detach().numpy(), "loss")
    _assert_close(gx, tx.grad.numpy(), "input gradient")
    theirs = {k: p.grad.numpy() for k, p in model.named_parameters()}
    assert list(net.grads) == list(theirs)
    for key, grad in net.grads.items():
        _assert_close(grad, theirs[key], key)
    if training:  # the running statistics moved the same way
        ours = net.state_dict()
        for key, buffer in model.named_buffers():
            _assert_close(ours[key], buffer.numpy(), key)


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """np.testing.assert_allclose's test, in a few passes over the array: it takes 11 s on
    VGG's 100M-entry gradient, this well under one."""
    assert actual.shape == expected.shape, what
    error = np.abs(actual - expected)
    error -= RTOL * np.abs(expected)
    atol = ATOL_OF_MAX * float(np.abs(expected).max(initial=0.0))
    if error.size and error.max() > atol:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise AssertionError(
            f"{what}: at {tuple(int(i) for i in worst)} netspec gives {actual[worst]!r}, "
            f"torch {expected[worst]!r} (rtol {RTOL}, atol {atol:.3g})"
        )

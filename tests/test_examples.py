"""The example specs: each names the schema for editors and checks clean; each seed spec
infers the shapes its PyTorch example produces (hard-coded here, and re-run in PyTorch
when it is installed)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import netspec

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "netspec.schema.json"
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs" / "seed").glob("*.yaml"))
# Warnings a spec carries on purpose (file name -> codes); none so far.
INTENDED_WARNINGS: dict[str, set[str]] = {}
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_are_examples_and_seed_examples():
    names = {p.name for p in SPECS}
    assert {
        "lenet5.yaml",
        "digits_cnn.yaml",
        "mlp.yaml",
        "vgg_small.yaml",
        "resnet_tiny.yaml",
        "all_layers.yaml",
    } <= names
    assert set(SEED) == {p.stem for p in (ROOT / "specs" / "seed").glob("*.yaml")}


@pytest.mark.parametrize("path", SPECS, ids=_id)
def test_every_spec_starts_with_the_schema_line(path):
    first = path.read_text().splitlines()[0]
    relative = Path(os.path.relpath(SCHEMA, path.parent)).as_posix()
    assert first == f"# yaml-language-server: $schema={relative}"
    assert (path.parent / relative).resolve() == SCHEMA.resolve()


@pytest.mark.parametrize("path", SPECS, ids=_id)
def test_every_spec_checks_clean(path):
    spec = netspec.load(path)  # raises SpecError on any error
    assert {d.code for d in spec.warnings} == INTENDED_WARNINGS.get(path.name, set())
    report = netspec.infer(spec, batch_size=2)
    assert all(row.output_shape[0] is not None for row in report.rows)


# -- the seed examples ------------------------------------------------------------------------
def _conv2d(torch):
    m = torch.nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1))
    return [m(torch.randn(20, 16, 50, 100))]


def _pool(kind):
    def run(torch):
        x = torch.randn(20, 16, 50, 32)
        pool = getattr(torch.nn, kind)
        return [pool(3, stride=2)(x), pool((3, 2), stride=(2, 1))(x)]

    return run


def _adaptive(kind, big):
    def run(torch):
        pool = getattr(torch.nn, kind)
        if not big:
            return [pool((5, 7))(torch.randn(1, 64, 8, 9))]
        return [pool(7)(torch.randn(1, 64, 10, 9)), pool((None, 7))(torch.randn(1, 64, 10, 9))]

    return run


def _activations(torch):
    nn = torch.nn
    modules = [
        nn.Sigmoid(),
        nn.Tanh(),
        nn.ReLU(),
        nn.LeakyReLU(0.1),
        nn.ReLU6(),
        nn.GELU(),
        nn.SELU(),
    ]
    x = torch.randn(2)
    # Unbatched in PyTorch: netspec's (1, 2) is PyTorch's output with its batch of one.
    return [m(x).unsqueeze(0) for m in modules]


def _crelu(torch):
    m = torch.nn.ReLU()
    x = torch.randn(2).unsqueeze(0)
    return [torch.cat((m(x), m(-x)))]


def _batchnorm2d(torch):
    x = torch.randn(20, 100, 35, 45)
    return [torch.nn.BatchNorm2d(100)(x), torch.nn.BatchNorm2d(100, affine=False)(x)]


def _loss_input(torch):
    # The loss examples feed input = torch.randn(3, 5) to the loss: that is the network output.
    return [torch.randn(3, 5, requires_grad=True)]


# name -> (batch size, expected output shapes, the PyTorch example computing them)
SEED = {
    "conv2d": (20, [(20, 33, 26, 100)], _conv2d),
    "maxpool2d": (20, [(20, 16, 24, 15), (20, 16, 24, 31)], _pool("MaxPool2d")),
    "avgpool2d": (20, [(20, 16, 24, 15), (20, 16, 24, 31)], _pool("AvgPool2d")),
    "adaptive_maxpool2d_8x9": (1, [(1, 64, 5, 7)], _adaptive("AdaptiveMaxPool2d", False)),
    "adaptive_maxpool2d_10x9": (
        1,
        [(1, 64, 7, 7), (1, 64, 10, 7)],
        _adaptive("AdaptiveMaxPool2d", True),
    ),
    "adaptive_avgpool2d_8x9": (1, [(1, 64, 5, 7)], _adaptive("AdaptiveAvgPool2d", False)),
    "adaptive_avgpool2d_10x9": (
        1,
        [(1, 64, 7, 7), (1, 64, 10, 7)],
        _adaptive("AdaptiveAvgPool2d", True),
    ),
    "activations": (1, [(1, 2)] * 7, _activations),
    "crelu": (1, [(2, 2)], _crelu),
    "softmax": (2, [(2, 3)], lambda torch: [torch.nn.Softmax(dim=1)(torch.randn(2, 3))]),
    "batchnorm2d": (20, [(20, 100, 35, 45)] * 2, _batchnorm2d),
    "linear": (128, [(128, 30)], lambda torch: [torch.nn.Linear(20, 30)(torch.randn(128, 20))]),
    "dropout": (4, [(4, 6)], lambda torch: [torch.nn.Dropout(p=0.2)(torch.randn(4, 6))]),
    "l1_loss": (3, [(3, 5)], _loss_input),
    "mse_loss": (3, [(3, 5)], _loss_input),
    "cross_entropy_loss": (3, [(3, 5)], _loss_input),
}


def _seed(name: str) -> netspec.Spec:
    return netspec.load(ROOT / "specs" / "seed" / f"{name}.yaml")


@pytest.mark.parametrize("name", list(SEED))
def test_seed_specs_infer_the_shapes_of_their_pytorch_examples(name):
    batch, expected, _ = SEED[name]
    report = netspec.infer(_seed(name), batch_size=batch)
    assert report.output_shapes == expected


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch runs the examples")
@pytest.mark.parametrize("name", list(SEED))
def test_the_hard_coded_shapes_are_what_pytorch_gives(name):
    import torch

    _, expected, example = SEED[name]
    torch.manual_seed(0)
    with torch.no_grad():
        assert [tuple(y.shape) for y in example(torch)] == expected


def test_seed_parameter_shapes_match_the_examples():
    (linear,) = _seed("linear").layers
    assert linear.parameter_shapes() == {"weight": (30, 20), "bias": (30,)}
    report = netspec.infer(_seed("batchnorm2d"))
    assert [r.params for r in report.rows] == [200, 0]
    conv = _seed("conv2d").layers[0]
    assert conv.parameter_shapes() == {"weight": (33, 16, 3, 5), "bias": (33,)}


def test_seed_loss_specs_name_their_losses_and_take_both_targets():
    assert _seed("l1_loss").loss.type == "L1Loss"
    assert _seed("mse_loss").loss.type == "MSELoss"
    loss = netspec.compile_loss(_seed("cross_entropy_loss").loss, dtype="float64")
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, 5))
    indices = rng.integers(0, 5, size=3)
    probabilities = rng.dirichlet(np.ones(5), size=3)
    assert np.shape(loss(y, indices)) == () and np.shape(loss(y, probabilities)) == ()
    if HAS_TORCH:
        import torch

        expected = [
            torch.nn.CrossEntropyLoss()(torch.from_numpy(y), torch.from_numpy(t)).item()
            for t in (indices, probabilities)
        ]
        assert [float(loss(y, t)) for t in (indices, probabilities)] == pytest.approx(expected)

"""Activations and Softmax: schema vs the torch constructors, shapes, gradients (finite
differences away from the kinks), and PyTorch parity in float64 and float32, kinks included.

Tests that need torch ask for the `torch` fixture, so the rest runs without it.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings

import numpy as np
import pytest
from pydantic import ValidationError

from netspec.errors import ArgError
from netspec.layers.activation import (
    GELU,
    SELU,
    LeakyReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    Softmax,
    Tanh,
)
from netspec.ops.special import erf as _erf
from netspec.types import ShapeError
from tests.harness import LayerRun, gradcheck, torch_parity

ELEMENTWISE = (Sigmoid, Tanh, ReLU, LeakyReLU, ReLU6, GELU, SELU)
ALL = (*ELEMENTWISE, Softmax)
SLOPES = (0.01, 0.1, 0.0, 1.0, 2.5, -0.2, -1.5, 1)
# Every argument value: (our layer, torch constructor arguments).
CASES = [
    *[(cls(), {}) for cls in (Sigmoid, Tanh)],
    *[
        (cls(inplace=inplace), {"inplace": inplace})
        for cls in (ReLU, ReLU6, SELU)
        for inplace in (False, True)
    ],
    *[
        (LeakyReLU(negative_slope=s, inplace=i), {"negative_slope": s, "inplace": i})
        for s in SLOPES
        for i in (False, True)
    ],
    *[(GELU(approximate=a), {"approximate": a}) for a in ("none", "tanh")],
    (LeakyReLU(), {}),
    (GELU(), {}),
]
# Points where a gradient is decided by convention: 0 everywhere, 6 for ReLU6.
KINKS = np.array([0.0, -0.0, 6.0, -6.0, 1e-300, -1e-300])


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_module(torch, layer, kwargs):
    """The torch twin of `layer`; an in-place one gets a copy of its input, since torch does
    not allow in-place writes into a leaf that requires grad."""
    module = getattr(torch.nn, layer.type_name)(**kwargs)
    if not kwargs.get("inplace"):
        return module
    if kwargs.get("negative_slope", 0.0) < 0:
        # PyTorch refuses this backward (test_inplace_negative_slope_trains); same values.
        return getattr(torch.nn, layer.type_name)(kwargs["negative_slope"])

    class CopyThen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x.clone())

    return CopyThen()


def sample(shape, seed=0, scale=3.0):
    """Normal values with the kink points planted at the start."""
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    flat = x.reshape(-1)
    count = min(flat.size, KINKS.size)
    flat[:count] = KINKS[:count]
    return x


def away_from_kinks(shape, seed=0):
    """Values at least 0.1 from 0 and from +-6, for finite differences."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 7.5, shape) * rng.choice([-1, 1], shape)
    return np.where(np.abs(np.abs(x) - 6) < 0.1, x * 0.5, x)


# -- schema ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_defaults_match_torch_signature(torch, cls):
    params = inspect.signature(getattr(torch.nn, cls.__name__)).parameters
    ours = {k for k in cls.model_fields if k not in ("type", "name", "inputs")}
    named = {k for k, v in params.items() if v.kind is v.POSITIONAL_OR_KEYWORD}
    assert ours == named
    for name in named:
        assert cls.model_fields[name].default == params[name].default, name


@pytest.mark.parametrize("cls", ALL)
def test_type_and_docstring(cls):
    assert cls().type_name == cls.__name__
    assert f"Mirrors torch.nn.{cls.__name__}" in " ".join(cls.__doc__.split())
    for name, info in cls.model_fields.items():
        assert name == "type" or info.description, name


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ReLU, {"inplace": 1}),
        (ReLU6, {"inplace": "yes"}),
        (SELU, {"inplace": None}),
        (LeakyReLU, {"negative_slope": "0.1"}),
        (LeakyReLU, {"negative_slope": True}),
        (LeakyReLU, {"inplace": 0}),
        (Softmax, {"dim": 1.0}),
        (Softmax, {"dim": True}),
        (Softmax, {"dim": "1"}),
        (GELU, {"approximate": None}),
        (GELU, {"approximate": 1}),
        (Sigmoid, {"inplace": True}),
        (Tanh, {"dim": 1}),
        (ReLU, {"slope": 0.1}),
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys(cls, kwargs):
    with pytest.raises(ValidationError):
        cls(**kwargs)


@pytest.mark.parametrize(("cls", "kwargs"), [(Sigmoid, {"inplace": True}), (ReLU, {"slope": 1})])
def test_unknown_arguments_fail_in_torch_too(torch, cls, kwargs):
    with pytest.raises(TypeError):
        getattr(torch.nn, cls.__name__)(**kwargs)


def test_leaky_relu_slope_takes_an_int():
    assert LeakyReLU(negative_slope=1).negative_slope == 1.0


@pytest.mark.parametrize("approximate", ["foo", "None", "Tanh", ""])
def test_gelu_approximation_is_checked_with_torchs_message(torch, approximate):
    module = torch.nn.GELU(approximate=approximate)  # PyTorch only fails at the first forward
    with pytest.raises(RuntimeError) as theirs:
        module(torch.zeros(2, 3))
    with pytest.raises(ValidationError) as ours:
        GELU(approximate=approximate)
    assert str(theirs.value) in str(ours.value)
    error = ours.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, ArgError)
    assert error.field == "approximate"
    assert error.message == "approximate argument must be either none or tanh."


def test_gelu_schema_lists_the_choices():
    schema = GELU.model_json_schema()["properties"]["approximate"]
    assert schema["enum"] == ["none", "tanh"]


# -- shapes ----------------------------------------------------------------------------------
SHAPES = [(5,), (4, 6), (2, 3, 5), (2, 3, 4, 5), (2, 1, 2, 3, 2)]


@pytest.mark.parametrize(("layer", "kwargs"), CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_output_shape_matches_torch(torch, layer, kwargs, shape):
    expected = tuple(torch_module(torch, layer, kwargs)(torch.zeros(shape)).shape)
    assert layer.output_shape(shape) == expected
    assert layer.output_shape((None, *shape[1:])) == (None, *shape[1:])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dim", [None, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
def test_softmax_dim_range_matches_torch(torch, shape, dim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the implicit-dim deprecation
        try:
            expected = tuple(torch.nn.Softmax(dim=dim)(torch.zeros(shape)).shape)
        except IndexError as exc:
            with pytest.raises(ShapeError, match=re.escape(str(exc))) as ours:
                Softmax(dim=dim).output_shape((None, *shape[1:]))
            assert ours.value.field == "dim"
            assert ours.value.code == "dim"
            assert ours.value.recovered == (None, *shape[1:])
            return
    assert Softmax(dim=dim).output_shape(shape) == expected


def test_softmax_dim_out_of_range_message():
    with pytest.raises(ShapeError) as ours:
        Softmax(dim=2).output_shape((None, 3))
    assert ours.value.message == (
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)"
    )


@pytest.mark.parametrize(("rank", "axis"), [(1, 0), (2, 1), (3, 0), (4, 1), (5, 1)])
def test_softmax_implicit_dim_is_pytorchs_legacy_rule(rank, axis):
    assert Softmax().axis(rank) == axis


# -- PyTorch parity --------------------------------------------------------------------------
@pytest.mark.parametrize(("layer", "kwargs"), CASES)
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_parity(torch, layer, kwargs, shape, dtype):
    run = torch_parity(layer, torch_module(torch, layer, kwargs), sample(shape), dtype=dtype)
    assert run.ctx is not None


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 4), (2, 3, 4, 5), (5,)])
@pytest.mark.parametrize("dim", [None, 0, 1, 2, 3, -1, -2, -3, -4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_torch_parity(torch, shape, dim, dtype):
    if dim is not None and not -len(shape) <= dim < len(shape):
        return  # out of range: test_softmax_dim_range_matches_torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the implicit-dim deprecation
        torch_parity(Softmax(dim=dim), torch.nn.Softmax(dim=dim), sample(shape), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_large_logits_stay_finite(torch, dtype):
    x = np.array([[1000.0, 999.0, -1000.0], [-5e4, -5e4, -5e4]])
    run = torch_parity(Softmax(dim=1), torch.nn.Softmax(dim=1), x, dtype=dtype)
    assert np.isfinite(run.forward(x.astype(dtype))).all()


@pytest.mark.parametrize(("layer", "kwargs"), CASES)
def test_extreme_inputs_match_torch_without_warnings(torch, layer, kwargs):
    x = np.array([[-1e4, -800.0, -100.0, -30.0, -1e-8, 1e-8, 30.0, 100.0, 800.0, 1e4]])
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            torch_parity(layer, torch_module(torch, layer, kwargs), x, dtype=dtype)


def test_seed_example_leaky_relu(torch):
    torch.manual_seed(0)
    x = torch.randn(3, 2, dtype=torch.float64).numpy()
    run = torch_parity(LeakyReLU(negative_slope=0.1), torch.nn.LeakyReLU(0.1), x)
    np.testing.assert_array_equal(run.forward(x), np.where(x > 0, x, 0.1 * x))


def test_seed_example_softmax(torch):
    x = np.arange(6.0).reshape(2, 3)
    run = torch_parity(Softmax(dim=1), torch.nn.Softmax(dim=1), x)
    np.testing.assert_allclose(run.forward(x).sum(axis=1), 1.0, rtol=1e-15)


def test_inplace_negative_slope_trains(torch):
    """PyTorch refuses this backward; netspec never aliases, so it has the plain gradient."""
    x = torch.tensor([[-1.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="negative slope"):
        torch.nn.LeakyReLU(-0.5, inplace=True)(x.clone()).sum().backward()
    run = LayerRun.build(LeakyReLU(negative_slope=-0.5, inplace=True))
    run.forward(x.detach().numpy().copy())
    np.testing.assert_array_equal(run.backward(np.ones((1, 3))), [[-0.5, -0.5, 1.0]])


# -- gradients, dtypes, kinks without torch --------------------------------------------------
@pytest.mark.parametrize(("layer", "kwargs"), CASES)
def test_gradcheck(layer, kwargs):
    gradcheck(layer, away_from_kinks((3, 5)))


@pytest.mark.parametrize("dim", [None, 0, 1, 2, -1])
def test_softmax_gradcheck(dim):
    gradcheck(Softmax(dim=dim), np.random.default_rng(3).standard_normal((2, 3, 4)))


@pytest.mark.parametrize(
    ("layer", "grads"),
    [
        (ReLU(), [0, 0, 0, 1, 1, 0]),
        (LeakyReLU(negative_slope=0.2), [0.2, 0.2, 0.2, 1, 1, 0.2]),
        (LeakyReLU(negative_slope=-3.0), [-3, -3, -3, 1, 1, -3]),
        (ReLU6(), [0, 0, 0, 1, 0, 0]),
        (
            SELU(),
            [1.0507009873554805 * 1.6732632423543772 * math.exp(x) for x in (-1, 0, 0)]
            + [1.0507009873554805] * 2
            + [1.0507009873554805 * 1.6732632423543772 * math.exp(-6)],
        ),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_at_the_kinks(layer, grads, dtype):
    x = np.array([[-1.0, 0.0, -0.0, 1.0, 6.0, -6.0]], dtype=dtype)
    run = LayerRun.build(layer, dtype)
    run.forward(x)
    np.testing.assert_allclose(run.backward(np.ones_like(x)), [grads], rtol=1e-6)


@pytest.mark.parametrize("layer", [cls() for cls in ALL] + [GELU(approximate="tanh")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_inputs_untouched(layer, dtype):
    x = sample((3, 4)).astype(dtype)
    g = np.random.default_rng(1).standard_normal((3, 4)).astype(dtype)
    x_copy, g_copy = x.copy(), g.copy()
    run = LayerRun.build(layer, dtype)
    y = run.forward(x)
    dx = run.backward(g)
    assert y.dtype == dtype
    assert dx.dtype == dtype
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(g, g_copy)


@pytest.mark.parametrize("layer", [Sigmoid(), Tanh(), Softmax(dim=1)])
def test_output_based_backward_saves_only_the_output(layer):
    run = LayerRun.build(layer)
    y = run.forward(sample((2, 3)))
    assert len(run.ctx.saved) in (1, 2)
    assert run.ctx.saved[0] is y


def test_erf_matches_math_erf():
    x = np.concatenate(
        [
            np.linspace(-8, 8, 20001),
            np.geomspace(1e-300, 30, 2000),
            -np.geomspace(1e-300, 30, 2000),
            [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 27.0, 1e300, -1e300],
        ]
    )
    expected = np.array([math.erf(v) for v in x])
    got = _erf(x, np)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=3e-16)
    assert np.all(np.abs(got) <= 1)


def test_erf_special_values_and_float32():
    got = _erf(np.array([np.nan, np.inf, -np.inf]), np)
    assert np.isnan(got[0]) and got[1] == 1 and got[2] == -1
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    got32 = _erf(x, np)
    assert got32.dtype == np.float32
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(got32, expected, rtol=0, atol=6e-7)

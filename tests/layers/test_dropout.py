"""Dropout and Dropout2d: masks cannot equal PyTorch's (another generator), so these tests
check the law: what is zeroed, how often, how the rest is scaled, and the gradient."""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest
from pydantic import ValidationError

from netspec.layers.base import Context
from netspec.layers.dropout import Dropout, Dropout2d
from netspec.types import ShapeError
from tests.harness import LayerRun, gradcheck

torch = pytest.importorskip("torch")

LAYERS = [(Dropout, torch.nn.Dropout), (Dropout2d, torch.nn.Dropout2d)]


def sample(shape, seed=0, dtype=np.float64):
    # Bounded away from zero, so that "zeroed" always means "dropped".
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(dtype)


def keep_scale(p: float, dtype) -> np.ndarray:
    return np.asarray(1.0 / (1.0 - p)).astype(dtype)


# -- schema ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("ours", "theirs"), LAYERS)
def test_defaults_match_torch_signature(ours, theirs):
    for name, param in inspect.signature(theirs).parameters.items():
        assert ours.model_fields[name].default == param.default, name


@pytest.mark.parametrize(("ours", "theirs"), LAYERS)
@pytest.mark.parametrize("p", [1.5, -0.1, 1.0000001, -1e-9, 0.0, 1.0, 0.2, 1, 0])
def test_probability_range_matches_torch(ours, theirs, p):
    try:
        theirs(p=p)
    except ValueError as exc:
        with pytest.raises(ValidationError, match=re.escape(str(exc))):
            ours(p=p)
    else:
        assert ours(p=p).p == p


@pytest.mark.parametrize("kwargs", [{"p": "0.5"}, {"p": True}, {"inplace": 1}, {"rate": 0.5}])
def test_schema_rejects_wrong_types_and_unknown_keys(kwargs):
    with pytest.raises(ValidationError):
        Dropout(**kwargs)


@pytest.mark.parametrize(("ours", "theirs"), LAYERS)
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5), (2, 3, 4, 5), (2, 3, 2, 2, 2)])
def test_output_shape_matches_torch(ours, theirs, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = tuple(theirs(p=0.3)(torch.zeros(shape)).shape)
    assert ours(p=0.3).output_shape(shape) == expected
    assert ours(p=0.3).output_shape((None, *shape[1:])) == (None, *shape[1:])


def test_dropout2d_rank_1_fails_like_torch():
    with pytest.raises(RuntimeError) as torch_error, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about the rank before failing
        torch.nn.Dropout2d(p=0.3)(torch.zeros(5))
    with pytest.raises(ShapeError) as ours:
        Dropout2d(p=0.3).output_shape((None,))
    assert ours.value.message.startswith(str(torch_error.value))
    assert Dropout2d(p=0.0).output_shape((None,)) == (None,)  # p = 0 never draws a mask


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5), (2, 3, 4, 5), (2, 3, 2, 2, 2)])
def test_dropout2d_warnings_are_torchs(shape):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.nn.Dropout2d(p=0.3)(torch.zeros(shape))
    expected = [str(w.message) for w in caught]
    warning = Dropout2d(p=0.3).input_warning(shape)
    assert ([warning] if warning else []) == expected


# -- the law ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(p, dtype):
    x = sample((200, 1000), dtype=dtype)
    run = LayerRun.build(Dropout(p=p), dtype)
    y = run.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    dropped = y == 0
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs(dropped.mean() - p) < 5 * sigma
    np.testing.assert_array_equal(y[~dropped], x[~dropped] * keep_scale(p, dtype))
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=2 * np.finfo(dtype).eps)
    # The gradient is the same mask, scaled the same way.
    g = sample(x.shape, seed=5, dtype=dtype)
    gx = run.backward(g)
    assert gx.dtype == dtype
    np.testing.assert_array_equal(gx, np.where(dropped, 0, g * keep_scale(p, dtype)))


@pytest.mark.parametrize("p", [0.25, 0.6])
@pytest.mark.parametrize("shape", [(40, 50, 3, 4), (40, 50, 7), (40, 50, 2, 1, 3)])
def test_dropout2d_zeroes_whole_channels(p, shape):
    x = sample(shape)
    run = LayerRun.build(Dropout2d(p=p))
    y = run.forward(x)
    planes = y.reshape(*shape[:2], -1)  # (N, C, rest)
    dropped = (planes == 0).all(-1)
    kept = (planes != 0).all(-1)
    assert np.all(dropped | kept)  # every (n, c) slice entirely dropped or entirely kept
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / dropped.size)
    np.testing.assert_array_equal(y[kept], x[kept] * keep_scale(p, np.float64))
    g = sample(shape, seed=9)
    np.testing.assert_array_equal(
        run.backward(g), np.where(y == 0, 0, g * keep_scale(p, np.float64))
    )


def test_dropout2d_structure_is_torchs():
    """Which elements share a mask, in PyTorch: (n, c) slices, rows for a 3-D input,
    single elements for a 2-D one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in [(30, 40, 3, 3), (30, 40, 5), (30, 40)]:
            torch.manual_seed(0)
            theirs = torch.nn.Dropout2d(p=0.5)(torch.ones(shape)).numpy()
            ours = LayerRun.build(Dropout2d(p=0.5)).forward(np.ones(shape))
            for y in (theirs, ours):
                planes = y.reshape(*shape[:2], -1)
                assert np.all(planes == planes[..., :1])
                assert 0.4 < (planes[..., 0] == 0).mean() < 0.6


@pytest.mark.parametrize(("layer_type", "_"), LAYERS)
def test_eval_is_the_identity(layer_type, _):
    x = sample((3, 4, 5, 6))
    run = LayerRun.build(layer_type(p=0.7), training=False)
    np.testing.assert_array_equal(run.forward(x), x)
    np.testing.assert_array_equal(run.backward(x * 2), x * 2)


@pytest.mark.parametrize(("ours", "theirs"), LAYERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_p_zero_and_p_one_match_torch(ours, theirs, dtype):
    """Both are deterministic, so they compare value for value, NaN and inf included."""
    x = sample((4, 3, 2, 2), dtype=dtype)
    x[0, 0, 0, 0], x[1, 1, 1, 1] = np.nan, np.inf
    for p in (0.0, 1.0):
        run = LayerRun.build(ours(p=p), dtype)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = theirs(p=p)(tx)
        with np.errstate(invalid="ignore"):  # inf * 0, as PyTorch computes it
            y = run.forward(x)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        g = sample(x.shape, seed=1, dtype=dtype)
        ty.backward(torch.from_numpy(g))
        gx = run.backward(g)
        np.testing.assert_array_equal(gx, tx.grad.numpy())
        assert y.dtype == gx.dtype == dtype
    assert not np.isnan(LayerRun.build(ours(p=1.0)).forward(sample((5, 5)))).any()


@pytest.mark.parametrize(("layer_type", "_"), LAYERS)
def test_same_seed_same_mask(layer_type, _):
    x = sample((8, 6, 3, 3))
    layer = layer_type(p=0.5)
    first = LayerRun.build(layer, seed=4).forward(x)
    np.testing.assert_array_equal(first, LayerRun.build(layer, seed=4).forward(x))
    assert not np.array_equal(first, LayerRun.build(layer, seed=5).forward(x))
    # One generator, two calls: two different masks, as successive training steps need.
    ctx = Context(np, True, np.random.default_rng(0))
    assert not np.array_equal(layer.forward(None, x, ctx), layer.forward(None, x, ctx))


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("layer_type", "shape"), [(Dropout, (3, 5)), (Dropout2d, (3, 4, 2, 2))])
def test_gradcheck(layer_type, shape, p):
    for training in (True, False):
        gradcheck(layer_type(p=p), sample(shape, 2), training=training)


def test_seed_example():
    """torch.nn.Dropout's documented example, Dropout(p=0.2), on a (4, 6) input."""
    layer = Dropout(p=0.2)
    assert layer.output_shape((4, 6)) == tuple(torch.nn.Dropout(p=0.2)(torch.zeros(4, 6)).shape)
    x = sample((4, 6), dtype=np.float32)
    y = LayerRun.build(layer, np.float32).forward(x)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * keep_scale(0.2, np.float32))
    assert layer.parameter_shapes() == layer.buffer_shapes() == {} == layer.init(None)

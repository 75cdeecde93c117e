"""BatchNorm2d: schema, shape rule, errors, gradients and PyTorch parity (buffers included)."""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import pytest
from pydantic import ValidationError

from netspec.errors import InputError
from netspec.layers.base import Context, ParamView
from netspec.layers.batchnorm import BatchNorm2d
from netspec.types import ShapeError
from tests.harness import LayerRun, gradcheck, torch_parity

torch = pytest.importorskip("torch")

# Arguments that change the computation; momentum None is the cumulative average.
VARIANTS = [
    {},
    {"momentum": None},
    {"momentum": 0.0},
    {"momentum": 1.0},
    {"eps": 1e-3, "momentum": 0.3},
    {"affine": False},
    {"bias": False},
    {"track_running_stats": False},
    {"affine": False, "track_running_stats": False},
]
SHAPES = [(2, 3, 4, 5), (5, 1, 1, 1), (1, 4, 3, 1), (3, 2, 6, 6)]


def sample(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    # A non-zero mean and a spread per channel, as real activations have.
    offset = rng.uniform(-2, 2, (1, shape[1], 1, 1))
    return (rng.standard_normal(shape) * 1.5 + offset).astype(dtype)


def torch_bn(num_features, **kwargs):
    return torch.nn.BatchNorm2d(num_features, **kwargs)


def randomised_state(layer: BatchNorm2d, seed=3) -> dict[str, np.ndarray]:
    """Non-trivial parameters and running statistics, so every term of backward matters."""
    rng = np.random.default_rng(seed)
    values = layer.init(rng)
    c = layer.num_features
    if "weight" in values:
        values["weight"] = rng.uniform(0.5, 2.0, c)
    if "bias" in values:
        values["bias"] = rng.uniform(-1.0, 1.0, c)
    if "running_mean" in values:
        values["running_mean"] = rng.uniform(-1.0, 1.0, c)
        values["running_var"] = rng.uniform(0.5, 2.0, c)
        values["num_batches_tracked"] = np.array(4, dtype=np.int64)
    return values


# -- schema ---------------------------------------------------------------------------------
def test_defaults_match_torch_signature():
    params = inspect.signature(torch.nn.BatchNorm2d).parameters
    fields = BatchNorm2d.model_fields
    for name, param in params.items():
        if param.default is not inspect.Parameter.empty:
            assert fields[name].default == param.default, name
    assert "num_features" in fields and fields["num_features"].default is None  # inferred


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_parameters_and_buffers_match_torch(kwargs):
    layer = BatchNorm2d(num_features=3, **kwargs)
    module = torch_bn(3, **kwargs)
    assert list(layer.parameter_shapes()) == [k for k, _ in module.named_parameters()]
    assert list(layer.buffer_shapes()) == [k for k, _ in module.named_buffers()]
    values = layer.init(np.random.default_rng(0))
    state = module.state_dict()
    assert list(values) == list(state)
    for name, value in state.items():
        np.testing.assert_array_equal(values[name], value.numpy(), err_msg=name)
        assert values[name].shape == tuple(value.shape), name
    if "num_batches_tracked" in values:
        assert values["num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize(
    ("num_features", "affine", "track"),
    [(-1, True, True), (-2, True, False), (-3, False, True), (-2, False, False), (0, True, True)],
)
def test_constructor_errors_match_torch(num_features, affine, track):
    try:
        torch_bn(num_features, affine=affine, track_running_stats=track)
    except RuntimeError as exc:
        with pytest.raises(ValidationError, match=re.escape(str(exc))):
            BatchNorm2d(num_features=num_features, affine=affine, track_running_stats=track)
    else:
        BatchNorm2d(num_features=num_features, affine=affine, track_running_stats=track)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_features": True},
        {"num_features": "3"},
        {"num_features": 3, "eps": "1e-5"},
        {"num_features": 3, "affine": 1},
        {"num_features": 3, "momentum": "fast"},
        {"num_features": 3, "groups": 2},
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys(kwargs):
    with pytest.raises(ValidationError):
        BatchNorm2d(**kwargs)


# -- shapes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [*SHAPES, (7, 16, 3, 9)])
def test_output_shape_matches_torch(shape):
    layer = BatchNorm2d(num_features=shape[1])
    assert layer.output_shape(shape) == tuple(torch_bn(shape[1])(torch.zeros(shape)).shape)
    assert layer.output_shape((None, *shape[1:])) == (None, *shape[1:])


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 5, 6)])
def test_wrong_rank_is_a_shape_error(shape):
    with pytest.raises(ValueError) as torch_error:
        torch_bn(3)(torch.zeros(shape))
    with pytest.raises(ShapeError) as ours:
        BatchNorm2d(num_features=3).output_shape(shape)
    assert ours.value.message.startswith(str(torch_error.value))
    assert "batch dimension" in ours.value.message
    assert ours.value.recovered == shape


def test_channel_mismatch_is_a_shape_error_on_num_features():
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        torch_bn(4)(torch.zeros(2, 3, 5, 5))
    with pytest.raises(ShapeError) as ours:
        BatchNorm2d(num_features=4).output_shape((None, 3, 5, 5))
    assert ours.value.field == "num_features"
    assert ours.value.hint == "set num_features: 3"
    assert ours.value.recovered == (None, 3, 5, 5)


@pytest.mark.parametrize("track", [True, False])
def test_one_value_per_channel_fails_like_torch(track):
    shape = (1, 3, 1, 1)
    module = torch_bn(3, track_running_stats=track)
    with pytest.raises(ValueError) as torch_error:
        module(torch.zeros(shape))
    layer = BatchNorm2d(num_features=3, track_running_stats=track)
    with pytest.raises(ShapeError) as ours:
        layer.output_shape(shape)
    assert ours.value.message == str(torch_error.value)
    assert layer.output_shape((None, 3, 1, 1)) == (None, 3, 1, 1)  # unknown batch: no error
    with pytest.raises(InputError, match=r"got input size torch\.Size\(\[1, 3, 1, 1\]\)"):
        LayerRun.build(layer).forward(np.zeros(shape))


@pytest.mark.parametrize("eps", [0.0, -1e-5])
@pytest.mark.parametrize("training", [True, False])
def test_non_positive_eps_fails_like_torch(eps, training):
    """PyTorch accepts any eps in the constructor and refuses it in forward."""
    layer = BatchNorm2d(num_features=3, eps=eps)
    x = sample((2, 3, 2, 2))
    module = torch_bn(3, eps=eps).double().train(training)
    run = LayerRun.build(layer, training=training)
    if eps < 0.0 or training:
        with pytest.raises(ValueError) as torch_error:
            module(torch.from_numpy(x))
        with pytest.raises(InputError) as ours:
            run.forward(x)
        assert str(ours.value) == str(torch_error.value)
    else:
        np.testing.assert_allclose(run.forward(x), module(torch.from_numpy(x)).detach().numpy())
    with pytest.raises(ShapeError) as static:  # netspec trains: eps must be positive
        layer.output_shape((None, 3, 2, 2))
    assert static.value.field == "eps"
    assert static.value.message.startswith("batch_norm eps must be positive during training")


def test_one_value_per_channel_is_fine_in_eval_with_running_stats():
    module = torch_bn(3).double().eval()
    x = sample((1, 3, 1, 1))
    run = LayerRun.build(BatchNorm2d(num_features=3), training=False)
    np.testing.assert_allclose(run.forward(x), module(torch.from_numpy(x)).detach().numpy())


# -- values and gradients --------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", VARIANTS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_parity(kwargs, training, dtype):
    for i, shape in enumerate(SHAPES):
        if shape[0] * shape[2] * shape[3] == 1 and (training or "track_running_stats" in kwargs):
            continue
        layer = BatchNorm2d(num_features=shape[1], **kwargs)
        run = torch_parity(
            layer, torch_bn(shape[1], **kwargs), sample(shape, i), dtype=dtype, training=training
        )
        for name, value in run.store.items():
            assert value.dtype == (np.int64 if name == "num_batches_tracked" else dtype), name
        assert run.forward(sample(shape, i, dtype)).dtype == dtype


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"track_running_stats": False}])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 6, 7), (4, 16, 8, 8), (2, 3, 1, 1)])
def test_channels_last_input_matches_torch(kwargs, training, shape):
    """A convolution's channels-last output is read as rows of pixels*C values, each row
    tiling the per-channel vectors: the same values and gradients as NCHW."""
    x = sample(shape, 5)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    layer = BatchNorm2d(num_features=shape[1], **kwargs)
    torch_parity(layer, torch_bn(shape[1], **kwargs), x, training=training)


@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"momentum": 0.25, "bias": False}])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_successive_training_steps_then_eval_match_torch(kwargs, dtype):
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    layer = BatchNorm2d(num_features=4, **kwargs)
    run = LayerRun.build(layer, dtype)
    module = torch_bn(4, **kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    for step, n in enumerate([2, 5, 3, 1, 4]):
        x = sample((n, 4, 3, 2), seed=10 + step, dtype=dtype)
        np.testing.assert_allclose(
            run.forward(x), module(torch.from_numpy(x)).detach().numpy(), **tol
        )
        state = module.state_dict()
        for name, value in state.items():
            np.testing.assert_allclose(run.store[name], value.numpy(), **tol, err_msg=name)
        assert int(run.store["num_batches_tracked"]) == step + 1
        assert isinstance(run.store["num_batches_tracked"], np.ndarray)
    run.training = False
    module.eval()
    x = sample((3, 4, 2, 2), seed=99, dtype=dtype)
    np.testing.assert_allclose(run.forward(x), module(torch.from_numpy(x)).detach().numpy(), **tol)
    assert int(run.store["num_batches_tracked"]) == 5  # eval leaves the buffers alone


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"affine": False}, {"bias": False}, {"track_running_stats": False}, {"momentum": None}],
)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (2, 3, 1, 2)])
def test_gradcheck(kwargs, training, shape):
    layer = BatchNorm2d(num_features=shape[1], **kwargs)
    store = randomised_state(layer)
    gradcheck(layer, sample(shape, 7), training=training, store=store)


def test_empty_batch_matches_torch():
    layer = BatchNorm2d(num_features=3)
    run = torch_parity(layer, torch_bn(3), np.zeros((0, 3, 2, 2)))
    assert int(run.store["num_batches_tracked"]) == 1


@pytest.mark.parametrize("affine", [True, False])
def test_seed_examples(affine):
    """torch.nn.BatchNorm2d's documented examples: BatchNorm2d(100[, affine=False])."""
    shape = (20, 100, 35, 45)
    layer = BatchNorm2d(num_features=100, affine=affine)
    assert layer.output_shape(shape) == shape == layer.output_shape((20, 100, 35, 45))
    assert layer.output_shape((None, 100, 35, 45)) == (None, 100, 35, 45)
    torch_parity(layer, torch_bn(100, affine=affine), sample(shape), dtype=np.float32)


def test_training_and_eval_buffers_across_modes_with_parameter_view():
    """Buffers live in a flat store under the layer's prefix, as in a network."""
    layer = BatchNorm2d(num_features=2)
    store = {f"3.{k}": v for k, v in layer.init(np.random.default_rng(0)).items()}
    x = sample((4, 2, 3, 3))
    for training in (True, False, True):
        ctx = Context(np, training)
        layer.forward(ParamView(store, "3."), x, ctx)
    assert int(store["3.num_batches_tracked"]) == 2
    module = torch_bn(2).double()
    module(torch.from_numpy(x))
    module(torch.from_numpy(x))
    np.testing.assert_allclose(store["3.running_var"], module.running_var.numpy(), rtol=1e-12)


def test_grid_of_argument_combinations_runs_forward_and_backward():
    """Every combination of the boolean arguments, in both modes, keeps shapes and dtypes."""
    for affine, bias, track, training in itertools.product([True, False], repeat=4):
        layer = BatchNorm2d(num_features=3, affine=affine, bias=bias, track_running_stats=track)
        run = LayerRun.build(layer, np.float32, training=training)
        x = sample((2, 3, 2, 2), dtype=np.float32)
        y = run.forward(x)
        gx = run.backward(np.ones_like(y))
        assert y.shape == gx.shape == x.shape
        assert y.dtype == gx.dtype == np.float32
        assert all(g.dtype == np.float32 for g in run.grads.values())

"""Pooling layers: schema, shape rule and errors against PyTorch, gradients, PyTorch parity of
values, indices and input gradients (ties, NaN and −inf included), and CuPy against NumPy."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from netspec.layers.base import Context, ParamView
from netspec.layers.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from netspec.ops.layout import to_layout
from netspec.types import ShapeError
from tests.harness import LayerRun, gradcheck, torch_parity

torch = pytest.importorskip("torch")

OURS = {
    "MaxPool2d": MaxPool2d,
    "AvgPool2d": AvgPool2d,
    "AdaptiveMaxPool2d": AdaptiveMaxPool2d,
    "AdaptiveAvgPool2d": AdaptiveAvgPool2d,
}
TORCH_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Thousands of tiny torch calls: one thread avoids OpenMP wake-ups under a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, **kwargs):
    return OURS[name](**kwargs), getattr(torch.nn, name)(**kwargs)


def distinct(shape, seed=0, dtype=np.float64):
    """Values 0.1 apart in random order: no ties, so max pooling is smooth under finite
    differences."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3.0).astype(dtype)


def torch_outcome(module, shape):
    """The output shape of the torch module on zeros of `shape`, or its error message."""
    try:
        out = module(torch.zeros(shape, dtype=torch.float64))
    except TORCH_ERRORS as exc:
        return None, str(exc).splitlines()[0]
    out = out[0] if isinstance(out, tuple) else out
    return tuple(out.shape), None


def assert_same_outcome(layer, module, shape):
    expected, message = torch_outcome(module, shape)
    context = f"{layer!r} on {shape}"
    if expected is not None:
        assert layer.output_shape(shape) == expected, context
        assert layer.output_shape((None, *shape[1:])) == (None, *expected[1:]), context
    else:
        with pytest.raises(ShapeError) as info:
            layer.output_shape(shape)
        assert info.value.message == message, context


def forward_backward(layer, x, g, xp=np):
    ctx = Context(xp, True)
    y = layer.forward(ParamView({}, ""), x, ctx)
    gx = layer.backward(ParamView({}, ""), g, ctx, ParamView({}, ""))
    return y, gx, ctx.outputs.get("indices")


# -- schema ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OURS))
def test_defaults_and_names_match_torch(name):
    fields = OURS[name].model_fields
    for arg, param in inspect.signature(getattr(torch.nn, name)).parameters.items():
        assert arg in fields, arg
        if param.default is inspect.Parameter.empty:
            assert fields[arg].is_required(), arg
        else:
            assert fields[arg].default == param.default, arg


def test_yaml_lists_become_tuples_and_types_are_strict():
    assert MaxPool2d.model_validate({"kernel_size": [3, 2]}).kernel_size == (3, 2)
    assert AdaptiveMaxPool2d.model_validate({"output_size": [None, 7]}).output_size == (None, 7)
    for bad in (
        {"kernel_size": True},
        {"kernel_size": "3"},
        {"kernel_size": 2.0},
        {"kernel_size": [2, 2, 2]},
        {"kernel_size": 2, "ceil_mode": 1},
        {"kernel_size": 2, "dilatation": 2},
    ):
        with pytest.raises(ValidationError):
            MaxPool2d.model_validate(bad)
    with pytest.raises(ValidationError):
        AvgPool2d.model_validate({"kernel_size": 2, "divisor_override": 1.5})
    with pytest.raises(ValidationError):
        AdaptiveAvgPool2d.model_validate({"output_size": [7]})


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("MaxPool2d", {"kernel_size": 0}),
        ("MaxPool2d", {"kernel_size": 2, "stride": 0, "padding": -1, "dilation": 0}),
        ("AvgPool2d", {"kernel_size": -1, "divisor_override": 0}),
        ("AdaptiveMaxPool2d", {"output_size": -1}),
        ("AdaptiveAvgPool2d", {"output_size": None}),
    ],
)
def test_constructors_accept_what_torch_accepts(name, kwargs):
    build(name, **kwargs)  # PyTorch checks pooling arguments at forward time only


# -- shapes and errors against torch ----------------------------------------------------------
SIZES = [(2, 3, 5, 5), (1, 2, 7, 6), (2, 1, 4, 9), (1, 1, 2, 3), (1, 0, 4, 4)]


def test_max_pool_shapes_and_errors_match_torch():
    grid = itertools.product(
        [1, 2, 3, (2, 3), (3, 1)],
        [None, 1, 2, (2, 1), 3],
        [0, 1, (1, 0), 2],
        [1, 2, (1, 2)],
        [False, True],
    )
    for kernel, stride, padding, dilation, ceil_mode in grid:
        kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation)
        layer, module = build("MaxPool2d", **kwargs, ceil_mode=ceil_mode)
        for shape in SIZES:
            assert_same_outcome(layer, module, shape)


def test_avg_pool_shapes_and_errors_match_torch():
    grid = itertools.product(
        [1, 2, 3, (2, 3), (3, 1)],
        [None, 1, 2, (2, 1), 3],
        [0, 1, (1, 0), 2],
        [False, True],
        [False, True],
    )
    for kernel, stride, padding, ceil_mode, include in grid:
        kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
        layer, module = build("AvgPool2d", **kwargs, count_include_pad=include)
        for shape in SIZES:
            assert_same_outcome(layer, module, shape)


small = st.integers(-1, 4)
pairs = st.one_of(small, st.tuples(small, small))


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["MaxPool2d", "AvgPool2d"]),
    kernel=pairs,
    stride=st.one_of(st.none(), pairs),
    padding=pairs,
    dilation=pairs,
    ceil_mode=st.booleans(),
    size=st.tuples(st.integers(1, 3), st.integers(0, 2), st.integers(1, 9), st.integers(1, 9)),
)
def test_random_window_arguments_match_torch(
    name, kernel, stride, padding, dilation, ceil_mode, size
):
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if name == "MaxPool2d":
        kwargs["dilation"] = dilation
    layer, module = build(name, **kwargs)
    assert_same_outcome(layer, module, size)


@pytest.mark.parametrize("name", ["AdaptiveMaxPool2d", "AdaptiveAvgPool2d"])
def test_adaptive_shapes_and_errors_match_torch(name):
    sizes = [1, 3, 7, 0, -1, (5, 7), (None, 7), (4, None), (None, None), (2, -3), (0, 2)]
    for output_size in sizes:
        layer, module = build(name, output_size=output_size)
        for shape in [(1, 64, 8, 9), (2, 3, 5, 4), (1, 0, 3, 3), (1, 2, 0, 3), (1, 2, 3, 0)]:
            if name == "AdaptiveAvgPool2d" and output_size == 1 and 0 in shape[2:]:
                # torch's 1x1 shortcut (a mean) skips its own empty-input check and returns
                # NaN; netspec keeps the check
                with pytest.raises(ShapeError, match="non-zero size"):
                    layer.output_shape(shape)
                continue
            assert_same_outcome(layer, module, shape)


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("MaxPool2d", {"kernel_size": 3, "stride": 2}, (20, 16, 50, 32)),
        ("MaxPool2d", {"kernel_size": (3, 2), "stride": (2, 1)}, (20, 16, 50, 32)),
        ("AvgPool2d", {"kernel_size": 3, "stride": 2}, (20, 16, 50, 32)),
        ("AvgPool2d", {"kernel_size": (3, 2), "stride": (2, 1)}, (20, 16, 50, 32)),
        ("AdaptiveMaxPool2d", {"output_size": (5, 7)}, (1, 64, 8, 9)),
        ("AdaptiveMaxPool2d", {"output_size": 7}, (1, 64, 10, 9)),
        ("AdaptiveMaxPool2d", {"output_size": (None, 7)}, (1, 64, 10, 9)),
        ("AdaptiveAvgPool2d", {"output_size": (5, 7)}, (1, 64, 8, 9)),
        ("AdaptiveAvgPool2d", {"output_size": 7}, (1, 64, 10, 9)),
        ("AdaptiveAvgPool2d", {"output_size": (None, 7)}, (1, 64, 10, 9)),
        # ceil_mode's last-window rule: a window starting in the right padding is dropped,
        # with padding and without
        (
            "MaxPool2d",
            {"kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True},
            (1, 1, 5, 5),
        ),
        ("MaxPool2d", {"kernel_size": 1, "stride": 4, "ceil_mode": True}, (1, 1, 4, 4)),
        (
            "AvgPool2d",
            {"kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True},
            (1, 1, 5, 5),
        ),
        ("AvgPool2d", {"kernel_size": 2, "ceil_mode": True}, (1, 1, 5, 7)),
    ],
)
def test_documented_examples(name, kwargs, shape):
    layer, module = build(name, **kwargs)
    expected, _ = torch_outcome(module, shape)
    assert layer.output_shape(shape) == expected


@pytest.mark.parametrize(
    "name, kwargs, shape, field, message",
    [
        ("MaxPool2d", {"kernel_size": 0}, (1, 1, 5, 5), "kernel_size", "stride should not be zero"),
        ("MaxPool2d", {"kernel_size": 2, "stride": (1, 0)}, (1, 1, 5, 5), "stride", None),
        ("MaxPool2d", {"kernel_size": 2, "padding": -1}, (1, 1, 5, 5), "padding", None),
        ("MaxPool2d", {"kernel_size": 3, "padding": 2}, (1, 1, 5, 5), "padding", None),
        (
            "MaxPool2d",
            {"kernel_size": 3, "padding": 2, "dilation": 2},
            (1, 1, 5, 5),
            "padding",
            None,
        ),
        ("MaxPool2d", {"kernel_size": -3, "stride": 1}, (1, 1, 5, 5), "padding", None),
        ("MaxPool2d", {"kernel_size": (2, -1), "stride": 1}, (1, 1, 5, 5), "kernel_size", None),
        ("MaxPool2d", {"kernel_size": 2, "stride": -1}, (1, 1, 5, 5), "stride", None),
        ("MaxPool2d", {"kernel_size": 2, "dilation": (1, 0)}, (1, 1, 5, 5), "dilation", None),
        ("MaxPool2d", {"kernel_size": 3}, (1, 1, 2, 2), "kernel_size", None),
        ("MaxPool2d", {"kernel_size": 3}, (4, 3, 2, 9), "kernel_size", None),
        ("MaxPool2d", {"kernel_size": 2}, (1, 0, 4, 4), None, None),
        (
            "AvgPool2d",
            {"kernel_size": 2, "divisor_override": 0},
            (1, 1, 5, 5),
            "divisor_override",
            None,
        ),
        ("AvgPool2d", {"kernel_size": 2, "stride": 0}, (1, 1, 5, 5), "stride", None),
        ("AvgPool2d", {"kernel_size": 3, "padding": 2}, (1, 1, 5, 5), "padding", None),
        ("AvgPool2d", {"kernel_size": 3}, (1, 1, 2, 2), "kernel_size", None),
        ("AdaptiveMaxPool2d", {"output_size": (None, -2)}, (1, 1, 5, 5), "output_size", None),
        ("AdaptiveMaxPool2d", {"output_size": 2}, (1, 0, 5, 5), None, None),
        ("AdaptiveAvgPool2d", {"output_size": (None, -1)}, (1, 1, 5, 5), "output_size", None),
        ("AdaptiveAvgPool2d", {"output_size": 2}, (1, 1, 5, 0), None, None),
    ],
)
def test_errors_carry_torch_message_and_field(name, kwargs, shape, field, message):
    layer, module = build(name, **kwargs)
    _, torch_message = torch_outcome(module, shape)
    assert torch_message is not None and (message is None or torch_message == message)
    with pytest.raises(ShapeError) as info:
        layer.output_shape(shape)
    assert info.value.message == torch_message
    assert info.value.field == field


@pytest.mark.parametrize("name", sorted(OURS))
@pytest.mark.parametrize("shape", [(None, 400), (None, 5, 5), (2, 1, 1, 5, 5)])
def test_rank_other_than_four_is_a_clear_error(name, shape):
    layer = OURS[name](
        **({"kernel_size": 2} if "kernel_size" in OURS[name].model_fields else {"output_size": 2})
    )
    with pytest.raises(ShapeError) as info:
        layer.output_shape(shape)
    assert info.value.code == "rank"
    assert "expects an (N, C, H, W) input" in info.value.message
    if len(shape) == 3:
        assert "batch dimension" in info.value.hint


def test_bare_none_output_size_is_a_shape_error():
    for name in ("AdaptiveMaxPool2d", "AdaptiveAvgPool2d"):
        layer, module = build(name, output_size=None)
        with pytest.raises(TypeError):
            module(torch.zeros(1, 1, 4, 4))
        with pytest.raises(ShapeError) as info:
            layer.output_shape((None, 1, 4, 4))
        assert info.value.field == "output_size" and "[null, null]" in info.value.hint


def test_side_output_shapes():
    x = (None, 3, 8, 8)
    assert MaxPool2d(kernel_size=2).side_output_shapes(x) == {}
    assert MaxPool2d(kernel_size=2, return_indices=True).side_output_shapes(x) == {
        "indices": (None, 3, 4, 4)
    }
    assert AdaptiveMaxPool2d(output_size=(None, 3), return_indices=True).side_output_shapes(x) == {
        "indices": (None, 3, 8, 3)
    }
    assert AvgPool2d(kernel_size=2).macs([(2, 3, 8, 8)], (2, 3, 4, 4)) == 0
    assert MaxPool2d(kernel_size=2).parameter_shapes() == {}


# -- gradients ------------------------------------------------------------------------------
MAX_CASES = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 0), "dilation": (2, 1)},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2, "ceil_mode": True},
    {"kernel_size": (3, 1), "stride": (3, 1)},
    {"kernel_size": 3},  # tiles, with a dropped last row and column
    {"kernel_size": 2, "stride": 3, "ceil_mode": True},
]
AVG_CASES = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 0), "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True, "divisor_override": 4},
    {"kernel_size": 2, "padding": 1, "divisor_override": -3},
    {"kernel_size": 3},
]
ADAPTIVE_SIZES = [1, 3, (5, 7), (None, 4), (2, None), (4, 3), 8]


@pytest.mark.parametrize("kwargs", MAX_CASES)
def test_max_pool_gradcheck(kwargs):
    gradcheck(MaxPool2d(**kwargs), distinct((2, 2, 7, 8)))


@pytest.mark.parametrize("kwargs", AVG_CASES)
def test_avg_pool_gradcheck(kwargs):
    gradcheck(AvgPool2d(**kwargs), np.random.default_rng(0).standard_normal((2, 2, 7, 8)))


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES)
def test_adaptive_gradcheck(output_size):
    gradcheck(AdaptiveMaxPool2d(output_size=output_size), distinct((1, 2, 6, 7)))
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 7))
    gradcheck(AdaptiveAvgPool2d(output_size=output_size), x)


# -- parity with torch -----------------------------------------------------------------------
def assert_indices_match(layer, module, x):
    run = LayerRun.build(layer)
    run.forward(x)
    _, expected = module(torch.from_numpy(x))
    indices = run.ctx.outputs["indices"]
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", MAX_CASES)
def test_max_pool_parity(kwargs, dtype):
    for shape in [(2, 3, 7, 8), (1, 2, 9, 5)]:
        x = np.random.default_rng(2).standard_normal(shape)
        layer, module = build("MaxPool2d", **kwargs, return_indices=True)
        run = torch_parity(layer, module, x, dtype=dtype)
        assert run.forward(x.astype(dtype)).dtype == dtype
        assert_indices_match(layer, module, x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", AVG_CASES)
def test_avg_pool_parity(kwargs, dtype):
    for shape in [(2, 3, 7, 8), (1, 2, 9, 5)]:
        x = np.random.default_rng(3).standard_normal(shape)
        layer, module = build("AvgPool2d", **kwargs)
        run = torch_parity(layer, module, x, dtype=dtype)
        assert run.forward(x.astype(dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("output_size", [*ADAPTIVE_SIZES, 0, (0, 3), (None, None)])
def test_adaptive_parity(output_size, dtype):
    for shape in [(2, 3, 8, 9), (1, 2, 5, 12), (2, 1, 3, 2)]:
        x = np.random.default_rng(4).standard_normal(shape)
        empty = 0 in AdaptiveAvgPool2d(output_size=output_size).output_shape(shape)
        layer, module = build("AdaptiveAvgPool2d", output_size=output_size)
        if empty:  # torch's backward refuses an empty output; ours gives zeros
            y, gx, _ = forward_backward(layer, x, np.zeros(module(torch.from_numpy(x)).shape))
            assert y.size == 0 and not gx.any()
        else:
            run = torch_parity(layer, module, x, dtype=dtype)
            assert run.forward(x.astype(dtype)).dtype == dtype
        layer, module = build("AdaptiveMaxPool2d", output_size=output_size, return_indices=True)
        assert_indices_match(layer, module, x)
        if not empty:
            torch_parity(layer, module, x, dtype=dtype)


def windows_touch_input(layer, shape) -> bool:
    """False when some window lies wholly in the padding (dilation can jump over the input):
    PyTorch then reports an index outside the window and scatters its gradient out of bounds."""
    from netspec.layers.pooling import _window_axes

    for axis in _window_axes(layer, shape, layer.dilation):
        for o in range(axis.out):
            taps = (o * axis.stride - axis.pad + t * axis.dilation for t in range(axis.kernel))
            if not any(0 <= position < axis.size for position in taps):
                return False
    return True


def test_ties_nan_and_inf_follow_torch():
    """Few distinct values (many ties), NaNs and −inf: PyTorch's picks exactly, with indices and
    gradients (the first maximum in row-major order; the last NaN; an all −inf window's first
    input position, never the padding)."""
    rng = np.random.default_rng(5)
    checked = 0
    while checked < 300:
        height, width = (int(v) for v in rng.integers(1, 9, 2))
        x = rng.integers(-2, 3, (2, 2, height, width)).astype(np.float64)
        x[rng.random(x.shape) < rng.choice([0.0, 0.1, 0.3])] = np.nan
        x[rng.random(x.shape) < rng.choice([0.0, 0.5, 0.9])] = -np.inf
        if rng.integers(2):
            kernel = tuple(int(v) for v in rng.integers(1, 5, 2))
            kwargs = dict(
                kernel_size=kernel,
                stride=tuple(int(v) for v in rng.integers(1, 4, 2)),
                padding=tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel),
                dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
                ceil_mode=bool(rng.integers(2)),
            )
            layer, module = build("MaxPool2d", **kwargs, return_indices=True)
            try:
                if not windows_touch_input(layer, x.shape):
                    continue
            except ShapeError:
                continue
        else:
            size = tuple(int(v) for v in rng.integers(1, 10, 2))
            layer, module = build("AdaptiveMaxPool2d", output_size=size, return_indices=True)
        tx = torch.from_numpy(x).requires_grad_(True)
        ty, expected_indices = module(tx)
        g = rng.standard_normal(ty.shape)
        ty.backward(torch.from_numpy(g))
        y, gx, indices = forward_backward(layer, x, g)
        context = f"{layer!r} on {x.shape}"
        np.testing.assert_array_equal(y, ty.detach().numpy(), err_msg=context)
        np.testing.assert_array_equal(indices, expected_indices.numpy(), err_msg=context)
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, err_msg=context)
        checked += 1


@pytest.mark.parametrize("kernel", [2, 3, (2, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiling_windows_pick_as_torch(kernel, channels_last):
    """Windows that tile the plane (stride = kernel, no padding) take the max over all
    their taps at once: ties, NaN and −inf windows still pick as PyTorch's loop."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        x = rng.integers(-2, 3, (2, 3, 7, 8)).astype(np.float64)
        x[rng.random(x.shape) < (0.0, 0.1)[trial % 2]] = np.nan
        x[rng.random(x.shape) < (0.0, 0.4, 0.9)[trial % 3]] = -np.inf
        if channels_last:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        layer, module = build("MaxPool2d", kernel_size=kernel, return_indices=True)
        tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        ty, expected_indices = module(tx)
        g = rng.standard_normal(ty.shape)
        ty.backward(torch.from_numpy(g))
        y, gx, indices = forward_backward(layer, x, g)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())
        np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_window_wholly_in_padding_gives_minus_inf_and_no_gradient():
    layer = MaxPool2d(kernel_size=(1, 2), padding=(0, 1), dilation=2, return_indices=True)
    x = np.ones((1, 1, 2, 1))
    y, gx, _ = forward_backward(layer, x, np.ones((1, 1, 2, 1)))
    np.testing.assert_array_equal(y, -np.inf)
    np.testing.assert_array_equal(gx, 0.0)


def test_empty_batch_runs():
    for layer in (
        MaxPool2d(kernel_size=2, return_indices=True),
        AvgPool2d(kernel_size=3, padding=1),
        AdaptiveMaxPool2d(output_size=3, return_indices=True),
        AdaptiveAvgPool2d(output_size=3),
    ):
        out = layer.output_shape((0, 2, 6, 6))
        y, gx, _ = forward_backward(layer, np.zeros((0, 2, 6, 6)), np.zeros(out))
        assert y.shape == out and gx.shape == (0, 2, 6, 6)


@pytest.mark.parametrize(
    "layer",
    [
        MaxPool2d(kernel_size=2, return_indices=True),  # tiles: the scatter path
        MaxPool2d(kernel_size=3, return_indices=True),  # tiles of 9 taps: an indexed write
        MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True),  # overlapping: the fold
        AvgPool2d(kernel_size=2),
        AvgPool2d(kernel_size=3, stride=2, padding=1),
        AdaptiveMaxPool2d(output_size=4, return_indices=True),
        AdaptiveMaxPool2d(output_size=(5, 7)),
        AdaptiveAvgPool2d(output_size=4),
        AdaptiveAvgPool2d(output_size=(5, 7)),
    ],
    ids=repr,
)
def test_gradient_keeps_the_memory_order_of_the_input(layer):
    """A channels-last input (a convolution's output) gets a channels-last gradient with the
    same values: the layer below multiplies it with arrays it saved in that order."""
    x = distinct((2, 3, 12, 12))
    g = np.random.default_rng(1).standard_normal(layer.output_shape(x.shape))
    expected = forward_backward(layer, x, g)
    assert expected[1].flags.c_contiguous
    got = forward_backward(layer, to_layout(x, True), to_layout(g, True))
    assert got[1].transpose(0, 2, 3, 1).flags.c_contiguous
    for want, have in zip(expected, got, strict=True):
        if want is not None:
            np.testing.assert_array_equal(have, want)


# -- CuPy -------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize(
    "layer",
    [
        MaxPool2d(kernel_size=2, return_indices=True),
        MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True),
        MaxPool2d(kernel_size=(2, 3), stride=1, dilation=(2, 1), return_indices=True),
        MaxPool2d(kernel_size=4, return_indices=True),
        AvgPool2d(kernel_size=2),
        AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        AdaptiveMaxPool2d(output_size=(5, 7), return_indices=True),
        AdaptiveMaxPool2d(output_size=4, return_indices=True),
        AdaptiveAvgPool2d(output_size=(5, 7)),
        AdaptiveAvgPool2d(output_size=1),
    ],
)
def test_cupy_matches_numpy(layer):
    from netspec.ops.backend import cuda_available

    if not cuda_available():
        pytest.skip("needs CuPy and a GPU")
    import cupy

    rng = np.random.default_rng(6)
    for nan in (False, True):
        x = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
        if nan:
            x[rng.random(x.shape) < 0.1] = np.nan
        g = rng.standard_normal(layer.output_shape(x.shape)).astype(np.float32)
        expected = forward_backward(layer, x, g)
        got = forward_backward(layer, cupy.asarray(x), cupy.asarray(g), xp=cupy)
        for want, have in zip(expected, got, strict=True):
            if want is None:
                assert have is None
                continue
            assert have.dtype == want.dtype
            np.testing.assert_allclose(cupy.asnumpy(have), want, rtol=1e-5, atol=1e-6)

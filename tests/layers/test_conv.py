"""Conv2d: schema, shape rule and errors against torch.nn.Conv2d, gradients, PyTorch parity."""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import pytest
from pydantic import ValidationError

from netspec.errors import ArgError
from netspec.layers.base import Context, ParamView
from netspec.layers.conv import Conv2d
from netspec.ops import im2col, layout
from netspec.ops.backend import cuda_available
from netspec.types import ShapeError
from tests.harness import LayerRun, gradcheck, torch_parity

pytestmark = pytest.mark.filterwarnings(
    "ignore:Initializing zero-element tensors:UserWarning",  # torch, for kernel_size 0
    "ignore:Using padding='same' with even kernel lengths:UserWarning",
)
MODES = ["zeros", "reflect", "replicate", "circular"]
SEED_EXAMPLE = dict(
    in_channels=16, out_channels=33, kernel_size=(3, 5), stride=(2, 1), padding=(4, 2),
    dilation=(3, 1),
)  # fmt: skip


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def sample(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_outcome(torch, kwargs, shape, module=None):
    """('shape', tuple) or ('error', message) for torch.nn.Conv2d(**kwargs) on `shape`."""
    try:
        with torch.no_grad():
            module = module or torch.nn.Conv2d(**kwargs)
            return "shape", tuple(module(torch.zeros(shape)).shape)
    except RuntimeError as error:
        return "error", str(error)


def our_outcome(kwargs, shape, layer=None):
    try:
        return "shape", (layer or Conv2d(**kwargs)).output_shape(shape)
    except ShapeError as error:
        return "error", error.message


def dense_in(a, order: str) -> bool:
    """Whether (N, C, H, W) `a` is one dense block in memory order 'nchw' or 'channels_last'
    (with one channel, both)."""
    return (a if order == "nchw" else a.transpose(0, 2, 3, 1)).flags.c_contiguous


def same_message(ours: str, theirs: str) -> bool:
    """Equal, up to the order of the items in a printed Python set ({'a', 'b'})."""
    sets = r"\{[^}]*\}"
    if re.sub(sets, "{}", ours) != re.sub(sets, "{}", theirs):
        return False
    items = [sorted(s.strip("{}").split(", ")) for s in re.findall(sets, ours)]
    return items == [sorted(s.strip("{}").split(", ")) for s in re.findall(sets, theirs)]


# -- schema ---------------------------------------------------------------------------------
def test_defaults_match_torch_signature(torch):
    params = inspect.signature(torch.nn.Conv2d).parameters
    fields = Conv2d.model_fields
    for name, param in params.items():
        if name == "in_channels":  # inferred from the input when left out (design.md §1.1)
            assert fields[name].default is None
        elif param.default is inspect.Parameter.empty:
            assert fields[name].is_required(), name
        else:
            assert fields[name].default == param.default, name


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_parameters_match_torch(torch, groups, bias):
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=(3, 2), groups=groups, bias=bias)
    module = torch.nn.Conv2d(**kwargs)
    shapes = Conv2d(**kwargs).parameter_shapes()
    assert shapes == {k: tuple(v.shape) for k, v in module.named_parameters()}
    assert Conv2d(**kwargs).buffer_shapes() == {}


def test_yaml_lists_and_strict_types():
    layer = Conv2d(in_channels=1, out_channels=2, kernel_size=[3, 5], padding=[1, 2])
    assert layer.kernel_size == (3, 5) and layer.padding == (1, 2)
    for bad in [{"kernel_size": True}, {"kernel_size": "3"}, {"padding": 1.5}, {"stride": [1]}]:
        with pytest.raises(ValidationError):
            Conv2d(**{"in_channels": 1, "out_channels": 2, "kernel_size": 3, **bad})


def test_init_is_kaiming_uniform():
    layer = Conv2d(in_channels=8, out_channels=16, kernel_size=(3, 2), groups=2)
    values = layer.init(np.random.default_rng(0))
    bound = 1 / np.sqrt(4 * 3 * 2)  # fan_in = C/G * kh * kw
    for name in ("weight", "bias"):
        assert values[name].dtype == np.float64
        assert np.abs(values[name]).max() <= bound
    assert np.abs(values["weight"]).max() > 0.95 * bound
    assert values["weight"].shape == (16, 4, 3, 2)


def test_macs():
    layer = Conv2d(**SEED_EXAMPLE)
    out = layer.output_shape((20, 16, 50, 100))
    assert layer.macs([(20, 16, 50, 100)], out) == 20 * 33 * out[2] * out[3] * 16 * 3 * 5
    grouped = Conv2d(in_channels=4, out_channels=6, kernel_size=3, groups=2)
    assert grouped.macs([(2, 4, 5, 5)], (2, 6, 3, 3)) == 2 * 6 * 3 * 3 * 2 * 9


# -- constructor errors -----------------------------------------------------------------------
CONSTRUCTOR_CASES = [
    {"groups": 0},
    {"groups": -1},
    {"groups": 2},  # in_channels 3 is not divisible
    {"in_channels": 4, "groups": 2},  # out_channels 5 is not divisible
    {"padding": "foo"},
    {"padding": "SAME"},
    {"padding_mode": "bar"},
    {"padding": "same", "stride": 2},
    {"padding": "same", "stride": (1, 2)},
    {"padding": "same", "stride": 0},
    {"kernel_size": -1},
    {"in_channels": -3},
    # accepted by the constructor, refused (or not) when run:
    {"kernel_size": 0},
    {"stride": 0},
    {"stride": -2},
    {"padding": -1},
    {"padding": (2, -1), "padding_mode": "reflect"},
    {"dilation": 0},
    {"dilation": -1},
    {"out_channels": 0},
    {"in_channels": 0, "out_channels": 0},
    {"padding": "same", "dilation": 2, "kernel_size": 4, "padding_mode": "circular"},
    {"padding": "valid", "stride": 3},
]


@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=str)
def test_constructor_errors_match_torch(torch, case):
    kwargs = {"in_channels": 3, "out_channels": 5, "kernel_size": 3, **case}
    try:
        torch.nn.Conv2d(**kwargs)
    except (ValueError, RuntimeError) as error:
        with pytest.raises(ValidationError) as caught:
            Conv2d(**kwargs)
        if isinstance(error, ValueError):  # torch's own argument checks: same message
            ours = caught.value.errors()[0]["ctx"]["error"]
            assert isinstance(ours, ArgError)
            assert same_message(ours.message, str(error)), (ours.message, str(error))
    else:
        Conv2d(**kwargs)


def test_arg_error_points_at_the_argument():
    with pytest.raises(ValidationError) as caught:
        Conv2d(in_channels=3, out_channels=4, kernel_size=3, groups=2)
    assert caught.value.errors()[0]["ctx"]["error"].field == "in_channels"
    with pytest.raises(ValidationError) as caught:
        Conv2d(in_channels=3, out_channels=4, kernel_size=3, padding="full")
    assert caught.value.errors()[0]["loc"] == ("padding",)


# -- output shapes and run-time errors against torch ------------------------------------------
def shape_grid(mode):
    kernels = [1, 2, 3, (3, 5), (2, 1)]
    strides = [1, 2, (2, 1), (1, 3)]
    paddings = [0, 1, (2, 1), "valid", "same"]
    dilations = [1, 2, (1, 3)]
    for k, s, p, d, groups in itertools.product(kernels, strides, paddings, dilations, [1, 2]):
        if p == "same" and s != 1:
            continue
        yield dict(in_channels=4, out_channels=6, kernel_size=k, stride=s, padding=p,
                   dilation=d, groups=groups, padding_mode=mode)  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_output_shapes_and_errors_match_torch(torch, mode):
    checked = errors = 0
    for kwargs in shape_grid(mode):
        module, layer = torch.nn.Conv2d(**kwargs), Conv2d(**kwargs)
        for shape in [(2, 4, 7, 9), (1, 4, 3, 4), (3, 4, 1, 6)]:
            expected = torch_outcome(torch, kwargs, shape, module)
            ours = our_outcome(kwargs, shape, layer)
            assert ours == expected, (kwargs, shape)
            checked += 1
            errors += expected[0] == "error"
    assert errors > 50 and checked - errors > 500  # both sides of the rule were exercised


def test_seed_example(torch):
    layer = Conv2d(**SEED_EXAMPLE)
    expected = torch.nn.Conv2d(**SEED_EXAMPLE)(torch.zeros(20, 16, 50, 100)).shape
    assert layer.output_shape((20, 16, 50, 100)) == tuple(expected) == (20, 33, 26, 100)
    assert layer.output_shape((None, 16, 50, 100)) == (None, 33, 26, 100)
    torch_parity(layer, torch.nn.Conv2d(**SEED_EXAMPLE), sample((2, 16, 20, 24)))


RUNTIME_ERROR_CASES = [
    ({}, (1, 2, 5, 5)),  # channel mismatch
    ({"in_channels": 4, "out_channels": 4, "groups": 2}, (1, 2, 5, 5)),
    ({"kernel_size": 4, "padding": "same"}, (1, 2, 5, 5)),  # torch shows the odd pixel padded
    ({}, (1, 3, 2, 2)),  # kernel larger than the input
    ({"kernel_size": 5, "padding": 1}, (2, 3, 2, 4)),
    ({"kernel_size": (3, 2), "dilation": 2}, (1, 3, 4, 10)),
    ({"padding": -1}, (1, 3, 10, 10)),
    ({"padding": (1, -1)}, (1, 3, 10, 10)),
    ({"stride": 0}, (1, 3, 10, 10)),
    ({"stride": (1, -1)}, (1, 3, 10, 10)),
    ({"dilation": -1}, (1, 3, 10, 10)),
    ({"kernel_size": 0}, (1, 3, 10, 10)),
    ({"kernel_size": (0, 3)}, (1, 3, 10, 10)),
    ({"out_channels": 0}, (1, 3, 10, 10)),
    ({"padding": 3, "padding_mode": "reflect"}, (1, 3, 3, 3)),
    ({"padding": (3, 0), "padding_mode": "reflect"}, (1, 3, 3, 8)),
    ({"padding": (-1, 6), "padding_mode": "reflect"}, (1, 3, 8, 6)),
    ({"padding": 3, "padding_mode": "circular"}, (1, 3, 2, 2)),
    ({"padding": 1, "padding_mode": "replicate"}, (1, 3, 0, 10)),
    ({"padding": 1, "padding_mode": "reflect"}, (1, 3, 0, 10)),
    ({"padding": 1}, (1, 3, 0, 10)),
    ({"padding": (-2, -2), "padding_mode": "replicate"}, (1, 3, 5, 5)),
]


@pytest.mark.parametrize(("case", "shape"), RUNTIME_ERROR_CASES, ids=str)
def test_runtime_errors_match_torch(torch, case, shape):
    kwargs = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **case}
    kind, message = torch_outcome(torch, kwargs, shape)
    assert kind == "error"
    with pytest.raises(ShapeError) as caught:
        Conv2d(**kwargs).output_shape(shape)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("case", "shape", "torch_messages"),
    [  # torch's wording here depends on its backend (batch size, oneDNN): any of them refuses
        ({"dilation": 0}, (2, 3, 10, 10), ["non-positive dilation is not supported"]),
        ({"kernel_size": 30, "dilation": 0}, (1, 3, 10, 10), ["non-positive dilation"]),
        ({"kernel_size": 0}, (2, 3, 10, 10), ["could not create a primitive"]),
    ],
)
def test_backend_dependent_errors_are_refused(torch, case, shape, torch_messages):
    kwargs = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **case}
    kind, message = torch_outcome(torch, kwargs, shape)
    assert kind == "error" and any(m in message for m in torch_messages)
    with pytest.raises(ShapeError):
        Conv2d(**kwargs).output_shape(shape)


def test_negative_padding_crops_in_the_other_modes(torch):
    for mode in MODES[1:]:
        kwargs = dict(
            in_channels=3, out_channels=4, kernel_size=3, padding=(-1, 2), padding_mode=mode
        )
        assert our_outcome(kwargs, (1, 3, 10, 10)) == torch_outcome(torch, kwargs, (1, 3, 10, 10))


def test_channel_mismatch_details():
    layer = Conv2d(in_channels=3, out_channels=8, kernel_size=3, padding=1)
    with pytest.raises(ShapeError) as caught:
        layer.output_shape((None, 4, 6, 6))
    error = caught.value
    assert (error.field, error.hint, error.code) == (
        "in_channels",
        "set in_channels: 4",
        "channels",
    )
    assert error.recovered == (None, 8, 6, 6)
    assert "expected input[N, 4, 6, 6] to have 3 channels" in error.message
    with pytest.raises(ShapeError) as caught:  # the kernel does not fit either: no recovery
        Conv2d(in_channels=3, out_channels=8, kernel_size=5).output_shape((2, 4, 2, 2))
    assert caught.value.recovered is None and caught.value.field == "in_channels"


@pytest.mark.parametrize("shape", [(None, 400), (None, 28, 28), (None, 1, 1, 28, 28), (28,)])
def test_rank_errors(shape):
    with pytest.raises(ShapeError) as caught:
        Conv2d(in_channels=1, out_channels=2, kernel_size=3).output_shape(shape)
    assert caught.value.code == "rank"
    assert "(N, C, H, W)" in caught.value.message
    if len(shape) == 3:
        assert "batch dimension" in caught.value.message


def test_forward_checks_the_input_too():
    run = LayerRun.build(Conv2d(in_channels=3, out_channels=2, kernel_size=3))
    with pytest.raises(ShapeError):
        run.forward(sample((1, 2, 5, 5)))


# -- gradients ----------------------------------------------------------------------------------
def case(c, o, k, shape, **kwargs):
    return dict(in_channels=c, out_channels=o, kernel_size=k, **kwargs), shape


GRADCHECK_CASES = [
    case(2, 3, 3, (2, 2, 5, 6)),
    case(3, 2, 3, (2, 3, 5, 4), padding=1),
    case(4, 4, (2, 3), (2, 4, 6, 5), stride=(2, 1), padding=(1, 2), groups=2),
    case(4, 2, 3, (1, 4, 6, 6), dilation=(2, 1), groups=2, padding=2),
    case(2, 2, 2, (2, 2, 5, 4), padding="same"),
    case(3, 2, (4, 2), (1, 3, 5, 7), padding="same", dilation=(1, 3)),
    case(2, 4, 1, (2, 2, 5, 5), stride=2, bias=False),
    case(4, 2, 2, (1, 4, 5, 6), stride=3, padding=4),
    case(3, 2, 2, (1, 3, 3, 3), padding=3),
    case(2, 6, 3, (2, 2, 4, 5), groups=2, padding="valid"),
]
MODE_GRADCHECK_CASES = [
    case(3, 2, 3, (2, 3, 4, 5), padding=(2, 1)),
    case(2, 3, (2, 3), (2, 2, 5, 4), stride=2, padding=1),
    case(3, 2, 4, (1, 3, 5, 6), padding="same", dilation=2),
    case(3, 2, 3, (1, 3, 6, 5), padding=(-1, 2)),
    case(2, 4, 2, (1, 2, 5, 6), padding=(2, -1), stride=(1, 2)),
]


@pytest.mark.parametrize(("kwargs", "shape"), GRADCHECK_CASES, ids=str)
def test_gradcheck(kwargs, shape):
    gradcheck(Conv2d(**kwargs), sample(shape))


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize(("kwargs", "shape"), MODE_GRADCHECK_CASES, ids=str)
def test_gradcheck_padding_modes(mode, kwargs, shape):
    gradcheck(Conv2d(**kwargs, padding_mode=mode), sample(shape))


# -- PyTorch parity over a broad grid -----------------------------------------------------------
def parity_grid(count=48, seed=7):
    """Random valid configurations over every argument (validity from our own shape rule,
    which the shape tests above hold to torch's)."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        kwargs = dict(
            in_channels=groups * int(rng.integers(1, 4)),
            out_channels=groups * int(rng.integers(1, 4)),
            kernel_size=_int_or_pair(rng, 1, 4),
            stride=_int_or_pair(rng, 1, 3),
            padding=str(rng.choice(["int", "pair", "same", "valid"])),
            dilation=_int_or_pair(rng, 1, 3),
            groups=groups,
            bias=bool(rng.integers(2)),
            padding_mode=str(rng.choice(MODES)),
        )
        if kwargs["padding"] in ("int", "pair"):
            kwargs["padding"] = _int_or_pair(rng, 0, 3, kind=kwargs["padding"])
        elif kwargs["padding"] == "same":
            kwargs["stride"] = 1
        shape = (int(rng.integers(1, 4)), kwargs["in_channels"], *rng.integers(3, 10, 2).tolist())
        try:
            Conv2d(**kwargs).output_shape(shape)
        except ShapeError:
            continue
        cases.append((kwargs, shape))
    return cases


def _int_or_pair(rng, low, high, kind=None):
    kind = kind or str(rng.choice(["int", "pair"]))
    if kind == "int":
        return int(rng.integers(low, high + 1))
    return tuple(int(v) for v in rng.integers(low, high + 1, 2))


PARITY_CASES = parity_grid()


@pytest.mark.parametrize(("kwargs", "shape"), PARITY_CASES, ids=str)
def test_torch_parity(torch, kwargs, shape):
    x = sample(shape, seed=len(PARITY_CASES))
    torch_parity(Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), x)
    torch_parity(Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), x, dtype=np.float32, atol=1e-4)


def test_parity_grid_covers_every_argument():
    seen = {key: {str(k[key]) for k, _ in PARITY_CASES} for key in PARITY_CASES[0][0]}
    assert set(MODES) <= seen["padding_mode"] and {"same", "valid"} <= seen["padding"]
    assert {"1", "2", "3"} <= seen["groups"] and {"True", "False"} <= seen["bias"]
    assert len(seen["kernel_size"]) > 5 and len(seen["stride"]) > 3 and len(seen["dilation"]) > 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("channels", "stride"), [((6, 2), 1), ((2, 6), 1), ((4, 4), 2)])
def test_parity_both_input_gradient_routes(torch, mode, channels, stride):
    """Stride 1 with few output channels correlates; the rest fold (see backward)."""
    kwargs = dict(in_channels=channels[0], out_channels=channels[1], kernel_size=(3, 2),
                  stride=stride, padding=(2, 1), dilation=(1, 2), padding_mode=mode)  # fmt: skip
    torch_parity(Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), sample((2, channels[0], 7, 8)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stride", [1, 2])
def test_parity_empty_batch(torch, mode, stride):
    kwargs = dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, stride=stride,
                  groups=2, padding_mode=mode)  # fmt: skip
    torch_parity(Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), np.zeros((0, 4, 5, 5)))


# -- runtime behaviour -------------------------------------------------------------------------
def test_float32_stays_float32_and_grads_accumulate():
    layer = Conv2d(in_channels=3, out_channels=4, kernel_size=3, padding=1)
    run = LayerRun.build(layer, np.float32)
    x = sample((2, 3, 6, 6), dtype=np.float32)
    original = x.copy()
    y = run.forward(x)
    assert y.dtype == np.float32 and (dense_in(y, "nchw") or dense_in(y, "channels_last"))
    gx = run.backward(np.ones_like(y))
    assert gx.dtype == np.float32 and gx.shape == x.shape
    assert all(g.dtype == np.float32 for g in run.grads.values())
    once = {k: v.copy() for k, v in run.grads.items()}
    run.forward(x)
    run.backward(np.ones_like(y))
    for name, grad in run.grads.items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-6)
    np.testing.assert_array_equal(x, original)


# -- layouts, image blocks and the skipped input gradient ---------------------------------------
ROUTE_CASES = [
    case(4, 4, 3, (5, 4, 6, 7), padding=1),  # rows; dx and dW by correlation
    case(2, 6, (3, 2), (5, 2, 7, 6), padding=(2, 1), dilation=(1, 2)),  # rows; dx folded
    case(4, 6, 3, (5, 4, 9, 8), stride=2, groups=2, padding_mode="reflect"),  # strided fold
    case(6, 3, (2, 3), (5, 6, 6, 7), groups=3, padding="same", padding_mode="circular"),
    case(1, 3, 3, (5, 1, 6, 6), padding=1),  # channel-major columns
    case(3, 3, 3, (5, 3, 7, 6), stride=(1, 2), groups=3, padding=(0, 2)),  # depthwise
    case(4, 12, 3, (1, 4, 4, 3), padding=(0, 1), groups=2),  # 6 pixels < 12 outputs: channel-major
]


@pytest.mark.parametrize(("kwargs", "shape"), ROUTE_CASES, ids=str)
@pytest.mark.parametrize("block_bytes", [1, 2**30])
def test_parity_in_one_image_blocks_and_with_kept_columns(torch, monkeypatch, kwargs, shape,
                                                          block_bytes):  # fmt: skip
    """Tiny CPU blocks: rows built an image at a time, never kept; huge ones: the whole
    batch's columns built at once and kept for backward."""
    monkeypatch.setattr(im2col, "CPU_BLOCK_BYTES", block_bytes)
    torch_parity(Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), sample(shape))


@pytest.mark.parametrize(("kwargs", "shape"), ROUTE_CASES, ids=str)
def test_channels_last_arrays_give_the_same_results_in_their_own_order(kwargs, shape):
    layer = Conv2d(**kwargs)
    x, g = sample(shape), sample(layer.output_shape(shape), seed=1)
    results = []
    for order in ("nchw", "channels_last"):
        xs, gs = (layout.to_layout(a, order == "channels_last") for a in (x, g))
        assert dense_in(xs, order)
        run = LayerRun.build(layer)
        y = run.forward(xs)
        gx = run.backward(gs)
        assert dense_in(y, "nchw") or dense_in(y, "channels_last")
        assert dense_in(gx, order)  # what the layer below saved: no mixed orders
        results.append([y, gx, *run.grads.values()])
    for ours, reference in zip(*results, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


class NoInputGradContext(Context):
    """What the network passes when nothing reads the layer's input gradient."""

    __slots__ = ("needs_input_grad",)

    def __init__(self, xp, training):
        super().__init__(xp, training)
        self.needs_input_grad = False


@pytest.mark.parametrize(("kwargs", "shape"), ROUTE_CASES, ids=str)
def test_backward_skips_the_input_gradient_when_nothing_needs_it(kwargs, shape):
    layer = Conv2d(**kwargs)
    x, g = sample(shape), sample(layer.output_shape(shape), seed=1)
    store = layer.init(np.random.default_rng(0))
    grads = []
    for ctx in (Context(np, True), NoInputGradContext(np, True)):
        grad = {k: np.zeros_like(v) for k, v in store.items()}
        layer.forward(ParamView(store, ""), x, ctx)
        gx = layer.backward(ParamView(store, ""), g, ctx, ParamView(grad, ""))
        assert (gx is None) == isinstance(ctx, NoInputGradContext)
        grads.append(grad)
    for name in store:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=1e-12, err_msg=name)


def test_backward_keeps_no_input():
    layer = Conv2d(in_channels=3, out_channels=4, kernel_size=3)
    ctx = Context(np, True)
    x = sample((2, 3, 6, 6))
    store = {k: v for k, v in layer.init(np.random.default_rng(0)).items()}
    layer.forward(ParamView(store, ""), x, ctx)
    assert not any(item is x for item in ctx.saved)


@pytest.mark.cuda
def test_cupy_matches_numpy():
    if not cuda_available():
        pytest.skip("needs CuPy and a GPU")
    import cupy

    for kwargs, shape in PARITY_CASES[:12]:
        layer = Conv2d(**kwargs)
        store = layer.init(np.random.default_rng(0))
        x, g = sample(shape), None
        results = []
        for xp in (np, cupy):
            params = {k: xp.asarray(v) for k, v in store.items()}
            grads = {k: xp.zeros_like(v) for k, v in params.items()}
            ctx = Context(xp, True)
            y = layer.forward(ParamView(params, ""), xp.asarray(x), ctx)
            g = sample(y.shape, seed=1) if g is None else g
            gx = layer.backward(ParamView(params, ""), xp.asarray(g), ctx, ParamView(grads, ""))
            results.append([cupy.asnumpy(a) for a in (y, gx, *grads.values())])
        for ours, reference in zip(results[1], results[0], strict=True):
            np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-10)


def test_a_zero_stride_and_a_channel_mismatch_are_both_reported():
    # The channel message used to divide by the zero stride to guess an output size.
    layer = Conv2d(in_channels=3, out_channels=4, kernel_size=3, stride=0)
    with pytest.raises(ShapeError) as info:
        layer.output_shape((None, 2, 8, 8))
    fields = [e.field for e in (info.value, *info.value.more)]
    assert "stride" in fields and "in_channels" in fields, fields

"""Losses: schema, shape check, PyTorch parity of values and input gradients, gradchecks, errors."""

from __future__ import annotations

import inspect
import itertools
import warnings

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from netspec.errors import ArgError, InputError, NetspecError
from netspec.layers.base import Context
from netspec.losses import (
    LOSS_TYPES,
    LOSSES,
    AnyLoss,
    CrossEntropyLoss,
    L1Loss,
    Loss,
    MSELoss,
    compile_loss,
)
from netspec.types import ShapeError
from tests.harness import numerical_grad

REDUCTIONS = ("none", "mean", "sum")
LEGACY = (None, True, False)
TOLERANCE = {np.float64: {"rtol": 1e-8, "atol": 1e-8}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}


# -- helpers --------------------------------------------------------------------------------
def torch_module(loss: Loss, dtype):
    import torch

    args = loss.torch_arguments()
    if args.get("weight") is not None:
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        args["weight"] = torch.tensor(args["weight"], dtype=tdtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy flags' deprecation warning
        return getattr(torch.nn, loss.type_name)(**args)


def upstream(shape: tuple, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def assert_parity(loss: Loss, x: np.ndarray, target: np.ndarray, dtype=np.float64) -> None:
    """Value and input gradient (random upstream gradient) equal PyTorch's, NaNs included."""
    import torch

    tol = TOLERANCE[dtype]
    x = x.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    compiled = compile_loss(loss, dtype=np.dtype(dtype).name)
    value = compiled(x, target)
    grad = upstream(value.shape).astype(dtype)
    gx = compiled.backward(grad)
    assert isinstance(value, np.ndarray) and isinstance(gx, np.ndarray)
    assert value.dtype == dtype and gx.dtype == dtype and gx.shape == x.shape

    tx = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tvalue = torch_module(loss, dtype)(tx, torch.from_numpy(target.copy()))
    tvalue.backward(torch.from_numpy(grad))
    assert value.shape == tuple(tvalue.shape)
    np.testing.assert_allclose(value, tvalue.detach().numpy(), **tol, err_msg="value")
    np.testing.assert_allclose(gx, tx.grad.numpy(), **tol, err_msg="input gradient")


def class_targets(shape: tuple, classes: int, ignore_index: int, seed: int = 0) -> np.ndarray:
    """Class indices with about a quarter set to ignore_index (never all of them)."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, shape)
    if target.ndim:
        ignored = rng.random(shape) < 0.25
        ignored.reshape(-1)[0] = False
        target[ignored] = ignore_index
    return target


def logits(shape: tuple, seed: int = 0) -> np.ndarray:
    return 2.0 * np.random.default_rng(seed).standard_normal(shape)


# -- schema ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", LOSSES)
def test_defaults_equal_torch_signature(cls):
    torch = pytest.importorskip("torch")
    parameters = inspect.signature(getattr(torch.nn, cls.__name__)).parameters
    fields = {k: v for k, v in cls.model_fields.items() if k != "type"}
    assert set(fields) == set(parameters)
    for name, parameter in parameters.items():
        assert fields[name].default == parameter.default, name
        assert fields[name].description, name  # a one-line docstring for the JSON schema


def test_registry_and_discriminated_union():
    assert list(LOSS_TYPES) == ["L1Loss", "MSELoss", "CrossEntropyLoss"]
    assert all(LOSS_TYPES[cls.__name__] is cls for cls in LOSSES)
    adapter = TypeAdapter(AnyLoss)
    loss = adapter.validate_python({"type": "CrossEntropyLoss", "weight": [1, 2.5]})
    assert loss == CrossEntropyLoss(weight=(1.0, 2.5))
    assert loss.torch_arguments()["weight"] == (1.0, 2.5)
    assert hash(loss) == hash(CrossEntropyLoss(weight=[1.0, 2.5]))  # frozen and hashable
    assert isinstance(adapter.validate_python({"type": "MSELoss"}), MSELoss)
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "HuberLoss"})


def test_each_loss_says_what_its_targets_are():
    # What training (accuracy), the data checks, bench and lint ask: one class attribute.
    assert {name: cls.targets for name, cls in LOSS_TYPES.items()} == {
        "L1Loss": "values",
        "MSELoss": "values",
        "CrossEntropyLoss": "classes",
    }
    assert "targets" not in CrossEntropyLoss.model_fields  # not a spec argument


@pytest.mark.parametrize(
    "cls, args",
    [
        (L1Loss, {"reduce": 1}),  # strict: an int is not a bool
        (MSELoss, {"size_average": "yes"}),
        (MSELoss, {"reductions": "sum"}),  # unknown key
        (CrossEntropyLoss, {"ignore_index": 1.0}),
        (CrossEntropyLoss, {"ignore_index": True}),
        (CrossEntropyLoss, {"label_smoothing": "0.1"}),
        (CrossEntropyLoss, {"weight": [[1.0, 2.0]]}),
        (CrossEntropyLoss, {"weight": [True, 1.0]}),
    ],
)
def test_schema_rejects_bad_types(cls, args):
    with pytest.raises(ValidationError):
        cls(**args)


@pytest.mark.parametrize("cls", LOSSES)
@pytest.mark.parametrize("reduction", ["avg", "Mean", "batchmean", 3])
def test_bad_reduction_is_rejected_with_torch_message(cls, reduction):
    with pytest.raises(ValidationError) as info:
        cls(reduction=reduction)
    (error,) = info.value.errors()
    assert isinstance(error["ctx"]["error"], ArgError)
    assert error["ctx"]["error"].field == "reduction"
    assert error["ctx"]["error"].message == f"{reduction} is not a valid value for reduction"

    torch = pytest.importorskip("torch")  # PyTorch says the same at the first forward
    module = getattr(torch.nn, cls.__name__)(reduction=reduction)
    with pytest.raises(ValueError, match=f"{reduction} is not a valid value for reduction"):
        module(
            torch.randn(3, 5),
            torch.tensor([0, 1, 2]) if cls is CrossEntropyLoss else torch.randn(3, 5),
        )


@pytest.mark.parametrize("smoothing, shown", [(1.5, "1.5"), (2.0, "2"), (1e20, "1e+20")])
def test_label_smoothing_above_one_is_rejected_with_torch_message(smoothing, shown):
    message = f"label_smoothing must be between 0.0 and 1.0. Got: {shown}"
    with pytest.raises(ValidationError) as info:
        CrossEntropyLoss(label_smoothing=smoothing)
    assert info.value.errors()[0]["ctx"]["error"].field == "label_smoothing"
    assert info.value.errors()[0]["ctx"]["error"].message == message

    torch = pytest.importorskip("torch")  # PyTorch raises it at the first forward
    module = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    with pytest.raises(RuntimeError) as torch_info:
        module(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    assert str(torch_info.value) == message


@pytest.mark.parametrize("smoothing", [-0.1, float("nan")])
def test_label_smoothing_below_zero_is_rejected(smoothing):
    # Deviation: PyTorch lets these through; the documented range is [0, 1].
    with pytest.raises(ValidationError, match="label_smoothing must be between 0.0 and 1.0"):
        CrossEntropyLoss(label_smoothing=smoothing)


def test_label_smoothing_bounds_are_accepted():
    assert CrossEntropyLoss(label_smoothing=0).label_smoothing == 0.0
    assert CrossEntropyLoss(label_smoothing=1.0).label_smoothing == 1.0


# -- legacy flags ---------------------------------------------------------------------------
@pytest.mark.parametrize("size_average, reduce", list(itertools.product(LEGACY, LEGACY)))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_legacy_flags_match_torch(size_average, reduce, reduction):
    torch = pytest.importorskip("torch")
    loss = MSELoss(size_average=size_average, reduce=reduce, reduction=reduction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = torch.nn.MSELoss(size_average=size_average, reduce=reduce, reduction=reduction)
    assert loss.effective_reduction == module.reduction
    assert loss.legacy_warning() == (str(caught[0].message) if caught else None)
    assert (loss.legacy_warning() is None) == (size_average is None and reduce is None)


def test_elementwise_mean_is_a_deprecated_alias_of_mean():
    torch = pytest.importorskip("torch")
    loss = L1Loss(reduction="elementwise_mean")
    assert loss.effective_reduction == "mean"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.nn.L1Loss(reduction="elementwise_mean")(torch.zeros(2), torch.ones(2))
    assert loss.legacy_warning() == str(caught[0].message)
    assert_parity(loss, logits((3, 5)), logits((3, 5), seed=1))
    assert L1Loss(reduction="elementwise_mean", reduce=False).effective_reduction == "none"


@pytest.mark.parametrize("size_average, reduce", list(itertools.product(LEGACY, LEGACY)))
def test_legacy_flags_parity(size_average, reduce):
    pytest.importorskip("torch")
    flags = {"size_average": size_average, "reduce": reduce}
    x, y = logits((3, 5)), logits((3, 5), seed=2)
    assert_parity(L1Loss(**flags), x, y)
    assert_parity(MSELoss(**flags, reduction="sum"), x, y)
    target = class_targets((3,), 5, -100)
    assert_parity(CrossEntropyLoss(**flags, weight=[1.0, 2.0, 0.5, 1.0, 3.0]), x, target)


# -- PyTorch parity -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cls", [L1Loss, MSELoss])
@pytest.mark.parametrize("shape", [(3, 5), (4,), (2, 3, 4, 4), (0, 3)])
def test_elementwise_parity(cls, reduction, dtype, shape):
    pytest.importorskip("torch")
    x, y = logits(shape), logits(shape, seed=3)
    assert_parity(cls(reduction=reduction), x, y, dtype)


def test_l1_gradient_at_zero_is_zero():
    pytest.importorskip("torch")
    x = np.array([[1.0, 2.0, -3.0], [0.0, 5.0, 6.0]])
    y = np.array([[1.0, 0.0, -3.0], [0.0, 7.0, 6.0]])
    assert_parity(L1Loss(), x, y)
    compiled = compile_loss(L1Loss(reduction="sum"), dtype="float64")
    compiled(x, y)
    np.testing.assert_array_equal(compiled.backward(), [[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])


CE_SHAPES = [(3, 5), (4, 3, 2, 2), (4, 3, 5), (5,)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_class_index_parity(
    shape, reduction, weighted, ignore_index, smoothing, dtype
):
    pytest.importorskip("torch")
    classes = shape[1] if len(shape) > 1 else shape[0]
    weight = list(np.linspace(0.5, 2.0, classes)) if weighted else None
    loss = CrossEntropyLoss(
        weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing
    )
    loss_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    assert_parity(loss, logits(shape), class_targets(loss_shape, classes, ignore_index), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_cross_entropy_probability_parity(shape, reduction, weighted, smoothing, dtype):
    pytest.importorskip("torch")
    classes = shape[1] if len(shape) > 1 else shape[0]
    weight = list(np.linspace(2.0, 0.5, classes)) if weighted else None
    loss = CrossEntropyLoss(weight=weight, reduction=reduction, label_smoothing=smoothing)
    target = np.random.default_rng(4).random(shape)  # unnormalised, as PyTorch allows
    assert_parity(loss, logits(shape), target, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_all_ignored(reduction, smoothing, weighted):
    pytest.importorskip("torch")
    loss = CrossEntropyLoss(
        weight=[1.0, 2.0, 3.0, 4.0] if weighted else None,
        reduction=reduction,
        label_smoothing=smoothing,
    )
    x, target = logits((3, 4)), np.full(3, -100)
    assert_parity(loss, x, target)  # mean: 0/0 = NaN value, zero gradient
    compiled = compile_loss(loss, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy RuntimeWarning either
        value = compiled(x, target)
        np.testing.assert_array_equal(compiled.backward(), np.zeros((3, 4)))
    assert np.isnan(value) if reduction == "mean" else not np.isnan(value).any()


def test_cross_entropy_zero_weight_targets_give_nan_like_torch():
    pytest.importorskip("torch")
    loss = CrossEntropyLoss(weight=[0.0, 0.0, 1.0, 1.0, 1.0], label_smoothing=0.2)
    assert_parity(loss, logits((3, 5)), np.array([0, 1, -100]))


def test_cross_entropy_unbatched_target_of_size_one_is_refused():
    # PyTorch's forward takes a (1,) target for a (C,) input, but its backward fails.
    with pytest.raises(InputError, match=r"must have shape \(\) for input \(5\), received \(1\)"):
        run_ce(CrossEntropyLoss(), logits((5,)), np.array([3]))
    torch = pytest.importorskip("torch")
    x = torch.tensor(logits((5,)), requires_grad=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        torch.nn.CrossEntropyLoss()(x, torch.tensor([3])).backward()


def test_cross_entropy_uint8_and_int32_targets():
    pytest.importorskip("torch")
    x = logits((4, 3))
    assert_parity(CrossEntropyLoss(), x, np.array([0, 2, 1, 2], dtype=np.uint8))
    int32 = compile_loss(CrossEntropyLoss(), dtype="float64")(x, np.array([0, 2, 1, 2], np.int32))
    assert int32 == compile_loss(CrossEntropyLoss(), dtype="float64")(x, np.array([0, 2, 1, 2]))


def test_cross_entropy_is_stable_for_large_logits():
    pytest.importorskip("torch")
    x = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 799.0]])
    assert_parity(CrossEntropyLoss(label_smoothing=0.1), x, np.array([1, 2]))
    assert_parity(CrossEntropyLoss(), x, np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]]))


# -- the seed examples ----------------------------------------------------------------------
def test_seed_examples():
    pytest.importorskip("torch")
    x, y = logits((3, 5)), logits((3, 5), seed=9)
    assert_parity(L1Loss(), x, y)
    assert_parity(MSELoss(), x, y)
    assert_parity(CrossEntropyLoss(), x, np.array([1, 0, 4]))
    probabilities = np.exp(y) / np.exp(y).sum(1, keepdims=True)
    assert_parity(CrossEntropyLoss(), x, probabilities)


# -- finite differences ---------------------------------------------------------------------
GRADCHECK_CASES = [
    (L1Loss(reduction="none"), (3, 5), "float"),
    (L1Loss(), (2, 3, 4), "float"),
    (MSELoss(reduction="sum"), (3, 5), "float"),
    (MSELoss(size_average=False, reduce=False), (4,), "float"),
    (CrossEntropyLoss(), (3, 5), "index"),
    (CrossEntropyLoss(weight=[1.0, 0.5, 2.0], label_smoothing=0.25), (2, 3, 2, 2), "index"),
    (CrossEntropyLoss(ignore_index=0, reduction="none", label_smoothing=0.1), (4, 3), "index"),
    (CrossEntropyLoss(reduction="sum", weight=[0.2, 1.0, 3.0, 1.5]), (4,), "index"),
    (CrossEntropyLoss(weight=[1.0, 2.0, 0.5], label_smoothing=0.4), (2, 3, 3), "prob"),
    (CrossEntropyLoss(reduction="none"), (3, 4), "prob"),
]


@pytest.mark.parametrize("loss, shape, kind", GRADCHECK_CASES)
def test_gradcheck(loss, shape, kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    if kind == "float":
        target = x + rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)  # no kinks
    elif kind == "prob":
        target = rng.random(shape)
    else:
        classes = shape[1] if len(shape) > 1 else shape[0]
        loss_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
        target = class_targets(loss_shape, classes, loss.ignore_index)
    compiled = compile_loss(loss, dtype="float64")
    grad = upstream(np.shape(compiled(x, target)))
    gx = compiled.backward(grad)
    expected = numerical_grad(lambda: float(np.sum(compiled(x, target) * grad)), x)
    np.testing.assert_allclose(gx, expected, rtol=1e-6, atol=1e-8)


# -- shape check before any array exists ----------------------------------------------------
def test_check_accepts_fitting_outputs():
    for shape in [(None, 5), (8, 5, 4, 4), (5,), (None, 5, 7)]:
        CrossEntropyLoss(weight=[1.0] * 5).check(shape)
    CrossEntropyLoss().check((None, 1000))
    L1Loss().check((None, 3, 2))
    MSELoss().check((None,))


@pytest.mark.parametrize("shape", [(None, 4), (2, 6, 3, 3), (4,)])
def test_check_weight_length(shape):
    with pytest.raises(ShapeError) as info:
        CrossEntropyLoss(weight=[1.0] * 5).check(shape)
    classes = shape[1] if len(shape) > 1 else shape[0]
    assert info.value.field == "weight"
    assert info.value.message == (
        f"weight tensor should be defined either for all {classes} classes or no classes "
        "but got weight tensor of shape: [5]"
    )


def test_check_rank():
    with pytest.raises(ShapeError, match="expects logits"):
        CrossEntropyLoss().check(())


# -- run-time errors ------------------------------------------------------------------------
def run_ce(loss, x, target):
    return compile_loss(loss, dtype="float64")(x, target)


@pytest.mark.parametrize(
    "ignore_index, target, message",
    [
        (-100, [0, 4, 1], "Target 4 is out of bounds."),
        (-100, [0, -1, 1], "Target -1 is out of bounds."),
        (-1, [0, -2, -1], "Target -2 is out of bounds."),
        (7, [0, 5, 7], "Target 5 is out of bounds."),
    ],
)
def test_out_of_bounds_target(ignore_index, target, message):
    loss = CrossEntropyLoss(ignore_index=ignore_index)
    x = logits((3, 4))
    with pytest.raises(InputError, match=message):
        run_ce(loss, x, np.array(target))
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError, match=message):
        torch_module(loss, np.float64)(torch.tensor(x), torch.tensor(target))


@pytest.mark.parametrize(
    "x_shape, target, match",
    [
        ((3, 5), np.array([1, 2]), r"class-index target must have shape \(3\).*received \(2\)"),
        ((3, 5), np.array([[1, 2, 3]]), r"must have shape \(3\).*received \(1, 3\)"),
        ((3, 5), np.zeros((3, 5), np.int64), r"received \(3, 5\) \(a target of the input's"),
        ((3, 5, 2, 2), np.zeros((3, 2, 3), np.int64), r"shape \(3, 2, 2\).*received \(3, 2, 3\)"),
        ((5,), np.array([1, 2]), r"shape \(\) for input \(5\), received \(2\)"),
        ((3, 5), np.zeros(3), r"must have the input's shape \(3, 5\), received \(3\)"),
        ((3, 5, 2, 2), np.zeros((3, 5, 2, 3)), r"shape \(3, 5, 2, 2\), received \(3, 5, 2, 3\)"),
        ((3, 5), np.array([True, False, True]), "received dtype bool"),
    ],
)
def test_bad_cross_entropy_targets(x_shape, target, match):
    with pytest.raises(InputError, match=match):
        run_ce(CrossEntropyLoss(), logits(x_shape), target)
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, ValueError)):  # PyTorch refuses each of these too
        torch.nn.CrossEntropyLoss()(torch.tensor(logits(x_shape)), torch.from_numpy(target))


def test_ignore_index_with_probabilities():
    loss = CrossEntropyLoss(ignore_index=0)
    message = "ignore_index is not supported for floating point target"
    with pytest.raises(InputError, match=message):
        run_ce(loss, logits((3, 5)), np.full((3, 5), 0.2))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=message):
        torch_module(loss, np.float64)(torch.randn(3, 5).double(), torch.full((3, 5), 0.2).double())


@pytest.mark.parametrize("target", [np.array([0, 1, 2]), np.full((3, 5), 0.2)])
def test_weight_length_mismatch_at_run_time(target):
    loss = CrossEntropyLoss(weight=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(InputError, match=r"all 5 classes .* of shape: \[4\]"):
        run_ce(loss, logits((3, 5)), target)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=r"all 5 classes .* of shape: \[4\]"):
        torch_module(loss, np.float64)(torch.tensor(logits((3, 5))), torch.from_numpy(target))


@pytest.mark.parametrize("x", [np.array(1.0), np.zeros((3, 0))])
def test_cross_entropy_needs_classes(x):
    with pytest.raises(InputError, match="expects logits"):
        run_ce(CrossEntropyLoss(), x, np.array(0))


@pytest.mark.parametrize("cls", [L1Loss, MSELoss])
@pytest.mark.parametrize("target_shape", [(3, 1), (4, 5), (5,)])
def test_elementwise_size_mismatch_is_an_error(cls, target_shape):
    compiled = compile_loss(cls(), dtype="float64")
    with pytest.raises(
        InputError, match=rf"target shape \({target_shape[0]}.*input shape \(3, 5\)"
    ):
        compiled(logits((3, 5)), np.zeros(target_shape))
    with pytest.raises(InputError, match="must be numeric"):
        compiled(logits((3, 5)), np.full((3, 5), "a"))


def test_upstream_gradient_shape_is_checked():
    compiled = compile_loss(CrossEntropyLoss(reduction="none"), dtype="float64")
    compiled(logits((3, 5)), np.array([0, 1, 2]))
    with pytest.raises(InputError, match=r"loss's shape \(3\), received \(3, 1\)"):
        compiled.backward(np.ones((3, 1)))
    compiled = compile_loss(MSELoss(), dtype="float64")
    compiled(logits((3, 5)), logits((3, 5)))
    with pytest.raises(InputError, match="must be a scalar"):
        compiled.backward(np.ones(3))
    np.testing.assert_allclose(compiled.backward(2.0), 2 * compiled.backward())


def test_backward_before_forward():
    with pytest.raises(NetspecError, match="forward call first"):
        compile_loss(L1Loss()).backward()


# -- the compiled loss ----------------------------------------------------------------------
def test_compiled_loss_keeps_its_dtype_and_takes_plain_targets():
    compiled = compile_loss(CrossEntropyLoss(weight=[1.0, 2.0, 3.0]), dtype="float32")
    assert compiled.reduction == "mean"
    value = compiled(logits((4, 3)), [0, 1, 2, 1])  # float64 logits, a list of indices
    assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32
    assert compiled.backward().dtype == np.float32
    compiled = compile_loss(MSELoss(reduction="none"), dtype=np.float32)
    assert (
        compiled(logits((2, 3)).astype(np.float32), np.ones((2, 3), np.int64)).dtype == np.float32
    )


def test_device_arrays_are_the_schemas_own_arrays_in_the_compile_dtype():
    assert MSELoss().device_arrays(np, np.float32) == {}
    assert CrossEntropyLoss().device_arrays(np, np.float32) == {}
    weight = CrossEntropyLoss(weight=[1.0, 2.5]).device_arrays(np, np.float32)["weight"]
    assert weight.dtype == np.float32 and weight.tolist() == [1.0, 2.5]


def test_loss_runs_without_compiling():
    ctx = Context(np, training=True)
    loss = CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    value = loss.forward(logits((4, 3)), np.array([0, 1, 2, 1]), ctx)
    expected = compile_loss(loss, dtype="float64")(logits((4, 3)), np.array([0, 1, 2, 1]))
    np.testing.assert_allclose(value, expected)
    assert loss.backward(np.float64(1.0), ctx).shape == (4, 3)

"""Checks of loaded arrays against the network, BEFORE any training step: per-sample size,
label range, dtype, NaN and empty sets, each a DataError with both sides of the mismatch.
"""

from __future__ import annotations

import math

from netspec.data.base import DataError, Targets
from netspec.lazy import lazy_import
from netspec.types import format_shape

np = lazy_import("numpy")


def conform(
    x: np.ndarray,
    y: np.ndarray,
    input_shape: tuple[int, ...],
    targets: Targets,
    dtype: np.dtype,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Check x and y against the network and return them as (n, *input_shape) and targets."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{name}: x has no samples (shape {format_shape(x.shape)})")
    if y.ndim == 0 or len(y) != len(x):
        y_count = "no sample dimension" if y.ndim == 0 else f"{len(y)} samples"
        raise DataError(f"{name}: x has {len(x)} samples but y has {y_count}")
    x = _conform_inputs(x, input_shape, dtype, name)
    if targets.num_classes is None:
        return x, _conform_floats(y, targets.float_shape, dtype, name, "output")
    if y.dtype.kind == "f" and _per_sample(y) == math.prod(targets.float_shape):
        return x, _conform_floats(y, targets.float_shape, dtype, name, "class probability")
    return x, _conform_indices(y, targets, name)


def conform_inputs(
    x: np.ndarray, input_shape: tuple[int, ...], dtype: np.dtype, name: str
) -> np.ndarray:
    """x alone, checked and shaped as `conform` checks training inputs (for predictions)."""
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{name}: x has no samples (shape {format_shape(x.shape)})")
    return _conform_inputs(x, input_shape, dtype, name)


def _conform_inputs(
    x: np.ndarray, input_shape: tuple[int, ...], dtype: np.dtype, name: str
) -> np.ndarray:
    _expect_numbers(x, "x", name)
    if _per_sample(x) != math.prod(input_shape):
        raise DataError(
            f"{name}: x samples have shape {format_shape(x.shape[1:])} ({_per_sample(x)} "
            f"values) but the spec's input shape is {list(input_shape)} "
            f"({math.prod(input_shape)} values)",
            hint=f"set input: {{shape: {list(x.shape[1:])}}} or reshape the data",
        )
    _expect_same_layout(x, input_shape, name)
    x = x.reshape(len(x), *input_shape).astype(dtype, copy=False)
    _expect_finite(x, "x", name)
    return x


def _expect_same_layout(x: np.ndarray, input_shape: tuple[int, ...], name: str) -> None:
    """Refuse a reshape that could reorder values: (N, H, W, C) images read as (N, C, H, W)
    have the right size and scrambled pixels. Flattening into a 1-D input (what Flatten
    does), adding or dropping unit axes, and flat rows into one-channel images (row-major,
    as (N, 784) MNIST is stored) keep every value where it was."""
    sample = tuple(x.shape[1:])
    one_channel = all(d == 1 for d in input_shape[:-2])
    if (
        len(input_shape) == 1
        or (len(sample) == 1 and one_channel)
        or _without_unit_axes(sample) == _without_unit_axes(input_shape)
    ):
        return
    if len(sample) == 3 and len(input_shape) == 3 and sample == (*input_shape[1:], input_shape[0]):
        hint = "channels-last images? store x.transpose(0, 3, 1, 2)"
    else:
        sizes = ", ".join(str(d) for d in input_shape)
        hint = f"reshape them yourself if that is their layout: x.reshape(len(x), {sizes})"
    raise DataError(
        f"{name}: x samples have shape {format_shape(sample)} but the spec's input shape is "
        f"{list(input_shape)}: netspec does not reorder values",
        hint=hint,
    )


def _without_unit_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _conform_floats(
    y: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, name: str, what: str
) -> np.ndarray:
    _expect_numbers(y, "y", name)
    if _per_sample(y) != math.prod(shape):
        raise DataError(
            f"{name}: y samples have shape {format_shape(y.shape[1:])} ({_per_sample(y)} "
            f"values) but {what} targets need {format_shape(shape)} ({math.prod(shape)} values)",
            hint="CrossEntropyLoss takes class labels" if what == "output" else None,
        )
    y = y.reshape(len(y), *shape).astype(dtype, copy=False)
    _expect_finite(y, "y", name)
    return y


def _conform_indices(y: np.ndarray, targets: Targets, name: str) -> np.ndarray:
    loss, classes = targets.loss_type, targets.num_classes
    if y.dtype.kind not in "biu":
        raise DataError(
            f"{name}: {loss} needs integer class labels, received {y.dtype} labels "
            f"of shape {format_shape(y.shape)}",
            hint="store labels as int64 (y.astype('int64')), or float class "
            f"probabilities of shape (n, {classes})",
        )
    if _per_sample(y) != math.prod(targets.index_shape):
        raise DataError(
            f"{name}: y samples have shape {format_shape(y.shape[1:])} but class labels for the "
            f"output {format_shape(targets.output_shape)} need "
            f"{format_shape(targets.index_shape)}",
            hint="one-hot labels? store class indices (y.argmax(1)) instead",
        )
    y = y.reshape(len(y), *targets.index_shape).astype(np.int64)
    if y.size == 0:
        return y
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:  # type: ignore[operator]
        raise DataError(
            f"{name}: labels span {low}..{high} but the network outputs {classes} classes "
            f"(output {format_shape(targets.output_shape)}); {loss} needs labels in "
            f"[0, {classes})",
            hint=f"make the last layer output {high + 1} classes" if low >= 0 else None,
        )
    return y


def _expect_numbers(a: np.ndarray, which: str, name: str) -> None:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name}: {which} has dtype {a.dtype}; expected numbers")


def _expect_finite(a: np.ndarray, which: str, name: str) -> None:
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{name}: {which} has NaN or infinite values in {int(bad.sum())} sample(s), "
            f"the first at index {int(bad.argmax())}"
        )


def _per_sample(a: np.ndarray) -> int:
    return math.prod(a.shape[1:])

"""The loaded data: `load_dataset` reads a source, checks it, splits off a seeded
validation set (unless the source has its own) and normalises with training-split
statistics only. What it does is the same for every source.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Any

from netspec.data.base import SPLIT_STREAM, DataError, DataSource, seeded_rng, targets_for
from netspec.data.checks import conform
from netspec.lazy import lazy_import
from netspec.types import Shape

np = lazy_import("numpy")


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare by identity
class Dataset:
    """Training and validation arrays, checked against the network and normalised."""

    x_train: np.ndarray  # (n_train, *input_shape), float dtype
    y_train: np.ndarray  # int64 class indices, or float targets / class probabilities
    x_val: np.ndarray  # (n_val, *input_shape); n_val may be 0 (validation_split: 0)
    y_val: np.ndarray
    num_classes: int | None = None  # classes the network outputs, for classification
    name: str = ""  # where the data came from, for reports

    @property
    def has_validation(self) -> bool:
        return len(self.x_val) > 0


def load_dataset(
    data_spec: DataSource,
    *,
    input_shape: tuple[int, ...],
    output_shape: Shape,
    loss_type: str,
    seed: int,
    spec_dir: pathlib.Path | None,
    dtype: Any = "float32",
) -> Dataset:
    """Load, check, split and normalise the data of a spec; raise DataError when it does not
    fit. `input_shape` is the spec's (no batch dim); `output_shape` the network's (batch
    first); `spec_dir` anchors relative npz paths (None: the working directory)."""
    float_dtype = _float_dtype(dtype)
    targets = targets_for(loss_type, output_shape)
    input_shape = tuple(input_shape)
    x, y, name = data_spec.read(input_shape, targets, seed, spec_dir)
    x, y = conform(x, y, input_shape, targets, float_dtype, name)

    held_out = data_spec.read_validation(input_shape, spec_dir)
    if held_out is not None:
        x_val, y_val, val_name = held_out
        x_val, y_val = conform(x_val, y_val, input_shape, targets, float_dtype, val_name)
        x_train, y_train = x, y
    else:
        train, val = _split(len(x), data_spec.validation_split, seed)
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]

    x_train, x_val = _normalize(data_spec.normalize, x_train, x_val)
    return Dataset(x_train, y_train, x_val, y_val, targets.num_classes, name)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation indices, each kept in file order."""
    n_val = math.ceil(n * fraction - 1e-9) if fraction > 0 else 0  # tolerate 0.1*30 rounding
    if n_val >= n:
        raise DataError(
            f"validation_split {fraction} of {n} samples leaves no training samples",
            hint="lower validation_split or add data",
        )
    held_out = np.zeros(n, dtype=bool)
    held_out[seeded_rng(seed, SPLIT_STREAM).permutation(n)[:n_val]] = True
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def _normalize(mode: str, x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, ...]:
    """Apply `mode` with statistics from the training split only."""
    if mode == "none":
        return x_train, x_val
    if mode == "scale":
        largest = float(np.abs(x_train).max(initial=0.0))
        factor = np.asarray(largest if largest > 0 else 1.0, dtype=x_train.dtype)
        return x_train / factor, x_val / factor
    mean = x_train.mean(axis=0, dtype=np.float64)  # (*input_shape)
    std = x_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0  # constant features (digit borders) are only centred
    mean, std = mean.astype(x_train.dtype), std.astype(x_train.dtype)
    return (x_train - mean) / std, (x_val - mean) / std


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    # kind "V": a type a plugin registered (ml_dtypes' bfloat16, loaded by onnx), which
    # NumPy's own arithmetic does not have: the same answer whether or not it is loaded.
    if resolved is None or resolved.kind == "V":
        raise DataError(f"dtype {dtype!r} is not supported by NumPy") from None
    if resolved.kind != "f":
        raise DataError(f"data dtype must be a float type, received {resolved}")
    return resolved

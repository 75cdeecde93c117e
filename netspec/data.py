"""The spec's `data:` section: where samples come from, and batches over them.

`load_dataset` reads a source (scikit-learn's bundled digits, an `.npz` file, or seeded
synthetic data), checks it against the network BEFORE any training step (per-sample size,
label range, dtype, NaN, empty sets) and raises `DataError` with both sides of a mismatch,
splits off a seeded validation set and normalises with training-split statistics only.
Everything here is NumPy on the host; the trainer moves batches to the device.
"""

from __future__ import annotations

import math
import pathlib
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict

from netspec.diagnostics import NetspecError
from netspec.layers.base import Bool, PositiveInt, Shape, format_shape

DATA_SOURCES = ("digits", "npz", "synthetic")
NORMALIZATIONS = ("none", "scale", "standardize")
CLASSIFICATION_LOSSES = frozenset({"CrossEntropyLoss"})
REGRESSION_LOSSES = frozenset({"L1Loss", "MSELoss"})

Key = Annotated[str, Strict(), Field(min_length=1)]
Normalization = Literal["none", "scale", "standardize"]
Fraction = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]

# Independent random streams drawn from the one training seed.
_SPLIT_STREAM = 1
_SYNTHETIC_STREAM = 2
_TEACHER_RANK = 32  # a low-rank teacher keeps synthetic data cheap for image-sized inputs


class DataError(NetspecError):
    """The data does not fit the spec or cannot be read; `hint` says what to change."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- schemas ------------------------------------------------------------------------------
class _DataSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    validation_split: Fraction = 0.2
    """Fraction of the samples held out for validation, drawn with the seed (ceil, as
    scikit-learn's train_test_split); 0 trains on everything."""
    shuffle: Bool = True
    """Shuffle the training samples every epoch (from the seed); false keeps file order."""
    normalize: Normalization = "none"
    """none: as stored; scale: divide by the largest |x| of the training split; standardize:
    per-feature zero mean and unit variance from the training split."""


class DigitsData(_DataSource):
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes, no download).

    Each sample is 64 pixels valued 0..16: input shape [64] or [1, 8, 8]. The default
    normalisation `scale` maps them to [0, 1].
    """

    source: Literal["digits"] = "digits"
    """Which data source this is."""
    normalize: Normalization = "scale"
    """none: raw 0..16; scale: divide by 16 (the training split's max), giving [0, 1];
    standardize: per-pixel zero mean and unit variance from the training split."""


class NpzData(_DataSource):
    """Arrays from a NumPy `.npz` archive (np.savez), read without pickle.

    x: (n, ...) numbers, reshaped to (n, *input.shape) when the sizes agree. y: int class
    indices for CrossEntropyLoss (or float (n, C) class probabilities), float targets of the
    output shape for L1Loss/MSELoss.
    """

    source: Literal["npz"] = "npz"
    """Which data source this is."""
    path: Key
    """The .npz file; a relative path is relative to the spec file's folder."""
    x_key: Key = "x"
    """Name of the input array in the archive."""
    y_key: Key = "y"
    """Name of the target array in the archive."""
    validation_path: Key | None = None
    """A separate .npz for validation (same keys); when set, validation_split is unused."""


class SyntheticData(_DataSource):
    """Seeded random inputs of the spec's input shape with learnable targets.

    x ~ N(0, 1); a fixed random linear teacher (rank <= 32) maps x to the output shape:
    its argmax over dim 1 gives the class indices for CrossEntropyLoss, its values the
    targets for L1Loss/MSELoss. Meant for smoke tests and benchmarks: the loss goes down.
    """

    source: Literal["synthetic"] = "synthetic"
    """Which data source this is."""
    samples: PositiveInt = 512
    """Number of samples generated (before the validation split)."""


AnyData = Annotated[DigitsData | NpzData | SyntheticData, Field(discriminator="source")]


# -- the loaded data ----------------------------------------------------------------------
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


@dataclass(frozen=True)
class _Targets:
    """What the loss expects per sample: class indices (with probabilities allowed) or floats."""

    loss_type: str
    output_shape: Shape  # the network's, batch first
    num_classes: int | None  # set for classification

    @property
    def float_shape(self) -> tuple[int, ...]:  # regression targets, or class probabilities
        return tuple(self.output_shape[1:])  # type: ignore[arg-type]

    @property
    def index_shape(self) -> tuple[int, ...]:  # class indices drop the class dim
        return tuple(self.output_shape[2:])  # type: ignore[arg-type]


def _targets_for(loss_type: str, output_shape: Shape) -> _Targets:
    if loss_type in REGRESSION_LOSSES:
        return _Targets(loss_type, output_shape, None)
    if loss_type not in CLASSIFICATION_LOSSES:
        known = ", ".join(sorted(CLASSIFICATION_LOSSES | REGRESSION_LOSSES))
        raise DataError(f"no data targets are defined for loss '{loss_type}' (known: {known})")
    if len(output_shape) < 2 or output_shape[1] is None:
        raise DataError(
            f"{loss_type} needs an (N, C) output, but the network outputs "
            f"{format_shape(output_shape)}"
        )
    return _Targets(loss_type, output_shape, output_shape[1])


def load_dataset(
    data_spec: DigitsData | NpzData | SyntheticData,
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
    targets = _targets_for(loss_type, output_shape)
    input_shape = tuple(input_shape)
    if isinstance(data_spec, DigitsData):
        x, y, name = *_read_digits(), "digits"
    elif isinstance(data_spec, SyntheticData):
        x, y = _synthesize(data_spec.samples, input_shape, targets, seed)
        name = "synthetic"
    else:
        path = _resolve(data_spec.path, spec_dir)
        x, y = _read_npz(path, data_spec.x_key, data_spec.y_key)
        name = f"npz:{path}"
    x, y = _conform(x, y, input_shape, targets, float_dtype, name)

    if isinstance(data_spec, NpzData) and data_spec.validation_path is not None:
        path = _resolve(data_spec.validation_path, spec_dir)
        x_val, y_val = _read_npz(path, data_spec.x_key, data_spec.y_key)
        x_val, y_val = _conform(x_val, y_val, input_shape, targets, float_dtype, f"npz:{path}")
        x_train, y_train = x, y
    else:
        train, val = _split(len(x), data_spec.validation_split, seed)
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]

    x_train, x_val = _normalize(data_spec.normalize, x_train, x_val)
    return Dataset(x_train, y_train, x_val, y_val, targets.num_classes, name)


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (xb, yb) mini-batches covering every sample once, as torch's DataLoader does:
    the last batch may be smaller unless `drop_last`. `rng` draws the shuffle order."""
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive, received {batch_size}")
    n = len(x)
    order = rng.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            rows = order[start : start + batch_size]
            yield x[rows], y[rows]


def batch_count(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches iterate_batches yields for n samples (for progress bars)."""
    return n // batch_size if drop_last else -(-n // batch_size)


# -- sources ------------------------------------------------------------------------------
def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits  # heavy: only when training needs it
    except ImportError as error:
        raise DataError(
            f"the digits dataset needs scikit-learn, which cannot be imported ({error})",
            hint="pip install scikit-learn",
        ) from None
    x, y = load_digits(return_X_y=True)  # (1797, 64) floats 0..16, (1797,) ints 0..9
    return x, y


def _synthesize(
    samples: int, input_shape: tuple[int, ...], targets: _Targets, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed, _SYNTHETIC_STREAM)
    features = math.prod(input_shape)
    outputs = math.prod(targets.float_shape)
    rank = min(_TEACHER_RANK, features)
    # The teacher comes first so it does not depend on `samples`. Unit-variance output:
    # each factor is scaled by 1/sqrt(its fan-in).
    down = rng.standard_normal((features, rank)) / math.sqrt(features)
    up = rng.standard_normal((rank, outputs)) / math.sqrt(rank)
    x = rng.standard_normal((samples, *input_shape))
    z = (x.reshape(samples, features) @ down @ up).reshape(samples, *targets.float_shape)
    if targets.num_classes is not None:
        return x, z.argmax(axis=1)  # (samples, *output_shape[2:]) class indices
    return x, z


def _resolve(path: str, spec_dir: pathlib.Path | None) -> pathlib.Path:
    resolved = pathlib.Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = (spec_dir if spec_dir is not None else pathlib.Path.cwd()) / resolved
    return resolved


def _read_npz(path: pathlib.Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(
            f"npz file not found: {path}", hint="a relative path starts at the spec's folder"
        )
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file gives one ndarray
            raise DataError(
                f"{path} holds a single array, not an .npz archive",
                hint="write it with numpy.savez(path, x=..., y=...)",
            )
        with archive:
            missing = [key for key in (x_key, y_key) if key not in archive.files]
            if missing:
                have = ", ".join(repr(k) for k in archive.files) or "none"
                raise DataError(
                    f"{path} has no array {missing[0]!r}; it has: {have}",
                    hint="set x_key / y_key to the names used in the file",
                )
            return archive[x_key], archive[y_key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read npz file {path}: {error}") from None


# -- checks -------------------------------------------------------------------------------
def _conform(
    x: np.ndarray,
    y: np.ndarray,
    input_shape: tuple[int, ...],
    targets: _Targets,
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
    x = x.reshape(len(x), *input_shape).astype(dtype, copy=False)
    _expect_finite(x, "x", name)
    return x


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


def _conform_indices(y: np.ndarray, targets: _Targets, name: str) -> np.ndarray:
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


# -- split and normalisation --------------------------------------------------------------
def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation indices, each kept in file order."""
    n_val = math.ceil(n * fraction - 1e-9) if fraction > 0 else 0  # tolerate 0.1*30 rounding
    if n_val >= n:
        raise DataError(
            f"validation_split {fraction} of {n} samples leaves no training samples",
            hint="lower validation_split or add data",
        )
    held_out = np.zeros(n, dtype=bool)
    held_out[_rng(seed, _SPLIT_STREAM).permutation(n)[:n_val]] = True
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


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed & (2**64 - 1), stream])  # negative seeds too


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise DataError(f"dtype {dtype!r} is not supported by NumPy") from None
    if resolved.kind != "f":
        raise DataError(f"data dtype must be a float type, received {resolved}")
    return resolved

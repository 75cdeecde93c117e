"""Where samples come from: scikit-learn's digits, an `.npz` archive, or seeded synthetic
data. Each source returns raw (x, y) arrays; checks.py makes them fit the network.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from netspec.data.base import SYNTHETIC_STREAM, DataError, Targets, seeded_rng
from netspec.data.npz_reader import MemberHeader, NpzDamage, NpzReader
from netspec.data.schemas import DigitsData, NpzData, SyntheticData
from netspec.memory import available_memory, format_bytes
from netspec.types import format_shape

DIGITS_IMAGE = DigitsData.sample_shapes[0]  # type: ignore[index]
_TEACHER_RANK = 32  # a low-rank teacher keeps synthetic data cheap for image-sized inputs


def read_source(
    data_spec: DigitsData | NpzData | SyntheticData,
    input_shape: tuple[int, ...],
    targets: Targets,
    seed: int,
    spec_dir: pathlib.Path | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The raw (x, y) of a source, and its name for messages and reports."""
    if isinstance(data_spec, DigitsData):
        x, y = read_digits()
        if input_shape == DIGITS_IMAGE:  # the 64 pixels are an 8x8 image, row by row
            x = x.reshape(len(x), *DIGITS_IMAGE)
        return x, y, "digits"
    if isinstance(data_spec, SyntheticData):
        x, y = synthesize(data_spec.samples, input_shape, targets, seed)
        return x, y, "synthetic"
    path = resolve_path(data_spec.path, spec_dir)
    x, y = read_npz(path, data_spec.x_key, data_spec.y_key, input_shape)
    return x, y, f"npz:{path}"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits  # heavy: only when training needs it
    except ImportError as error:
        interrupt = _interrupt_behind(error)
        if interrupt is not None:  # Ctrl-C inside an extension's init comes out as this
            raise interrupt from None
        raise DataError(
            f"the digits dataset needs scikit-learn, which cannot be imported ({error})",
            hint="pip install scikit-learn",
        ) from None
    x, y = load_digits(return_X_y=True)  # (1797, 64) floats 0..16, (1797,) ints 0..9
    return x, y


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that caused `error`, if one did (pybind11 and Cython modules
    turn one raised during their import into ImportError("initialization failed"))."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def synthesize(
    samples: int, input_shape: tuple[int, ...], targets: Targets, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, 1) and the outputs of a fixed random low-rank linear teacher (their argmax
    over dim 1 for classification)."""
    rng = seeded_rng(seed, SYNTHETIC_STREAM)
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


def resolve_path(path: str, spec_dir: pathlib.Path | None) -> pathlib.Path:
    """A data path: relative ones start at the spec's folder (None: the working directory)."""
    resolved = pathlib.Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = (spec_dir if spec_dir is not None else pathlib.Path.cwd()) / resolved
    return resolved


def read_npz(
    path: pathlib.Path, x_key: str, y_key: str, input_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of an .npz archive, read without pickle and bounded: the zip directory and
    npy headers are checked (x's per-sample size against `input_shape`, both arrays'
    declared bytes against the memory available) before any data is decompressed."""
    if not path.is_file():
        raise DataError(
            f"npz file not found: {path}", hint="a relative path starts at the spec's folder"
        )
    try:
        with open(path, "rb") as file:
            if file.read(6) == b"\x93NUMPY":
                raise DataError(
                    f"{path} holds a single array, not an .npz archive",
                    hint="write it with numpy.savez(path, x=..., y=...)",
                )
        with NpzReader(path) as archive:
            missing = [key for key in (x_key, y_key) if key not in archive.members]
            if missing:
                have = ", ".join(repr(k) for k in archive.members) or "none"
                raise DataError(
                    f"{path} has no array {missing[0]!r}; it has: {have}",
                    hint="set x_key / y_key to the names used in the file",
                )
            x_header, y_header = archive.header(x_key), archive.header(y_key)
            _check_declared(path, x_header, y_header, input_shape)
            return archive.read(x_header), archive.read(y_header)
    except OSError as error:
        raise DataError(f"cannot read npz file {path}: {error}") from None
    except NpzDamage as error:
        raise DataError(f"cannot read npz file {path}: {error}") from None


def _check_declared(
    path: pathlib.Path, x: MemberHeader, y: MemberHeader, input_shape: tuple[int, ...] | None
) -> None:
    if input_shape is not None and x.shape and math.prod(x.shape[1:]) != math.prod(input_shape):
        raise DataError(
            f"npz:{path}: x samples have shape {format_shape(x.shape[1:])} "
            f"({math.prod(x.shape[1:])} values) but the spec's input shape is "
            f"{list(input_shape)} ({math.prod(input_shape)} values)",
            hint=f"set input: {{shape: {list(x.shape[1:])}}} or reshape the data",
        )
    total, available = x.nbytes + y.nbytes, available_memory()
    if available is not None and total > available:
        raise DataError(
            f"npz file {path} declares {format_bytes(total)} of x and y, more than the "
            f"{format_bytes(available)} of memory available"
        )

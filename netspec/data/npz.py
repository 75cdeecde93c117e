"""Arrays from a NumPy `.npz` archive, read without pickle and bounded (npz_reader.py)."""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING, Literal

from netspec.data.base import DataError, DataSource, Key, Samples, Targets
from netspec.data.npz_reader import MemberHeader, NpzDamage, NpzReader
from netspec.memory import available_memory, format_bytes
from netspec.types import format_shape

if TYPE_CHECKING:
    import numpy as np


class NpzData(DataSource):
    """Arrays from a NumPy `.npz` archive (np.savez), read without pickle.

    x: (n, *input.shape) numbers; flattened for a 1-D input, but never reordered: (n, H, W,
    C) images for a [C, H, W] input are refused, not reshaped. y: int class
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

    def read(
        self,
        input_shape: tuple[int, ...],
        targets: Targets,
        seed: int,
        spec_dir: pathlib.Path | None,
    ) -> Samples:
        return self._read_file(self.path, input_shape, spec_dir)

    def read_validation(
        self, input_shape: tuple[int, ...], spec_dir: pathlib.Path | None
    ) -> Samples | None:
        if self.validation_path is None:
            return None
        return self._read_file(self.validation_path, input_shape, spec_dir)

    def _read_file(
        self, path: str, input_shape: tuple[int, ...], spec_dir: pathlib.Path | None
    ) -> Samples:
        resolved = resolve_path(path, spec_dir)
        x, y = read_npz(resolved, self.x_key, self.y_key, input_shape)
        return x, y, f"npz:{resolved}"


def resolve_path(path: str, spec_dir: pathlib.Path | None) -> pathlib.Path:
    """A data path: relative ones start at the spec's folder (None: the working directory)."""
    resolved = pathlib.Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = (spec_dir if spec_dir is not None else pathlib.Path.cwd()) / resolved
    return resolved


def read_npz(
    path: pathlib.Path, x_key: str, y_key: str, input_shape: tuple[int, ...]
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
    path: pathlib.Path, x: MemberHeader, y: MemberHeader, input_shape: tuple[int, ...]
) -> None:
    if x.shape and math.prod(x.shape[1:]) != math.prod(input_shape):
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

"""scikit-learn's bundled 8x8 handwritten digits: a data set that needs no download."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, ClassVar, Literal

from netspec.data.base import DataError, DataSource, Normalization, Samples, Targets

if TYPE_CHECKING:
    import numpy as np

DIGITS_IMAGE = (1, 8, 8)


class DigitsData(DataSource):
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes, no download).

    Each sample is 64 pixels valued 0..16: input shape [64] or [1, 8, 8]. The default
    normalisation `scale` maps them to [0, 1].
    """

    sample_shapes: ClassVar[tuple[tuple[int, ...], ...] | None] = (DIGITS_IMAGE, (64,))
    known_samples: ClassVar[int | None] = 1797

    source: Literal["digits"] = "digits"
    """Which data source this is."""
    normalize: Normalization = "scale"
    """none: raw 0..16; scale: divide by 16 (the training split's max), giving [0, 1];
    standardize: per-pixel zero mean and unit variance from the training split."""

    def read(
        self,
        input_shape: tuple[int, ...],
        targets: Targets,
        seed: int,
        spec_dir: pathlib.Path | None,
    ) -> Samples:
        x, y = read_digits()
        if input_shape == DIGITS_IMAGE:  # the 64 pixels are an 8x8 image, row by row
            x = x.reshape(len(x), *DIGITS_IMAGE)
        return x, y, "digits"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 64) float pixels 0..16 and (1797,) int labels 0..9, from scikit-learn."""
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

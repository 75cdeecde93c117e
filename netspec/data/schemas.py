"""The `data:` section's schemas: one per source, keyed on `source`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from netspec.types import Bool, PositiveInt

DATA_SOURCES = ("digits", "npz", "synthetic")
NORMALIZATIONS = ("none", "scale", "standardize")

Key = Annotated[str, Strict(), Field(min_length=1)]
Normalization = Literal["none", "scale", "standardize"]
Fraction = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]


class _DataSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    # The input shapes the source can fill, image shapes first; None: any, or known only
    # once the data is read. `netspec check` compares the spec's input with them.
    sample_shapes: ClassVar[tuple[tuple[int, ...], ...] | None] = None

    # How many samples the source holds, when that is known before reading anything.
    known_samples: ClassVar[int | None] = None

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

    sample_shapes: ClassVar[tuple[tuple[int, ...], ...] | None] = ((1, 8, 8), (64,))
    known_samples: ClassVar[int | None] = 1797

    source: Literal["digits"] = "digits"
    """Which data source this is."""
    normalize: Normalization = "scale"
    """none: raw 0..16; scale: divide by 16 (the training split's max), giving [0, 1];
    standardize: per-pixel zero mean and unit variance from the training split."""


class NpzData(_DataSource):
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

    @property
    def known_samples(self) -> int:  # type: ignore[override]
        return self.samples


AnyData = Annotated[DigitsData | NpzData | SyntheticData, Field(discriminator="source")]

"""What every data source shares: the `data:` fields common to all, the registry of sources,
DataError, the targets a loss expects, and the seeded random streams.

A source is one DataSource subclass in its own module, schema and reading together: its
`source: Literal[...]` names it, defining the class registers it in SOURCES, and
netspec/data/__init__.py builds the `data:` union from SOURCES in the order they are imported.
"""

from __future__ import annotations

import pathlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, Strict

from netspec.errors import NetspecError
from netspec.lazy import lazy_import
from netspec.losses import LOSS_TYPES
from netspec.types import Bool, Schema, Shape, format_shape

np = lazy_import("numpy")

# Independent random streams drawn from the one training seed.
SPLIT_STREAM = 1
SYNTHETIC_STREAM = 2
SHUFFLE_STREAM = 3  # the trainer's epoch order

Key = Annotated[str, Strict(), Field(min_length=1)]
Normalization = Literal["none", "scale", "standardize"]
Fraction = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]
Samples = tuple[Any, Any, str]  # raw x and y (NumPy arrays), and where they came from


class DataError(NetspecError):
    """The data does not fit the spec or cannot be read; `hint` says what to change."""


@dataclass(frozen=True)
class Targets:
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


def targets_for(loss_type: str, output_shape: Shape) -> Targets:
    """What `loss_type` expects of the data for a network output of `output_shape`."""
    loss = LOSS_TYPES.get(loss_type)
    if loss is None:
        known = ", ".join(sorted(LOSS_TYPES))
        raise DataError(f"no data targets are defined for loss '{loss_type}' (known: {known})")
    if loss.targets == "values":
        return Targets(loss_type, output_shape, None)
    if len(output_shape) < 2 or output_shape[1] is None:
        raise DataError(
            f"{loss_type} needs an (N, C) output, but the network outputs "
            f"{format_shape(output_shape)}"
        )
    return Targets(loss_type, output_shape, output_shape[1])


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    """The generator of one of the streams above for a training seed."""
    return np.random.default_rng([seed & (2**64 - 1), stream])  # negative seeds too


SOURCES: dict[str, type[DataSource]] = {}  # `source:` name -> its class, in import order


class DataSource(Schema, ABC):
    """Base of every `data:` source: the split, shuffle and normalisation all of them take."""

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

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Register a class that names its source (`source: Literal[...] = ...`)."""
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.__pydantic_fields__.get("source")  # model_fields would read docstrings
        if field is None:
            return
        known = SOURCES.get(field.default)
        if known is not None and _where(known) != _where(cls):  # a reload replaces itself
            raise TypeError(
                f"data source '{field.default}' is defined twice: "
                f"{'.'.join(_where(known))} and {'.'.join(_where(cls))}"
            )
        SOURCES[field.default] = cls

    @abstractmethod
    def read(
        self,
        input_shape: tuple[int, ...],
        targets: Targets,
        seed: int,
        spec_dir: pathlib.Path | None,
    ) -> Samples:
        """The raw samples, not yet checked (checks.py makes them fit the network), and the
        source's name for messages and reports. `spec_dir` anchors relative paths."""

    def read_validation(
        self, input_shape: tuple[int, ...], spec_dir: pathlib.Path | None
    ) -> Samples | None:
        """Validation samples of their own, or None: load_dataset splits them off `read`'s."""
        return None


def _where(cls: type) -> tuple[str, str]:
    return cls.__module__, cls.__qualname__

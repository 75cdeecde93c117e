"""What the data must fit, shared by the sources and the checks: DataError, the targets a
loss expects, and the seeded random streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netspec.errors import NetspecError
from netspec.types import Shape, format_shape

CLASSIFICATION_LOSSES = frozenset({"CrossEntropyLoss"})
REGRESSION_LOSSES = frozenset({"L1Loss", "MSELoss"})

# Independent random streams drawn from the one training seed.
SPLIT_STREAM = 1
SYNTHETIC_STREAM = 2
SHUFFLE_STREAM = 3  # the trainer's epoch order


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
    if loss_type in REGRESSION_LOSSES:
        return Targets(loss_type, output_shape, None)
    if loss_type not in CLASSIFICATION_LOSSES:
        known = ", ".join(sorted(CLASSIFICATION_LOSSES | REGRESSION_LOSSES))
        raise DataError(f"no data targets are defined for loss '{loss_type}' (known: {known})")
    if len(output_shape) < 2 or output_shape[1] is None:
        raise DataError(
            f"{loss_type} needs an (N, C) output, but the network outputs "
            f"{format_shape(output_shape)}"
        )
    return Targets(loss_type, output_shape, output_shape[1])


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    """The generator of one of the streams above for a training seed."""
    return np.random.default_rng([seed & (2**64 - 1), stream])  # negative seeds too

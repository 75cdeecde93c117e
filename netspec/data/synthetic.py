"""Seeded synthetic data: random inputs and the outputs of a random teacher, for smoke tests
and benchmarks."""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING, Literal

from netspec.data.base import SYNTHETIC_STREAM, DataSource, Samples, Targets, seeded_rng
from netspec.types import PositiveInt

if TYPE_CHECKING:
    import numpy as np

_TEACHER_RANK = 32  # a low-rank teacher keeps synthetic data cheap for image-sized inputs


class SyntheticData(DataSource):
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

    def read(
        self,
        input_shape: tuple[int, ...],
        targets: Targets,
        seed: int,
        spec_dir: pathlib.Path | None,
    ) -> Samples:
        x, y = synthesize(self.samples, input_shape, targets, seed)
        return x, y, "synthetic"


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

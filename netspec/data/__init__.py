"""The spec's `data:` section: where samples come from, and batches over them.

`load_dataset` reads a source (scikit-learn's bundled digits, an `.npz` file, or seeded
synthetic data), checks it against the network BEFORE any training step (per-sample size,
label range, dtype, NaN, empty sets) and raises `DataError` with both sides of a mismatch,
splits off a seeded validation set and normalises with training-split statistics only.
Everything here is NumPy on the host; the trainer moves batches to the device.

    schemas.py   DigitsData, NpzData, SyntheticData: the `data:` section
    sources.py   reading digits, .npz archives, synthetic data
    checks.py    x and y against the network's input and output
    dataset.py   Dataset, load_dataset: read, check, split, normalise
    batches.py   iterate_batches, batch_count
"""

from __future__ import annotations

from netspec.data.base import CLASSIFICATION_LOSSES, REGRESSION_LOSSES, DataError
from netspec.data.batches import batch_count, iterate_batches
from netspec.data.dataset import Dataset, load_dataset
from netspec.data.schemas import (
    DATA_SOURCES,
    NORMALIZATIONS,
    AnyData,
    DigitsData,
    NpzData,
    SyntheticData,
)

__all__ = [
    "CLASSIFICATION_LOSSES",
    "DATA_SOURCES",
    "NORMALIZATIONS",
    "REGRESSION_LOSSES",
    "AnyData",
    "DataError",
    "Dataset",
    "DigitsData",
    "NpzData",
    "SyntheticData",
    "batch_count",
    "iterate_batches",
    "load_dataset",
]

"""The spec's `data:` section: where samples come from, and batches over them.

`load_dataset` reads a source (scikit-learn's bundled digits, an `.npz` file, or seeded
synthetic data), checks it against the network BEFORE any training step (per-sample size,
label range, dtype, NaN, empty sets) and raises `DataError` with both sides of a mismatch,
splits off a seeded validation set and normalises with training-split statistics only.
Everything here is NumPy on the host; the trainer moves batches to the device. Importing the
package loads no NumPy: the front end validates `data:` with the schemas alone.

    base.py        DataSource (the fields every source shares, the registry), DataError,
                   the targets a loss expects, the seeded random streams
    digits.py      DigitsData     \\
    npz.py         NpzData         > one source each: its schema and its reading
    synthetic.py   SyntheticData  /
    npz_reader.py  bounded, pickle-free .npz reading (data files and checkpoints)
    checks.py      x and y against the network's input and output
    dataset.py     Dataset, load_dataset: read, check, split, normalise
    batches.py     iterate_batches, batch_count

Adding a source: write its module (a DataSource subclass with `source: Literal["name"]`)
and import it below; the import registers it in the `data:` union.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from netspec.data.base import SOURCES, DataError, DataSource
from netspec.data.batches import batch_count, iterate_batches
from netspec.data.dataset import Dataset, load_dataset

# The sources, one line each; their order is the union's (and the JSON Schema's).
from netspec.data.digits import DigitsData as DigitsData
from netspec.data.npz import NpzData as NpzData
from netspec.data.synthetic import SyntheticData as SyntheticData

DATA_SOURCES: tuple[str, ...] = tuple(SOURCES)
AnyData = Annotated[Union[tuple(SOURCES.values())], Field(discriminator="source")]  # noqa: UP007

__all__ = [
    "DATA_SOURCES",
    "AnyData",
    "DataError",
    "DataSource",
    "Dataset",
    "batch_count",
    "iterate_batches",
    "load_dataset",
    *(source.__name__ for source in SOURCES.values()),
]

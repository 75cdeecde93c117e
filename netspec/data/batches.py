"""Mini-batches over a dataset's arrays, as torch's DataLoader draws them."""

from __future__ import annotations

from collections.abc import Iterator

from netspec.data.base import DataError
from netspec.lazy import lazy_import

np = lazy_import("numpy")


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

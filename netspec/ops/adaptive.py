"""Adaptive pooling over unequal bins (sizes that do not divide): bins
[floor(i·size/out), ceil((i+1)·size/out)), which may overlap. Equal bins take the sliding
window kernels instead (ops.windows), as PyTorch's results are the same there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netspec.ops.backend import array_module
from netspec.ops.windows import separable_max


def bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive bins: [floor(i·size/out), ceil((i+1)·size/out)); they may overlap."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


# -- max -----------------------------------------------------------------------------------------
def max_bins(x: Any, oh: int, ow: int) -> tuple[Any, Any]:
    """Adaptive max over unequal bins: gather each bin's taps (a short bin repeats its last
    element, which never changes the pick) and reduce width first. Returns values, indices."""
    xp = array_module(x)
    n, c, height, width = x.shape
    if oh == 0 or ow == 0 or x.size == 0:
        empty = (n, c, oh, ow)
        return xp.zeros(empty, dtype=x.dtype), xp.zeros(empty, dtype=np.int64)
    rows, cols = _bin_taps(height, oh), _bin_taps(width, ow)  # (oh, Lh), (ow, Lw)
    row_lists = [xp.asarray(rows[:, t]) for t in range(rows.shape[1])]
    col_lists = [xp.asarray(cols[:, t]) for t in range(cols.shape[1])]
    y, row_tap, col_tap = separable_max(
        x,
        lambda a: [xp.take(a, chosen, axis=-1) for chosen in col_lists],  # (N, C, H, ow) each
        lambda a: [xp.take(a, chosen, axis=-2) for chosen in row_lists],  # (N, C, oh, ow) each
    )
    row = xp.take(xp.asarray(rows), xp.arange(oh)[:, None] * rows.shape[1] + row_tap)
    col = xp.take(xp.asarray(cols), xp.arange(ow) * cols.shape[1] + col_tap)
    return y, row * width + col


def max_bins_backward(g: Any, indices: Any, shape: tuple[int, ...]) -> Any:
    """Each output gradient onto its bin's maximum (flat h·W + w indices), NCHW."""
    xp = array_module(g)
    n, c, height, width = shape
    planes = xp.arange(n * c).reshape(n, c, 1, 1) * (height * width)
    # bins may overlap: one input can be the max of several bins, so gradients add up
    dx = xp.bincount(
        (indices + planes).ravel(), weights=g.ravel(), minlength=n * c * height * width
    )
    return dx.reshape(shape).astype(g.dtype, copy=False)


def _bin_taps(size: int, out: int) -> np.ndarray:
    """(out, longest bin) input positions of each bin, short bins padded with their last."""
    start, end = bins(size, out)
    taps = start[:, None] + np.arange((end - start).max())
    return np.minimum(taps, end[:, None] - 1)


# -- mean ----------------------------------------------------------------------------------------
def mean_bins(x: Any, oh: int, ow: int) -> tuple[Any, Any, Any]:
    """Adaptive mean as averaging matrices, y = A_h @ x @ A_wᵀ, in two large GEMMs.
    Returns y (N, C, oh, ow) and the two matrices, what backward needs."""
    xp = array_module(x)
    n, c, height, width = x.shape
    mean_h = xp.asarray(_bin_matrix(height, oh), dtype=x.dtype)  # (oh, H)
    mean_w = xp.asarray(_bin_matrix(width, ow), dtype=x.dtype)  # (ow, W)
    cols = (x.reshape(n * c * height, width) @ mean_w.T).reshape(n * c, height, ow)
    y = cols.transpose(0, 2, 1).reshape(n * c * ow, height) @ mean_h.T  # (N*C*ow, oh)
    return y.reshape(n, c, ow, oh).transpose(0, 1, 3, 2), mean_h, mean_w


def mean_bins_backward(g: Any, mean_h: Any, mean_w: Any) -> Any:
    """Adjoint of mean_bins: Aᵀ_h @ g @ A_w."""
    (n, c, oh, ow), height, width = g.shape, mean_h.shape[1], mean_w.shape[1]
    rows = (g.reshape(n * c * oh, ow) @ mean_w).reshape(n * c, oh, width)
    dx = rows.transpose(0, 2, 1).reshape(n * c * width, oh) @ mean_h  # (N*C*W, H)
    return dx.reshape(n, c, width, height).transpose(0, 1, 3, 2)


def _bin_matrix(size: int, out: int) -> np.ndarray:
    """(out, size): row i averages bin i."""
    start, end = bins(size, out)
    position = np.arange(size)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return inside / np.maximum(end - start, 1)[:, None]

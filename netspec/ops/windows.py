"""Pooling windows: separable max (with PyTorch's pick among ties and NaNs) and sums over
the windows of a WindowAxis pair, and their adjoints. Max and average over a window are
separable: reduce the width taps first, then the height taps. That is fewer passes than
one per (i, j) offset, and for max it keeps PyTorch's row-major tie-breaking (first maximum
wins; with NaNs, the last NaN wins).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from netspec.ops.backend import array_module
from netspec.ops.im2col import fold
from netspec.ops.layout import to_layout
from netspec.ops.padding import pad2d
from netspec.types import WindowAxis


# -- taps: the views of one axis's windows
def tap_views(axis: WindowAxis, a: Any, dim: int) -> list[Any]:
    """Strided views of `a` along `dim` (-2 or -1), one per kernel tap: (…, out, …)."""
    span = axis.stride * (axis.out - 1) + 1
    views = []
    for t in range(axis.kernel):
        start = t * axis.dilation
        index = [slice(None)] * a.ndim
        index[dim] = slice(start, start + span, axis.stride)
        views.append(a[tuple(index)])
    return views


def first_inside(axis: WindowAxis) -> np.ndarray:
    """Per window, the first tap that lands on the input rather than the padding."""
    starts = np.arange(axis.out) * axis.stride - axis.pad
    return np.maximum(0, -(starts // axis.dilation))  # ceil(−start / d)


def fold_taps(axis: WindowAxis, g: Any, dim: int, length: int) -> Any:
    """Adjoint of `tap_views` summed: add g (…, out, …) back at every tap, on `length` positions."""
    xp = array_module(g)
    shape = list(g.shape)
    shape[dim] = length
    result = xp.zeros(shape, dtype=g.dtype)
    for view in tap_views(axis, result, dim):
        view += g
    return result


# -- max: values and the tap PyTorch picks
def _index_dtype(taps: int) -> Any:
    return np.uint8 if taps < 256 else np.int32


def _max_first(taps: list[Any]) -> tuple[Any, Any]:
    """Max over same-shaped taps and the first tap that holds it (exact unless NaN or all −inf).

    The index counts the taps before the first match with boolean ands: no masked writes.
    """
    xp = array_module(taps[0])
    best = taps[0].copy() if len(taps) == 1 else xp.maximum(taps[0], taps[1])
    for view in taps[2:]:
        xp.maximum(best, view, out=best)
    index = xp.zeros(best.shape, dtype=_index_dtype(len(taps)))
    if len(taps) > 1:
        missed = taps[0] != best  # no tap so far holds the max
        index += missed
        for view in taps[1:-1]:
            missed &= view != best
            index += missed
    return best, index


def _max_exact(taps: list[Any], first: Any) -> tuple[Any, Any]:
    """PyTorch's loop: start at −inf on tap `first` (the first one inside the input), then take
    a tap when it is greater or NaN. So a NaN window reports its last NaN, and an all −inf
    window its first input position, never the padding."""
    xp = array_module(taps[0])
    best = xp.full(taps[0].shape, -math.inf, dtype=taps[0].dtype)
    dtype = _index_dtype(len(taps))
    index = xp.broadcast_to(xp.asarray(first, dtype=dtype), best.shape).copy()
    for t, view in enumerate(taps):
        take = (view > best) | xp.isnan(view)
        best = xp.where(take, view, best)
        index = xp.where(take, dtype(t), index)
    return best, index


def separable_max(x: Any, taps_w: Any, taps_h: Any, first_w: Any = 0, first_h: Any = 0):
    """Max over 2-D windows: width taps first, then height taps, so the pick stays row-major.

    Returns the values (N, C, oh, ow), the height tap and the width tap of each pick.
    """
    row_max, col = _max_first(taps_w(x))  # (N, C, H', ow)
    y, row = _max_first(taps_h(row_max))  # (N, C, oh, ow)
    if not bool((y > -math.inf).all()):  # rare: a NaN or an all −inf window
        row_max, col = _max_exact(taps_w(x), first_w)
        y, row = _max_exact(taps_h(row_max), first_h)
    col_taps = taps_h(col)  # the width pick of each row in the window
    if len(col_taps) == 1:
        return y, row, col_taps[0].copy()
    picked = (row == 0) * col_taps[0]
    for i, view in enumerate(col_taps[1:], start=1):
        picked += (row == i) * view
    return y, row, picked


def max_windows(x: Any, ah: WindowAxis, aw: WindowAxis) -> tuple[Any, Any]:
    """MaxPool2d forward: values and the window tap (i·kw + j) of each maximum."""
    xp = array_module(x)
    if _inner_tiles(ah) and _inner_tiles(aw):
        y, tap = _max_first([tap for row in tap_views(ah, x, -2) for tap in tap_views(aw, row, -1)])
        if bool((y > -math.inf).all()):  # else a NaN or an all −inf window: PyTorch's loop
            return y, tap
    padded = pad2d(x, (*ah.pads, *aw.pads), value=-math.inf)[..., : ah.extent, : aw.extent]
    y, row, col = separable_max(
        padded,
        lambda a: tap_views(aw, a, -1),
        lambda a: tap_views(ah, a, -2),
        xp.asarray(first_inside(aw)),
        xp.asarray(first_inside(ah)[:, None]),
    )
    return y, row * aw.kernel + col  # (N, C, oh, ow) both


def _inner_tiles(axis: WindowAxis) -> bool:
    """Windows that tile the axis without padding and stay inside it (2x2, stride 2)."""
    return axis.tiles and axis.pad == 0 and axis.extent <= axis.size


def max_windows_backward(
    g: Any, tap: Any, ah: WindowAxis, aw: WindowAxis, channels_last: bool
) -> Any:
    """Route each output gradient to its window's maximum; overlapping windows add up.

    The result has the memory order of the input (channels_last), as the layer below
    combines it with arrays it saved in that order."""
    xp = array_module(g)
    n, c, oh, ow = g.shape
    kh, kw = ah.kernel, aw.kernel
    if ah.tiles and aw.tiles:  # every input in exactly one window: write, don't add
        windows = _scatter_tiles(g, tap, kh, kw, channels_last)
    else:
        windows = fold(
            lambda i, j: g * (tap == i * kw + j),
            (n, c, ah.extent, aw.extent),
            (kh, kw),
            (ah.stride, aw.stride),
            (ah.dilation, aw.dilation),
            (oh, ow),
            xp,
            g.dtype,
        )
    return to_layout(_unpad(windows, ah, aw), channels_last)


def _scatter_tiles(g: Any, tap: Any, kh: int, kw: int, channels_last: bool) -> Any:
    """(N, C, oh·kh, ow·kw) holding g at each window's tap, zero elsewhere."""
    xp = array_module(g)
    n, c, oh, ow = g.shape
    if kh * kw <= 4:  # a few masked products beat an index computation
        if channels_last:
            blocks = xp.empty((n, oh, kh, ow, kw, c), g.dtype).transpose(0, 5, 1, 2, 3, 4)
        else:
            blocks = xp.empty((n, c, oh, kh, ow, kw), dtype=g.dtype)
        for i in range(kh):
            for j in range(kw):
                xp.multiply(g, tap == i * kw + j, out=blocks[:, :, :, i, :, j])
    else:  # one plain indexed write: each target is distinct
        blocks = xp.zeros((n, c, oh, kh, ow, kw), dtype=g.dtype)
        row = xp.arange(n * c * oh).reshape(n, c, oh, 1) * kh + tap // kw  # (N, C, oh, ow)
        target = row * (ow * kw) + xp.arange(ow) * kw + tap % kw
        blocks.reshape(-1)[target.ravel()] = g.ravel()
    return blocks.reshape(n, c, oh * kh, ow * kw)


def flat_indices(tap: Any, ah: WindowAxis, aw: WindowAxis) -> Any:
    """PyTorch's indices: h·W + w in the unpadded plane, int64."""
    xp = array_module(tap)
    width = aw.size
    offsets = (
        np.arange(ah.kernel)[:, None] * ah.dilation * width + np.arange(aw.kernel) * aw.dilation
    )
    rows = np.arange(ah.out) * ah.stride - ah.pad
    cols = np.arange(aw.out) * aw.stride - aw.pad
    starts = rows[:, None] * width + cols  # (oh, ow): each window's top-left corner
    return xp.take(xp.asarray(offsets.ravel()), tap) + xp.asarray(starts)


def _unpad(windows: Any, ah: WindowAxis, aw: WindowAxis) -> Any:
    """The (…, H, W) input gradient from one over the padded extent the windows reach."""
    height = min(ah.size, ah.extent - ah.pad)
    width = min(aw.size, aw.extent - aw.pad)
    inner = windows[..., ah.pad : ah.pad + height, aw.pad : aw.pad + width]
    if (height, width) == (ah.size, aw.size):
        return inner
    # floor mode left the last rows or columns out of every window: their gradient is zero
    result = array_module(windows).zeros((*windows.shape[:-2], ah.size, aw.size), windows.dtype)
    result[..., :height, :width] = inner
    return result


def _sum_taps(taps: list[Any]) -> Any:
    if len(taps) == 1:
        return taps[0].copy()
    total = taps[0] + taps[1]
    for view in taps[2:]:
        total += view
    return total


def window_sums(x: Any, ah: WindowAxis, aw: WindowAxis) -> Any:
    """Sums over zero-padded windows, width taps then height taps: (N, C, oh, ow)."""
    padded = pad2d(x, (*ah.pads, *aw.pads))[..., : ah.extent, : aw.extent]
    row_sums = _sum_taps(tap_views(aw, padded, -1))  # (N, C, H', ow)
    return _sum_taps(tap_views(ah, row_sums, -2))


def spread_windows(share: Any, ah: WindowAxis, aw: WindowAxis) -> Any:
    """Adjoint of window_sums: every input gets the share of each window it is in."""
    n, c, oh, ow = share.shape
    if ah.tiles and aw.tiles:
        blocks = array_module(share).broadcast_to(
            share[:, :, :, None, :, None], (n, c, oh, ah.kernel, ow, aw.kernel)
        )
        windows = blocks.reshape(n, c, oh * ah.kernel, ow * aw.kernel)
    else:
        windows = fold_taps(aw, fold_taps(ah, share, -2, ah.extent), -1, aw.extent)
    return _unpad(windows, ah, aw)


def avg_divisor(
    ah: WindowAxis, aw: WindowAxis, count_include_pad: bool, divisor_override: int | None
) -> np.ndarray:
    """AvgPool2d's divisor per output position (oh, ow), float64 on the host."""
    if divisor_override is not None:
        return np.full((ah.out, aw.out), divisor_override)
    include = count_include_pad
    return np.outer(_pooled_lengths(ah, include), _pooled_lengths(aw, include))


def _pooled_lengths(axis: WindowAxis, count_include_pad: bool) -> np.ndarray:
    """AvgPool2d's divisor along one axis (the part past size + pad never counts)."""
    start = np.arange(axis.out) * axis.stride - axis.pad
    end = np.minimum(start + axis.kernel, axis.size + axis.pad)
    if count_include_pad:
        return end - start
    return np.minimum(end, axis.size) - np.maximum(start, 0)

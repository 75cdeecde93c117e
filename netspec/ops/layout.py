"""Memory orders of (N, C, H, W) arrays: NCHW or channels-last (C innermost).

Arrays are always (N, C, H, W) to the layers, but their memory may be channels-last:
convolutions produce their output that way, because their GEMM writes (N·Ho·Wo, O) rows,
and elementwise layers keep the layout they are given (NumPy's ufuncs allocate in the
input's order). Copies between the two orders cost more than the arithmetic of an
elementwise layer, so a layer that allocates a gradient gives it the memory order of the
input it saved (`empty_like_layout`, `to_layout`).
"""

from __future__ import annotations

from typing import Any

from netspec.ops.backend import array_module
from netspec.ops.padding import crop2d, split_pads
from netspec.types import Pads


def is_channels_last(x: Any) -> bool:
    """Whether (N, C, H, W) x is stored channels-last, C innermost (and not also NCHW)."""
    return x.shape[1] > 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def empty_like_layout(shape: tuple[int, ...], dtype: Any, xp: Any, channels_last: bool) -> Any:
    """An uninitialised (N, C, H, W) array in the given memory order."""
    if not channels_last:
        return xp.empty(shape, dtype=dtype)
    n, c, h, w = shape
    return xp.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)


def to_layout(x: Any, channels_last: bool) -> Any:
    """x (N, C, H, W) in the given memory order: itself when it already is."""
    if (x.transpose(0, 2, 3, 1) if channels_last else x).flags.c_contiguous:
        return x
    out = empty_like_layout(x.shape, x.dtype, array_module(x), channels_last)
    out[...] = x
    return out


def to_channels_last(x: Any, pads: Pads = (0, 0, 0, 0)) -> Any:
    """x (N, C, H, W), zero padded (negative pads crop), as a contiguous (N, Hp, Wp, C).

    Only the borders are zeroed; the interior is one copy, a plain one when x already is
    channels-last.
    """
    (top, bottom, left, right), cuts = split_pads(pads)
    x = crop2d(x, cuts)
    n, c, h, w = x.shape
    out = array_module(x).empty((n, top + h + bottom, left + w + right, c), dtype=x.dtype)
    out[:, :top] = 0
    out[:, top + h :] = 0
    out[:, top : top + h, :left] = 0
    out[:, top : top + h, left + w :] = 0
    out[:, top : top + h, left : left + w] = x.transpose(0, 2, 3, 1)
    return out

"""2-D padding in PyTorch's modes and its adjoint, and F.pad, whose negative pads crop.

The adjoints are deterministic: cropping, or 0/1 index matrices (no scatter-add).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netspec.ops.backend import array_module
from netspec.types import Pads

# PyTorch's padding_mode -> numpy.pad's mode
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad2d(x: Any, pads: Pads, mode: str = "zeros", value: float = 0.0) -> Any:
    """Pad the last two axes of x. `mode` is a PyTorch padding_mode."""
    if not any(pads):
        return x
    xp = array_module(x)
    top, bottom, left, right = pads
    width = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    np_mode = PAD_MODES[mode]
    if np_mode == "constant":
        return xp.pad(x, width, mode="constant", constant_values=value)
    return xp.pad(x, width, mode=np_mode)


def pad2d_backward(g: Any, size: tuple[int, int], pads: Pads, mode: str = "zeros") -> Any:
    """Adjoint of pad2d: the gradient of the unpadded (…, H, W) input from that of the output.

    Zero padding crops. Other modes sum every padded position into the input pixel it copies,
    as `R @ g @ Cᵀ` with 0/1 index matrices from numpy.pad applied to arange (deterministic,
    no scatter-add).
    """
    if not any(pads):
        return g
    top, bottom, left, right = pads
    height, width = size
    if mode == "zeros":
        return g[..., top : top + height, left : left + width]
    xp = array_module(g)
    rows = _index_matrix(xp, height, (top, bottom), PAD_MODES[mode], g.dtype)  # (H, Hp)
    cols = _index_matrix(xp, width, (left, right), PAD_MODES[mode], g.dtype)  # (W, Wp)
    return rows @ g @ cols.T  # (…, H, W)


def _index_matrix(xp: Any, size: int, pads: tuple[int, int], np_mode: str, dtype: Any) -> Any:
    source = np.pad(np.arange(size), pads, mode=np_mode)  # padded position -> input position
    matrix = np.zeros((size, source.size), dtype=dtype)
    matrix[source, np.arange(source.size)] = 1
    return xp.asarray(matrix)


def split_pads(pads: Pads) -> tuple[Pads, Pads]:
    """F.pad's pads, where a negative entry crops: (growth, cuts)."""
    return tuple(max(p, 0) for p in pads), tuple(max(-p, 0) for p in pads)  # type: ignore[return-value]


def crop2d(x: Any, cuts: Pads) -> Any:
    top, bottom, left, right = cuts
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


def uncrop2d(g: Any, cuts: Pads, size: tuple[int, int]) -> Any:
    """Adjoint of crop2d: g put back into zeros of the uncropped size."""
    if not any(cuts):
        return g
    full = array_module(g).zeros((*g.shape[:-2], *size), dtype=g.dtype)
    full[..., cuts[0] : cuts[0] + g.shape[-2], cuts[2] : cuts[2] + g.shape[-1]] = g
    return full


def fpad(x: Any, pads: Pads, mode: str) -> Any:
    """F.pad: reflect/replicate pad, then crop; zeros and circular crop, then pad."""
    grow, cuts = split_pads(pads)
    if mode in ("zeros", "circular"):
        return pad2d(crop2d(x, cuts), grow, mode)
    return crop2d(pad2d(x, grow, mode), cuts)


def fpad_backward(g: Any, size: tuple[int, int], pads: Pads, mode: str) -> Any:
    """Adjoint of fpad: g (…, Hp, Wp) -> (…, H, W)."""
    grow, cuts = split_pads(pads)
    height, width = size
    if mode in ("zeros", "circular"):
        inner = (height - cuts[0] - cuts[1], width - cuts[2] - cuts[3])
        return uncrop2d(pad2d_backward(g, inner, grow, mode), cuts, size)
    grown = (height + grow[0] + grow[1], width + grow[2] + grow[3])
    return pad2d_backward(uncrop2d(g, cuts, grown), size, grow, mode)

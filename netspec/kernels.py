"""Array kernels shared by the layers: 2-D padding and its adjoint, sliding-window views,
and the fold (col2im) that scatters window values back onto the input.

Everything works on NumPy and CuPy alike (`xp`); loops run at most over kernel offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from netspec.backend import array_module, as_strided

Pads = tuple[int, int, int, int]  # (top, bottom, left, right)

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


def output_size(size: int, kernel: int, stride: int, dilation: int, pads: tuple[int, int]) -> int:
    """Convolution output length: floor((H + pads − d·(k−1) − 1) / s) + 1."""
    return (size + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1


def window_view(
    x: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: tuple[int, int],
) -> Any:
    """A read-only strided view (N, C, Ho, Wo, kh, kw) of the windows of x (N, C, H, W).

    x must already hold its padding; no data is copied.
    """
    xp = array_module(x)
    n_stride, c_stride, h_stride, w_stride = x.strides
    return as_strided(xp)(
        x,
        shape=(x.shape[0], x.shape[1], out[0], out[1], kernel[0], kernel[1]),
        strides=(
            n_stride,
            c_stride,
            h_stride * stride[0],
            w_stride * stride[1],
            h_stride * dilation[0],
            w_stride * dilation[1],
        ),
    )


def fold(
    window_values: Callable[[int, int], Any],
    shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: tuple[int, int],
    xp: Any,
    dtype: Any,
) -> Any:
    """col2im: sum window values back onto an array of `shape` (…, H, W).

    `window_values(i, j)` gives the values (…, Ho, Wo) at kernel offset (i, j); each offset
    is one strided slice-add, which is deterministic and needs no scatter.
    """
    result = xp.zeros(shape, dtype=dtype)
    h_span = stride[0] * (out[0] - 1) + 1
    w_span = stride[1] * (out[1] - 1) + 1
    for i in range(kernel[0]):
        top = i * dilation[0]
        for j in range(kernel[1]):
            left = j * dilation[1]
            result[..., top : top + h_span : stride[0], left : left + w_span : stride[1]] += (
                window_values(i, j)
            )
    return result

"""Convolution windows as GEMM operands: a strided view of the windows, the two im2col
layouts and the image blocks they are built in, and the fold (col2im) that sums window
values back. One code path for NumPy and CuPy; loops run at most over kernel offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from netspec.ops.backend import array_module, as_strided

# -- im2col ------------------------------------------------------------------------------------
# Columns built at once on the CPU: a block of images whose columns stay in the caches between
# their copy and their GEMM, in one buffer reused by every block. On 2 cores, a 32->32 channel
# 3x3 convolution at batch 64, 32x32 runs its forward in 5.2 ms this way against 8.6 ms for the
# whole batch's 75 MB of columns (VGG's step: 1.4x faster); and a step never holds a whole
# batch's columns. 1 and 2 MB blocks measured 5-12% slower, 8 MB 3-6%.
CPU_BLOCK_BYTES = 4 * 2**20


def fits_one_block(values: int, like: Any) -> bool:
    """Whether `values` values of like's dtype fit CPU_BLOCK_BYTES (columns small enough to
    keep from forward to backward)."""
    return values * like.itemsize <= CPU_BLOCK_BYTES


def image_blocks(n: int, values_per_image: int, like: Any) -> tuple[list[slice], Any]:
    """Slices of a batch of n images whose columns, `values_per_image` values of like's dtype
    an image, fit CPU_BLOCK_BYTES, and a flat buffer for one block's columns. On a GPU, one
    slice and no buffer: it wants few, large kernels."""
    xp = array_module(like)
    if xp is not np:
        return ([slice(0, n)] if n else []), None
    per_block = max(1, min(n, CPU_BLOCK_BYTES // max(1, values_per_image * like.itemsize)))
    blocks = [slice(start, min(start + per_block, n)) for start in range(0, n, per_block)]
    return blocks, xp.empty(per_block * values_per_image, dtype=like.dtype)


def im2col_rows(padded, kernel, stride, dilation, out, groups, buffer=None) -> Any:
    """Windows of channels-last padded (N, Hp, Wp, C) as rows (G, N*Ho*Wo, kh*kw*C/G).

    The one copy of the data, into `buffer` (flat, at least that size) when given: a block
    loop reuses one, so its columns stay where the cache has them. With stride 1 and no
    dilation, kw neighbouring pixels' channels are one contiguous run of kw·C/G values.
    """
    xp, (n, _, _, channels) = array_module(padded), padded.shape
    per_group = channels // groups
    sn, sh, sw, sc = padded.strides
    windows = as_strided(xp)(
        padded,
        shape=(n, *out, *kernel, groups, per_group),
        strides=(
            sn,
            sh * stride[0],
            sw * stride[1],
            sh * dilation[0],
            sw * dilation[1],
            sc * per_group,
            sc,
        ),
    )
    if groups > 1:
        windows = windows.transpose(5, 0, 1, 2, 3, 4, 6)  # (G, N, Ho, Wo, kh, kw, C/G)
    if buffer is None:
        col = xp.ascontiguousarray(windows)
    else:
        col = buffer[: windows.size].reshape(windows.shape)
        col[...] = windows
    return col.reshape(groups, n * out[0] * out[1], kernel[0] * kernel[1] * per_group)


def im2col_channel_major(padded, kernel, stride, dilation, out, groups) -> Any:
    """Windows of padded (N, C, Hp, Wp) as channel-major columns (G, C/G*kh*kw, N*Ho*Wo).

    The one copy of the data; output columns stay innermost, so reads run along rows: the
    better layout when C/G·kw is short next to Wo (a network's first, few-channel layer).
    """
    n, channels = padded.shape[:2]
    windows = window_view(padded, kernel, stride, dilation, out)  # (N, C, Ho, Wo, kh, kw)
    windows = windows.reshape(n, groups, channels // groups, *out, *kernel)
    col = array_module(padded).ascontiguousarray(windows.transpose(1, 2, 5, 6, 0, 3, 4))
    rows = channels // groups * kernel[0] * kernel[1]
    return col.reshape(groups, rows, n * out[0] * out[1])  # from (G, C/G, kh, kw, N, Ho, Wo)


# -- windows and their adjoint -----------------------------------------------------------------
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
    """col2im: sum window values back onto zeros of `shape` (…, H, W); see fold_into."""
    return fold_into(xp.zeros(shape, dtype=dtype), window_values, kernel, stride, dilation, out)


def fold_into(
    result: Any,
    window_values: Callable[[int, int], Any],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: tuple[int, int],
) -> Any:
    """col2im into `result` (…, H, W), an array (or view) of any memory order; returns it.

    `window_values(i, j)` gives the values (…, Ho, Wo) at kernel offset (i, j); each offset
    is one strided slice-add, which is deterministic and needs no scatter.
    """
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

"""Array kernels shared by the layers: 2-D padding and its adjoint, memory orders, sliding-
window views, the two im2col layouts and the image blocks they are built in, the fold
(col2im) that scatters window values back, and the pooling windows (separable max and sums).

Everything works on NumPy and CuPy alike (`xp`); loops run at most over kernel offsets.

Layouts. Arrays are always (N, C, H, W) to the layers, but their memory may be
channels-last (C innermost): convolutions produce their output that way, because their
GEMM writes (N·Ho·Wo, O) rows, and elementwise layers keep the layout they are given
(NumPy's ufuncs allocate in the input's order). Copies between the two orders cost more
than the arithmetic of an elementwise layer, so a layer that allocates a gradient gives it
the memory order of the input it saved (`empty_like_layout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from netspec.ops.backend import array_module, as_strided

Pads = tuple[int, int, int, int]  # (top, bottom, left, right)

# PyTorch's padding_mode -> numpy.pad's mode
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# -- padding -----------------------------------------------------------------------------------
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


# -- windows and their adjoint -----------------------------------------------------------------
def sliding_stride(stride: tuple[int, int], out: tuple[int, int]) -> tuple[int, int]:
    """The stride a kernel uses: along an axis with a single window any stride gives the same
    result, and 1 keeps a huge one (2**62) out of the strided view's byte offsets."""
    return (stride[0] if out[0] > 1 else 1, stride[1] if out[1] > 1 else 1)


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


# -- memory order ------------------------------------------------------------------------------
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


# -- pooling windows ---------------------------------------------------------------------------
# Max and average over a window are separable: reduce the width taps first, then the height
# taps. That is fewer passes than one per (i, j) offset, and for max it keeps PyTorch's
# row-major tie-breaking (first maximum wins; with NaNs, the last NaN wins).
@dataclass(frozen=True)
class WindowAxis:
    """The windows along one spatial axis: `out` windows of `kernel` taps over `size` inputs."""

    size: int
    kernel: int
    stride: int
    dilation: int
    pad: int
    out: int

    @property
    def extent(self) -> int:
        """Padded length the windows reach: (out−1)·s + d·(k−1) + 1."""
        return (self.out - 1) * self.stride + self.dilation * (self.kernel - 1) + 1

    @property
    def pads(self) -> tuple[int, int]:
        """Padding before and after; the ceil_mode windows may reach past the declared pad."""
        return self.pad, max(0, self.extent - self.pad - self.size)

    @property
    def tiles(self) -> bool:
        """Windows tile the axis exactly (k == s, no dilation): backward is a reshape."""
        return self.kernel == self.stride and self.dilation == 1

    def taps(self, a: Any, axis: int) -> list[Any]:
        """Strided views of `a` along `axis` (-2 or -1), one per kernel tap: (…, out, …)."""
        span = self.stride * (self.out - 1) + 1
        views = []
        for t in range(self.kernel):
            start = t * self.dilation
            index = [slice(None)] * a.ndim
            index[axis] = slice(start, start + span, self.stride)
            views.append(a[tuple(index)])
        return views

    def first_inside(self) -> np.ndarray:
        """Per window, the first tap that lands on the input rather than the padding."""
        starts = np.arange(self.out) * self.stride - self.pad
        return np.maximum(0, -(starts // self.dilation))  # ceil(−start / d)

    def fold(self, g: Any, axis: int, length: int) -> Any:
        """Adjoint of `taps` summed: add g (…, out, …) back at every tap, on `length` positions."""
        xp = array_module(g)
        shape = list(g.shape)
        shape[axis] = length
        result = xp.zeros(shape, dtype=g.dtype)
        for view in self.taps(result, axis):
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
    padded = pad2d(x, (*ah.pads, *aw.pads), value=-math.inf)[..., : ah.extent, : aw.extent]
    y, row, col = separable_max(
        padded,
        lambda a: aw.taps(a, -1),
        lambda a: ah.taps(a, -2),
        xp.asarray(aw.first_inside()),
        xp.asarray(ah.first_inside()[:, None]),
    )
    return y, row * aw.kernel + col  # (N, C, oh, ow) both


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
    row_sums = _sum_taps(aw.taps(padded, -1))  # (N, C, H', ow)
    return _sum_taps(ah.taps(row_sums, -2))


def spread_windows(share: Any, ah: WindowAxis, aw: WindowAxis) -> Any:
    """Adjoint of window_sums: every input gets the share of each window it is in."""
    n, c, oh, ow = share.shape
    if ah.tiles and aw.tiles:
        blocks = array_module(share).broadcast_to(
            share[:, :, :, None, :, None], (n, c, oh, ah.kernel, ow, aw.kernel)
        )
        windows = blocks.reshape(n, c, oh * ah.kernel, ow * aw.kernel)
    else:
        windows = aw.fold(ah.fold(share, -2, ah.extent), -1, aw.extent)
    return _unpad(windows, ah, aw)

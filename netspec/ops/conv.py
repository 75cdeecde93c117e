"""Conv2d's numerics (pytorch-semantics.md §6): one code path for NumPy and CuPy, two layouts.

- channels-last rows (the usual case): pad the input once into (N, Hp, Wp, C), copy its
  windows into rows (N·Ho·Wo, kh·kw·C/G) and multiply by the weights (kh·kw·C/G, O/G). The
  product is already the output, channels-last: it is returned as an (N, O, Ho, Wo) view of
  that memory, so the next convolution needs no transpose, and its input gradient comes
  back in the order the layer below saved. On the CPU the rows are built a block of images
  at a time (im2col.image_blocks) into one reused buffer that stays in cache for the GEMM;
  columns are never kept for backward unless they are that small.
- backward: db is a GEMV; dW is gᵀ @ rows, the rows built again a block at a time. The input
  gradient, with stride 1 and O <= C, correlates the zero-padded gradient with the flipped
  kernel, and dW then comes from the same gradient windows; otherwise each kernel offset's
  product g @ W[:, :, i, j] is added back onto the padded input (fold). The padding's adjoint
  comes last. `input_grad` False (the network's first layer in training) skips dx.
- channel-major columns (one input channel a group: a first layer on grey images,
  depthwise): columns (G, C/G·kh·kw, N·Ho·Wo) copy runs of Wo instead of runs of kw; they
  are small, kept for dW, and the output is turned NCHW in the pass that adds the bias.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from netspec.ops.backend import array_module
from netspec.ops.conv_layouts import (
    channels_last_rows,
    grouped_rows,
    grouped_weight,
    rows_product,
    rows_weight,
    to_batch_major,
    to_channel_major,
)
from netspec.ops.im2col import (
    fits_one_block,
    fold_into,
    im2col_channel_major,
    im2col_rows,
    image_blocks,
)
from netspec.ops.layout import is_channels_last, to_channels_last, to_layout
from netspec.ops.padding import fpad, fpad_backward, pad2d_backward
from netspec.types import ConvGeometry, Shape


class ConvGrads(NamedTuple):
    """What backward computed: the input's gradient (None when not asked for), dW, db."""

    input: Any
    weight: Any
    bias: Any


def conv2d(x: Any, weight: Any, bias: Any, geo: ConvGeometry) -> tuple[Any, tuple]:
    """y (N, O, Ho, Wo) from x (N, C, H, W), and what backward needs (to keep as is)."""
    pixels = x.shape[0] * geo.out[0] * geo.out[1]
    if uses_rows(x.shape[1], geo.groups, pixels, weight.shape[0]):
        return _forward_rows(x, weight, bias, geo)
    return _forward_channel_major(x, weight, bias, geo)


def conv2d_backward(g: Any, weight: Any, saved: tuple, has_bias: bool, input_grad: bool):
    """The ConvGrads of g (N, O, Ho, Wo), from what conv2d saved; dx in the input's layout."""
    layout, arrays, x_shape, geo, channels_last = saved
    backward = _backward_rows if layout == "rows" else _backward_channel_major
    grads = backward(weight, g, has_bias, input_grad, arrays, x_shape, geo)
    dx = grads.input
    if dx is None:
        return grads
    if geo.padding_mode != "zeros":  # dx is on the padded plane: the padding's adjoint
        dx = fpad_backward(dx, x_shape[2:], geo.pads, geo.padding_mode)
    # what the layer below saved: no mixed layouts
    return grads._replace(input=to_layout(dx, channels_last))


def uses_rows(channels: int, groups: int, pixels: int, out_channels: int) -> bool:
    """Channels-last rows, unless a group has a single input channel or the batch has
    fewer output pixels than the layer has output channels.

    Rows give the GEMM its faster (N·Ho·Wo, O) orientation and hand the next layer a
    channels-last output, so the next convolution's input and gradient need no transpose
    (VGG's 3-channel first layer: 5% off the step). With one channel a group, NCHW already
    is channels-last and rows would copy runs of kw values where channel-major columns
    copy runs of Wo (LeNet's first layer: a third off the step).

    Few pixels (ResNet-18's last stage at batch 1: 49 pixels, 512 channels): the weight is
    larger than the columns, and rows would reorder it to (kh·kw·C/G, O/G) on every call,
    a strided copy that took 4.2 ms where the whole product takes 2 ms. Channel-major
    columns multiply the weight as it is stored.
    """
    return channels // groups > 1 and pixels >= out_channels


def _windows(geo: ConvGeometry) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return geo.kernel, geo.stride, geo.dilation


def _correlation_pays(geo: ConvGeometry, out_channels: int, channels: int) -> bool:
    """Stride 1, dx by correlation rather than the fold, when O <= C: correlation copies
    kh·kw·O gradient values per input pixel into windows; the fold's products write
    kh·kw·C values per output pixel and add them back in kh·kw passes. (Measured: LeNet's
    6->16 layer 3x faster by the fold, VGG's equal-width layers ~10% faster correlated.)"""
    return geo.unit_stride and out_channels <= channels


# -- channels-last rows, a block of images at a time --------------------------------------------
def _forward_rows(x: Any, weight: Any, bias: Any, geo: ConvGeometry) -> tuple[Any, tuple]:
    if geo.padding_mode == "zeros":
        padded = to_channels_last(x, geo.pads)  # (N, Hp, Wp, C)
    else:
        padded = to_channels_last(fpad(x, geo.pads, geo.padding_mode))
    out_channels, groups = weight.shape[0], geo.groups
    weight_rows = rows_weight(weight, groups)  # (G, K/G, O/G)
    n, pixels = x.shape[0], geo.out[0] * geo.out[1]
    y = array_module(x).empty((n * pixels, out_channels), dtype=x.dtype)
    values = groups * weight_rows.shape[1] * pixels  # of columns, per image
    blocks, buffer = image_blocks(n, values, x)
    keep = fits_one_block(n * values, x)  # small columns serve backward too
    col = None
    for images in blocks:
        col = im2col_rows(padded[images], *_windows(geo), geo.out, groups, None if keep else buffer)
        block = y[images.start * pixels : images.stop * pixels]  # (B*Ho*Wo, O)
        rows_product(col, weight_rows, out=block)
        if bias is not None:
            block += bias
    saved = ("rows", (padded, col if keep else None), x.shape, geo, is_channels_last(x))
    return y.reshape(n, *geo.out, out_channels).transpose(0, 3, 1, 2), saved


def _backward_rows(weight, g, has_bias, input_grad, arrays, x_shape, geo) -> ConvGrads:
    (padded, col), rows = arrays, channels_last_rows(g)  # rows: (N*Ho*Wo, O)
    db = None
    if has_bias:  # a GEMV: .sum(0) over the rows takes 5x as long
        db = array_module(g).ones(rows.shape[0], dtype=g.dtype) @ rows
    if input_grad and _correlation_pays(geo, weight.shape[0], x_shape[1]):
        dw, dx = _correlate(weight, g, x_shape, geo, padded)
    else:
        dw = _weight_grad_from_columns(weight.shape, rows, padded, geo, col)
        dx = _input_grad_by_fold(weight, rows, x_shape, geo) if input_grad else None
    return ConvGrads(dx, dw, db)


def _correlate(weight: Any, g: Any, x_shape: Shape, geo: ConvGeometry, padded: Any):
    """Stride 1: dx is g, zero-padded by d·(k−1), correlated with the flipped kernel;
    with the padded input, dW comes from the same windows: dW[i, j] = xᵀ @ g_windows at
    offset (kh−1−i, kw−1−j). Returns (dW or None, dx).

    Zero padding wants dx on the input's own plane only (smaller pads, or a crop of g);
    the other modes want it on the whole padded plane, for their adjoint.
    """
    xp, groups, (out_channels, per_group, kh, kw) = array_module(g), geo.groups, weight.shape
    zeros = geo.padding_mode == "zeros"
    top, _, left, _ = geo.pads if zeros else (0, 0, 0, 0)
    plane = x_shape[2:] if zeros else geo.padded
    per_out, width = out_channels // groups, kh * kw * out_channels // groups
    flipped = weight.reshape(groups, per_out, per_group, kh, kw)[..., ::-1, ::-1]
    flipped = flipped.transpose(0, 3, 4, 1, 2).reshape(groups, width, per_group)
    (n, channels), pixels = x_shape[:2], plane[0] * plane[1]
    dx = xp.empty((n * pixels, channels), dtype=g.dtype)
    dw_flipped = xp.zeros((groups, width, per_group), dtype=g.dtype)  # (G, K', C/G)
    g_pads = _gradient_pads(geo, zeros)
    blocks, buffer = image_blocks(n, groups * width * pixels, g)
    for images in blocks:
        g_padded = to_channels_last(g[images], g_pads)  # (B, h + reach_h, w + reach_w, O)
        col = im2col_rows(g_padded, (kh, kw), (1, 1), geo.dilation, plane, groups, buffer)
        rows = slice(images.start * pixels, images.stop * pixels)
        rows_product(col, flipped, out=dx[rows])
        if padded is not None:
            inputs = padded[images, top : top + plane[0], left : left + plane[1]]
            inputs = inputs.reshape(rows.stop - rows.start, channels)  # (B*h*w, C)
            dw_flipped += col.transpose(0, 2, 1) @ grouped_rows(inputs, groups)
    dx = dx.reshape(n, *plane, channels).transpose(0, 3, 1, 2)
    if padded is None:
        return None, dx
    dw_flipped = dw_flipped.reshape(groups, kh, kw, per_out, per_group)[:, ::-1, ::-1]
    return dw_flipped.transpose(0, 3, 4, 1, 2).reshape(weight.shape), dx


def _gradient_pads(geo: ConvGeometry, zeros: bool) -> tuple[int, int, int, int]:
    """How far g is zero-padded (negative: cropped) for the correlation: d·(k−1) on each
    side, less the zero padding of the input that dx leaves out."""
    top, bottom, left, right = geo.pads if zeros else (0, 0, 0, 0)
    reach_h, reach_w = (d * (k - 1) for d, k in zip(geo.dilation, geo.kernel, strict=True))
    return (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)


def _weight_grad_from_columns(weight_shape, rows: Any, padded: Any, geo: ConvGeometry, col):
    """dW = gᵀ @ columns: those kept from forward (`col`), or else built again a block at
    a time (large columns, kh·kw times the input, are not kept)."""
    xp, groups = array_module(rows), geo.groups
    out_channels, per_group, kh, kw = weight_shape
    pixels, per_out = geo.out[0] * geo.out[1], out_channels // groups
    dw = xp.zeros((groups, kh * kw * per_group, per_out), dtype=rows.dtype)
    rebuild = col is None
    if rebuild:
        blocks, buffer = image_blocks(padded.shape[0], groups * dw.shape[1] * pixels, padded)
    else:
        blocks, buffer = [slice(0, padded.shape[0])], None
    for images in blocks:
        if rebuild:  # (on a GPU `buffer` is None: one block, a fresh array)
            col = im2col_rows(padded[images], *_windows(geo), geo.out, groups, buffer)
        block = rows[images.start * pixels : images.stop * pixels]  # (B*Ho*Wo, O)
        dw += col.transpose(0, 2, 1) @ grouped_rows(block, groups)  # (G, K/G, O/G)
    dw = dw.reshape(groups, kh, kw, per_group, per_out)
    return dw.transpose(0, 4, 3, 1, 2).reshape(out_channels, per_group, kh, kw)


def _input_grad_by_fold(weight: Any, rows: Any, x_shape: Shape, geo: ConvGeometry):
    """Any stride: per kernel offset (i, j), g @ W[:, :, i, j] added onto the padded input
    at that offset. Offset-major products make each add a run of Wo·C/G values."""
    xp, groups = array_module(rows), geo.groups
    out_channels, per_group, kh, kw = weight.shape
    (hp, wp), pixels = geo.padded, geo.out[0] * geo.out[1]
    taps = weight.reshape(groups, out_channels // groups, per_group, kh * kw)
    taps = taps.transpose(0, 3, 1, 2)  # (G, kh*kw, O/G, C/G)
    dx = xp.zeros((x_shape[0], hp, wp, groups, per_group), dtype=rows.dtype)
    for images in image_blocks(x_shape[0], groups * kh * kw * per_group * pixels, rows)[0]:
        block = grouped_rows(rows[images.start * pixels : images.stop * pixels], groups)
        d_col = (block[:, None] @ taps).reshape(
            groups, kh, kw, images.stop - images.start, *geo.out, per_group
        )  # (G, kh, kw, B, Ho, Wo, C/G)
        fold_into(
            dx[images].transpose(3, 4, 0, 1, 2),  # (G, C/G, B, Hp, Wp): a view, summed into
            lambda i, j, d_col=d_col: d_col[:, i, j].transpose(0, 4, 1, 2, 3),
            *_windows(geo),
            geo.out,
        )
    dx = dx.reshape(x_shape[0], hp, wp, groups * per_group).transpose(0, 3, 1, 2)
    return pad2d_backward(dx, x_shape[2:], geo.pads) if geo.padding_mode == "zeros" else dx


# -- channel-major columns, the whole batch at once ---------------------------------------------
def _forward_channel_major(x: Any, weight: Any, bias: Any, geo: ConvGeometry):
    """Few channels (a network's first layer, mostly): the columns are small, and kept
    from forward to backward."""
    padded = fpad(x, geo.pads, geo.padding_mode)  # (N, C, Hp, Wp)
    col = im2col_channel_major(padded, *_windows(geo), geo.out, geo.groups)
    saved = ("channel_major", col, x.shape, geo, is_channels_last(x))
    y = grouped_weight(weight, geo.groups) @ col  # (G, O/G, N*Ho*Wo)
    return to_batch_major(y, x.shape[0], geo.out, bias), saved


def _backward_channel_major(weight, g, has_bias, input_grad, col, x_shape, geo) -> ConvGrads:
    g_col = to_channel_major(g, geo.groups)  # (G, O/G, N*Ho*Wo)
    # (col @ gᵀ)ᵀ: the long N*Ho*Wo reduction runs as the GEMM's inner dimension of both.
    dw = (col @ g_col.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(weight.shape)
    db = g_col.sum(-1).reshape(-1) if has_bias else None
    if not input_grad:
        return ConvGrads(None, dw, db)
    if _correlation_pays(geo, weight.shape[0], x_shape[1]):
        return ConvGrads(_correlate(weight, g, x_shape, geo, None)[1], dw, db)
    return ConvGrads(_input_grad_by_fold(weight, channels_last_rows(g), x_shape, geo), dw, db)

"""Conv2d. Mirrors torch/nn/modules/conv.py.

How it runs (pytorch-semantics.md §6), one code path for NumPy and CuPy, two layouts:
- channels-last rows (the usual case): pad the input once into (N, Hp, Wp, C), copy its
  windows into rows (N·Ho·Wo, kh·kw·C/G) and multiply by the weights (kh·kw·C/G, O/G). The
  product is already the output, channels-last: the layer returns it as an (N, O, Ho, Wo)
  view of that memory, so the next convolution needs no transpose, and its input gradient
  comes back in the order the layer below saved. On the CPU the rows are built a block of
  images at a time (kernels.image_blocks) into one reused buffer that stays in cache for the
  GEMM; columns are never kept for backward unless they are that small.
- backward: db is a GEMV; dW is gᵀ @ rows, the rows built again a block at a time. The input
  gradient, with stride 1 and O <= C, correlates the zero-padded gradient with the flipped
  kernel, and dW then comes from the same gradient windows; otherwise each kernel offset's
  product g @ W[:, :, i, j] is added back onto the padded input (fold). The padding's adjoint
  comes last. `ctx.needs_input_grad` False (the network's first layer in training) skips dx.
- channel-major columns (one input channel a group: a first layer on grey images,
  depthwise): columns (G, C/G·kh·kw, N·Ho·Wo) copy runs of Wo instead of runs of kw; they
  are small, kept for dW, and the output is turned NCHW in the pass that adds the bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import ConfigDict, field_validator, model_validator

from netspec.errors import ArgError, raise_arg_errors, raise_shape_errors
from netspec.layers.base import Layer, kaiming_uniform_bound
from netspec.ops.backend import array_module
from netspec.ops.kernels import (
    Pads,
    fits_one_block,
    fold_into,
    fpad,
    fpad_backward,
    im2col_channel_major,
    im2col_rows,
    image_blocks,
    is_channels_last,
    pad2d_backward,
    sliding_stride,
    to_channels_last,
    to_layout,
)
from netspec.types import (
    Bool,
    Bounds,
    DeviceName,
    DTypeName,
    Int,
    IntPair,
    NonNegativeInt,
    NonNegativeIntPair,
    Shape,
    ShapeError,
    expect_rank,
    format_shape,
    pair,
)

PADDING_STRINGS = ("valid", "same")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Geometry(NamedTuple):
    """Sizes of one call, from the input's shape."""

    pads: Pads  # (top, bottom, left, right); negative entries crop (non-zero modes only)
    padded: tuple[int, int]  # (Hp, Wp): the plane the kernel slides over
    out: tuple[int, int]  # (Ho, Wo)
    stride: tuple[int, int]  # as given, but 1 along an axis with one output (sliding_stride)


class Conv2d(Layer):
    """2-D convolution (cross-correlation) over (N, C, H, W). Mirrors torch.nn.Conv2d.

    Differences: the input always has a batch dimension (netspec adds it); `kernel_size`,
    `stride`, `padding` and `dilation` take an int or a pair, not the longer or shorter
    tuples PyTorch's constructor lets through.
    """

    # The rules between arguments that a JSON Schema can state (the editor's copy of
    # `_check_arguments` and of the shape check's "negative padding is not supported").
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"padding": {"const": "same"}}, "required": ["padding"]},
                    "then": {"properties": {"stride": {"enum": [1, [1, 1]]}}},
                },
                {
                    "if": {
                        "properties": {"padding_mode": {"enum": list(PADDING_MODES[1:])}},
                        "required": ["padding_mode"],
                    },
                    "else": {"properties": {"padding": {"minimum": 0, "items": {"minimum": 0}}}},
                },
            ]
        }
    )

    type: Literal["Conv2d"] = "Conv2d"
    in_channels: Annotated[NonNegativeInt, Bounds(minimum=1)]
    """Number of channels in the input image."""
    out_channels: Annotated[NonNegativeInt, Bounds(minimum=1)]
    """Number of channels produced by the convolution."""
    kernel_size: Annotated[NonNegativeIntPair, Bounds(minimum=1)]
    """Size of the convolving kernel: an int or [height, width]."""
    stride: Annotated[IntPair, Bounds(minimum=1)] = 1
    """Stride of the convolution: an int or [height, width]."""
    padding: Literal["valid", "same"] | IntPair = 0
    """Padding added to all four sides: an int, [height, width], 'valid' or 'same'."""
    dilation: Annotated[IntPair, Bounds(minimum=1)] = 1
    """Spacing between kernel elements: an int or [height, width]."""
    groups: Annotated[Int, Bounds(minimum=1)] = 1
    """Number of blocked connections from input channels to output channels."""
    bias: Bool = True
    """If true, adds a learnable bias to the output."""
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    """How the padding is filled: 'zeros', 'reflect', 'replicate' or 'circular'."""
    device: DeviceName | None = None
    """Accepted for compatibility; the network's --device decides placement."""
    dtype: DTypeName | None = None
    """Accepted for compatibility; the network runs in one dtype."""

    # -- constructor-time rules, in the order of torch's _ConvNd.__init__ ---------------------
    @field_validator("padding", mode="before")
    @classmethod
    def _known_padding_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in PADDING_STRINGS:
            message = f"Invalid padding string {value!r}, should be one of {{'valid', 'same'}}"
            raise ArgError(None, message)
        return value

    @field_validator("padding_mode", mode="before")
    @classmethod
    def _known_padding_mode(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in PADDING_MODES:
            raise ArgError(
                None,
                "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, "
                f"but got padding_mode={value!r}",
            )
        return value

    @model_validator(mode="after")
    def _check_arguments(self) -> Conv2d:
        """PyTorch's constructor errors, all of them (PyTorch stops at the first)."""
        errors = []
        if self.groups <= 0:
            errors.append(ArgError("groups", "groups must be a positive integer"))
        else:
            if self.in_channels % self.groups != 0:
                errors.append(ArgError("in_channels", "in_channels must be divisible by groups"))
            if self.out_channels % self.groups != 0:
                errors.append(ArgError("out_channels", "out_channels must be divisible by groups"))
        if self.padding == "same" and pair(self.stride) != (1, 1):
            message = "padding='same' is not supported for strided convolutions"
            errors.append(ArgError("padding", message))
        raise_arg_errors(errors)
        return self

    # -- shapes: PyTorch's run-time checks, in its order ----------------------------------------
    def explicit_padding(self) -> Pads:
        """(top, bottom, left, right); 'same' puts the odd pixel at the bottom/right."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            (kh, kw), (dh, dw) = pair(self.kernel_size), pair(self.dilation)
            total_h, total_w = dh * (kh - 1), dw * (kw - 1)
            return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
        ph, pw = pair(self.padding)
        return (ph, ph, pw, pw)

    def output_shape(self, x: Shape) -> Shape:
        return (x[0], self.out_channels, *self.geometry(x).out)

    def geometry(self, x: Shape) -> Geometry:
        """Padding and sizes for an input of shape x, or PyTorch's errors as a ShapeError.

        PyTorch stops at its first error; here every argument error is found (in PyTorch's
        order), and inference goes on with sizes from the nearest legal arguments (guessed).
        """
        _check_rank(x)
        n, channels, height, width = x
        pads = top, bottom, left, right = self.explicit_padding()
        padded = (height + top + bottom, width + left + right)
        errors = []
        if self.padding_mode == "zeros":
            if min(pads) < 0:
                errors.append(_error("negative padding is not supported", "padding"))
            # F.conv2d pads only the odd 'same' pixel itself: its messages show that size.
            seen = (n, channels, height + bottom - top, width + right - left)
        else:
            try:
                self._check_mode_padding(x, pads)  # F.pad runs before the convolution
            except ShapeError as error:
                errors.append(error)
            seen = (n, channels, *padded)
        if min(pair(self.stride)) <= 0:
            errors.append(_error("non-positive stride is not supported", "stride"))
        if min(pair(self.dilation)) < 0:
            errors.append(_error("dilation should be greater than zero", "dilation"))
        if self.out_channels < self.groups:
            errors.append(
                _error(
                    f"Given groups={self.groups}, expected weight to be at least {self.groups} "
                    f"at dimension 0, but got weight of size {_dims(self.weight_shape())} "
                    "instead",
                    "out_channels",
                )
            )
        if errors:
            if channels != self.in_channels:
                errors.append(self._channel_mismatch(seen, padded))
            raise_shape_errors(errors, self._guessed_output(x, pads))
        if channels != self.in_channels:
            raise self._channel_mismatch(seen, padded)
        out = self._output_size(padded)
        return Geometry(pads, padded, out, sliding_stride(pair(self.stride), out))

    def _guessed_output(self, x: Shape, pads: Pads) -> Shape | None:
        """The output shape with the refused arguments replaced by the nearest legal ones."""
        top, bottom, left, right = (max(p, 0) for p in pads)
        nearest = self.model_copy(
            update={
                "stride": tuple(max(s, 1) for s in pair(self.stride)),
                "dilation": tuple(max(d, 1) for d in pair(self.dilation)),
            }
        )
        padded = (x[2] + top + bottom, x[3] + left + right)
        try:
            return (x[0], self.out_channels, *nearest._output_size(padded))
        except ShapeError:
            return None

    def _check_mode_padding(self, x: Shape, pads: Pads) -> None:
        """F.pad's checks for reflect, replicate and circular padding."""
        _, channels, height, width = x
        top, bottom, left, right = pads
        if self.padding_mode == "circular":  # crops the negative sides, then wraps at most once
            inner_h = height - max(-top, 0) - max(-bottom, 0)
            inner_w = width - max(-left, 0) - max(-right, 0)
            if max(top, bottom) > inner_h or max(left, right) > inner_w:
                raise _error("Padding value causes wrapping around more than once.", "padding")
            return
        if 0 in (channels, height, width):
            raise _error(
                "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other "
                f"non-zero dimensions for input, but got: {_dims(x)}",
                None,
            )
        if self.padding_mode != "reflect":
            return
        for argument, dim, size, sides in (
            (4, 3, width, (left, right)),
            (6, 2, height, (top, bottom)),
        ):
            if max(sides) >= size:
                raise _error(
                    f"Argument #{argument}: Padding size should be less than the corresponding "
                    f"input dimension, but got: padding {sides} at dimension {dim} of input "
                    f"{_dims(x)}",
                    "padding",
                )

    def _output_size(self, padded: tuple[int, int]) -> tuple[int, int]:
        (kh, kw), (sh, sw), dilation = (
            pair(self.kernel_size),
            pair(self.stride),
            pair(self.dilation),
        )
        span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
        if padded[0] < span_h or padded[1] < span_w:
            raise _error(
                f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). "
                f"Kernel size: ({span_h} x {span_w}). "
                "Kernel size can't be greater than actual input size",
                "kernel_size",
            )
        if min(dilation) == 0:
            raise _error(
                f"dilation should be greater than zero, but got {list(dilation)}", "dilation"
            )
        if kh == 0 or kw == 0:
            message = "kernel size should be greater than zero, but got "
            raise _error(f"{message}kernel_height: {kh} kernel_width: {kw}", "kernel_size")
        return ((padded[0] - span_h) // sh + 1, (padded[1] - span_w) // sw + 1)

    def _channel_mismatch(self, seen: Shape, padded: tuple[int, int]) -> ShapeError:
        try:  # what the declared arguments give, so that inference can go on
            recovered: Shape | None = (seen[0], self.out_channels, *self._output_size(padded))
        except ShapeError:
            recovered = None
        return ShapeError(
            f"Given groups={self.groups}, weight of size {_dims(self.weight_shape())}, "
            f"expected input{_dims(seen)} to have {self.in_channels} channels, but got "
            f"{seen[1]} channels instead",
            field="in_channels",
            hint=f"set in_channels: {seen[1]}",
            recovered=recovered,
            code="channels",
        )

    # -- parameters --------------------------------------------------------------------------
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *pair(self.kernel_size))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"weight": self.weight_shape()}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def macs(self, inputs: Sequence[tuple[int, ...]], output: tuple[int, ...]) -> int:
        n, out_channels, out_h, out_w = output
        _, per_group, kh, kw = self.weight_shape()
        return n * out_channels * out_h * out_w * per_group * kh * kw

    def init(self, rng: Any) -> dict[str, Any]:
        shape = self.weight_shape()
        bound = kaiming_uniform_bound(shape[1] * shape[2] * shape[3])  # fan_in
        values = {"weight": rng.uniform(-bound, bound, shape)}
        if self.bias:
            values["bias"] = rng.uniform(-bound, bound, (self.out_channels,))
        return values

    # -- runtime -----------------------------------------------------------------------------
    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        geo = self.geometry(x.shape)
        if self._uses_rows(x.shape[1]):
            return self._forward_rows(p, x, ctx, geo)
        return self._forward_channel_major(p, x, ctx, geo)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, O, Ho, Wo)
        layout, saved, x_shape, geo, channels_last = ctx.saved
        input_grad = getattr(ctx, "needs_input_grad", True)
        if layout == "rows":
            dx = self._backward_rows(p, g, grads, input_grad, saved, x_shape, geo)
        else:
            dx = self._backward_channel_major(p, g, grads, input_grad, saved, x_shape, geo)
        if dx is None:
            return None
        if self.padding_mode != "zeros":  # dx is on the padded plane: the padding's adjoint
            dx = fpad_backward(dx, x_shape[2:], geo.pads, self.padding_mode)
        return to_layout(dx, channels_last)  # what the layer below saved: no mixed layouts

    def _uses_rows(self, channels: int) -> bool:
        """Channels-last rows, unless a group has a single input channel.

        Rows give the GEMM its faster (N·Ho·Wo, O) orientation and hand the next layer a
        channels-last output, so the next convolution's input and gradient need no transpose
        (VGG's 3-channel first layer: 5% off the step). With one channel a group, NCHW already
        is channels-last and rows would copy runs of kw values where channel-major columns
        copy runs of Wo (LeNet's first layer: a third off the step).
        """
        return channels // self.groups > 1

    def _windows(self, geo: Geometry) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return pair(self.kernel_size), geo.stride, pair(self.dilation)

    # -- channels-last rows, a block of images at a time --------------------------------------
    def _forward_rows(self, p: Any, x: Any, ctx: Any, geo: Geometry) -> Any:
        if self.padding_mode == "zeros":
            padded = to_channels_last(x, geo.pads)  # (N, Hp, Wp, C)
        else:
            padded = to_channels_last(fpad(x, geo.pads, self.padding_mode))
        weight = _rows_weight(p.weight, self.groups)  # (G, K/G, O/G)
        n, pixels = x.shape[0], geo.out[0] * geo.out[1]
        y = array_module(x).empty((n * pixels, self.out_channels), dtype=x.dtype)
        values = self.groups * weight.shape[1] * pixels  # of columns, per image
        blocks, buffer = image_blocks(n, values, x)
        keep = fits_one_block(n * values, x)  # small columns serve backward too
        col = None
        for images in blocks:
            col = im2col_rows(
                padded[images], *self._windows(geo), geo.out, self.groups, None if keep else buffer
            )
            block = y[images.start * pixels : images.stop * pixels]  # (B*Ho*Wo, O)
            _rows_product(col, weight, out=block)
            if self.bias:
                block += p.bias
        ctx.save("rows", (padded, col if keep else None), x.shape, geo, is_channels_last(x))
        return y.reshape(n, *geo.out, self.out_channels).transpose(0, 3, 1, 2)

    def _backward_rows(self, p, g, grads, input_grad, saved, x_shape, geo):
        (padded, col), rows = saved, _channels_last_rows(g)  # rows: (N*Ho*Wo, O)
        if self.bias:  # a GEMV: .sum(0) over the rows takes 5x as long
            grads.bias += array_module(g).ones(rows.shape[0], dtype=g.dtype) @ rows
        if input_grad and self._correlation_pays(x_shape[1]):
            dw, dx = self._correlate(p.weight, g, x_shape, geo, padded)
        else:
            dw = self._weight_grad_from_columns(rows, padded, geo, col)
            dx = self._input_grad_by_fold(p.weight, rows, x_shape, geo) if input_grad else None
        grads.weight += dw
        return dx

    def _correlation_pays(self, channels: int) -> bool:
        """Stride 1, dx by correlation rather than the fold, when O <= C: correlation copies
        kh·kw·O gradient values per input pixel into windows; the fold's products write
        kh·kw·C values per output pixel and add them back in kh·kw passes. (Measured: LeNet's
        6->16 layer 3x faster by the fold, VGG's equal-width layers ~10% faster correlated.)"""
        return pair(self.stride) == (1, 1) and self.out_channels <= channels

    def _correlate(self, weight: Any, g: Any, x_shape: Shape, geo: Geometry, padded: Any):
        """Stride 1: dx is g, zero-padded by d·(k−1), correlated with the flipped kernel;
        with the padded input, dW comes from the same windows: dW[i, j] = xᵀ @ g_windows at
        offset (kh−1−i, kw−1−j). Returns (dW or None, dx).

        Zero padding wants dx on the input's own plane only (smaller pads, or a crop of g);
        the other modes want it on the whole padded plane, for their adjoint.
        """
        xp, groups, (out_channels, per_group, kh, kw) = array_module(g), self.groups, weight.shape
        _, _, (dh, dw) = self._windows(geo)
        zeros = self.padding_mode == "zeros"
        top, bottom, left, right = geo.pads if zeros else (0, 0, 0, 0)
        plane = x_shape[2:] if zeros else geo.padded
        reach_h, reach_w = dh * (kh - 1), dw * (kw - 1)
        g_pads = (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)
        per_out, width = out_channels // groups, kh * kw * out_channels // groups
        flipped = weight.reshape(groups, per_out, per_group, kh, kw)[..., ::-1, ::-1]
        flipped = flipped.transpose(0, 3, 4, 1, 2).reshape(groups, width, per_group)
        (n, channels), pixels = x_shape[:2], plane[0] * plane[1]
        dx = xp.empty((n * pixels, channels), dtype=g.dtype)
        dw_flipped = xp.zeros((groups, width, per_group), dtype=g.dtype)  # (G, K', C/G)
        blocks, buffer = image_blocks(n, groups * width * pixels, g)
        for images in blocks:
            g_padded = to_channels_last(g[images], g_pads)  # (B, h + reach_h, w + reach_w, O)
            col = im2col_rows(g_padded, (kh, kw), (1, 1), (dh, dw), plane, groups, buffer)
            rows = slice(images.start * pixels, images.stop * pixels)
            _rows_product(col, flipped, out=dx[rows])
            if padded is not None:
                inputs = padded[images, top : top + plane[0], left : left + plane[1]]
                inputs = inputs.reshape(rows.stop - rows.start, channels)  # (B*h*w, C)
                dw_flipped += col.transpose(0, 2, 1) @ _grouped_rows(inputs, groups)
        dx = dx.reshape(n, *plane, channels).transpose(0, 3, 1, 2)
        if padded is None:
            return None, dx
        dw_flipped = dw_flipped.reshape(groups, kh, kw, per_out, per_group)[:, ::-1, ::-1]
        return dw_flipped.transpose(0, 3, 4, 1, 2).reshape(weight.shape), dx

    def _weight_grad_from_columns(self, rows: Any, padded: Any, geo: Geometry, col: Any):
        """dW = gᵀ @ columns: those kept from forward (`col`), or else built again a block at
        a time (large columns, kh·kw times the input, are not kept)."""
        xp, groups = array_module(rows), self.groups
        out_channels, per_group, kh, kw = self.weight_shape()
        pixels, per_out = geo.out[0] * geo.out[1], out_channels // groups
        dw = xp.zeros((groups, kh * kw * per_group, per_out), dtype=rows.dtype)
        rebuild = col is None
        if rebuild:
            blocks, buffer = image_blocks(padded.shape[0], groups * dw.shape[1] * pixels, padded)
        else:
            blocks, buffer = [slice(0, padded.shape[0])], None
        for images in blocks:
            if rebuild:  # (on a GPU `buffer` is None: one block, a fresh array)
                col = im2col_rows(padded[images], *self._windows(geo), geo.out, groups, buffer)
            block = rows[images.start * pixels : images.stop * pixels]  # (B*Ho*Wo, O)
            dw += col.transpose(0, 2, 1) @ _grouped_rows(block, groups)  # (G, K/G, O/G)
        dw = dw.reshape(groups, kh, kw, per_group, per_out)
        return dw.transpose(0, 4, 3, 1, 2).reshape(out_channels, per_group, kh, kw)

    def _input_grad_by_fold(self, weight: Any, rows: Any, x_shape: Shape, geo: Geometry):
        """Any stride: per kernel offset (i, j), g @ W[:, :, i, j] added onto the padded input
        at that offset. Offset-major products make each add a run of Wo·C/G values."""
        xp, groups = array_module(rows), self.groups
        out_channels, per_group, kh, kw = weight.shape
        kernel, stride, dilation = self._windows(geo)
        (hp, wp), pixels = geo.padded, geo.out[0] * geo.out[1]
        taps = weight.reshape(groups, out_channels // groups, per_group, kh * kw)
        taps = taps.transpose(0, 3, 1, 2)  # (G, kh*kw, O/G, C/G)
        dx = xp.zeros((x_shape[0], hp, wp, groups, per_group), dtype=rows.dtype)
        for images in image_blocks(x_shape[0], groups * kh * kw * per_group * pixels, rows)[0]:
            block = _grouped_rows(rows[images.start * pixels : images.stop * pixels], groups)
            d_col = (block[:, None] @ taps).reshape(
                groups, kh, kw, images.stop - images.start, *geo.out, per_group
            )  # (G, kh, kw, B, Ho, Wo, C/G)
            fold_into(
                dx[images].transpose(3, 4, 0, 1, 2),  # (G, C/G, B, Hp, Wp): a view, summed into
                lambda i, j, d_col=d_col: d_col[:, i, j].transpose(0, 4, 1, 2, 3),
                kernel,
                stride,
                dilation,
                geo.out,
            )
        dx = dx.reshape(x_shape[0], hp, wp, groups * per_group).transpose(0, 3, 1, 2)
        return pad2d_backward(dx, x_shape[2:], geo.pads) if self.padding_mode == "zeros" else dx

    # -- channel-major columns, the whole batch at once ---------------------------------------
    def _forward_channel_major(self, p: Any, x: Any, ctx: Any, geo: Geometry) -> Any:
        """Few channels (a network's first layer, mostly): the columns are small, and kept
        from forward to backward."""
        padded = fpad(x, geo.pads, self.padding_mode)  # (N, C, Hp, Wp)
        col = im2col_channel_major(padded, *self._windows(geo), geo.out, self.groups)
        ctx.save("channel_major", col, x.shape, geo, is_channels_last(x))
        y = _grouped(p.weight, self.groups) @ col  # (G, O/G, N*Ho*Wo)
        return _to_batch_major(y, x.shape[0], geo.out, p.bias if self.bias else None)

    def _backward_channel_major(self, p, g, grads, input_grad, col, x_shape, geo):
        g_col = _to_channel_major(g, self.groups)  # (G, O/G, N*Ho*Wo)
        # (col @ gᵀ)ᵀ: the long N*Ho*Wo reduction runs as the GEMM's inner dimension of both.
        grads.weight += (col @ g_col.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(p.weight.shape)
        if self.bias:
            grads.bias += g_col.sum(-1).reshape(-1)
        if not input_grad:
            return None
        if self._correlation_pays(x_shape[1]):
            return self._correlate(p.weight, g, x_shape, geo, None)[1]
        return self._input_grad_by_fold(p.weight, _channels_last_rows(g), x_shape, geo)


# -- helpers -----------------------------------------------------------------------------------
def _error(message: str, field: str | None) -> ShapeError:
    return ShapeError(message, field=field, code=(field or "padding").replace("_", "-"))


def _check_rank(x: Shape) -> None:
    if len(x) == 3:
        raise ShapeError(
            f"Conv2d expects (N, C, H, W), received {format_shape(x)}: netspec always adds "
            "the batch dimension, so a sample must be (C, H, W)",
            hint="write a single-channel image's shape as [1, H, W]",
            code="rank",
        )
    expect_rank("Conv2d", x, (4,), "(N, C, H, W)")


def _dims(shape: Shape) -> str:
    """A shape as PyTorch prints sizes in messages: [1, 3, 5, 5]."""
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def _grouped(weight: Any, groups: int) -> Any:
    out_channels, per_group, kh, kw = weight.shape
    return weight.reshape(groups, out_channels // groups, per_group * kh * kw)  # (G, O/G, K)


def _rows_weight(weight: Any, groups: int) -> Any:
    """(O, C/G, kh, kw) -> (G, kh*kw*C/G, O/G), the row order of im2col_rows."""
    out_channels, per_group, kh, kw = weight.shape
    grouped = weight.reshape(groups, out_channels // groups, per_group, kh, kw)
    return grouped.transpose(0, 3, 4, 2, 1).reshape(
        groups, kh * kw * per_group, out_channels // groups
    )


def _channels_last_rows(g: Any) -> Any:
    """(N, O, h, w) -> (N*h*w, O): a view when g is channels-last already."""
    n, channels, height, width = g.shape
    return to_layout(g, True).transpose(0, 2, 3, 1).reshape(n * height * width, channels)


def _grouped_rows(rows: Any, groups: int) -> Any:
    """(L, O) -> (G, L, O/G), a view."""
    length, channels = rows.shape
    return rows.reshape(length, groups, channels // groups).transpose(1, 0, 2)


def _rows_product(col: Any, weight: Any, out: Any) -> None:
    """out (L, O) = (G, L, K/G) @ (G, K/G, O/G), each row holding every group's outputs."""
    if col.shape[0] == 1:
        array_module(col).matmul(col[0], weight[0], out=out)
    else:
        out.reshape(out.shape[0], col.shape[0], weight.shape[2])[...] = (col @ weight).transpose(
            1, 0, 2
        )


def _to_batch_major(y: Any, n: int, size: tuple[int, int], bias: Any) -> Any:
    """(G, O/G, N*h*w) -> (N, O, h, w), adding the bias in the same pass."""
    xp, channels = array_module(y), y.shape[0] * y.shape[1]
    view = y.reshape(channels, n, *size).transpose(1, 0, 2, 3)  # (N, O, h, w), strided
    if bias is None:
        return xp.ascontiguousarray(view)
    out = xp.empty(view.shape, dtype=y.dtype)
    return xp.add(view, bias.reshape(1, channels, 1, 1), out=out)


def _to_channel_major(g: Any, groups: int) -> Any:
    """(N, O, h, w) -> (G, O/G, N*h*w), one copy."""
    n, channels, height, width = g.shape
    g_cm = array_module(g).ascontiguousarray(
        g.reshape(n, channels, height * width).transpose(1, 0, 2)
    )
    return g_cm.reshape(groups, channels // groups, n * height * width)  # from (O, N, h*w)

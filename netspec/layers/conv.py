"""Conv2d. Mirrors torch/nn/modules/conv.py.

How it runs (pytorch-semantics.md §6), one code path for NumPy and CuPy:
- forward: pad once, take a strided window view, copy it once into channel-major columns
  (G, C/G·kh·kw, N·Ho·Wo), multiply by the weights (G, O/G, C/G·kh·kw) in one batched
  matmul, and turn the channel-major result NCHW in the pass that adds the bias. A 1×1
  kernel needs no special case: its columns are one transpose of the input.
- backward: dW is a batched matmul of the saved columns with the gradient. The input
  gradient takes the cheaper of two routes: with stride 1 (and, on the CPU, few output
  channels) it correlates the zero-padded gradient with the flipped kernel, forward's im2col
  and matmul again; otherwise it multiplies by the transposed weights and folds the columns
  back with kh·kw slice-adds. The padding's adjoint comes last. Backward keeps the columns
  and a few sizes, never the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import field_validator, model_validator

from netspec.backend import array_module
from netspec.kernels import Pads, fold, pad2d, pad2d_backward, window_view
from netspec.layers.base import (
    ArgError,
    Bool,
    DeviceName,
    DTypeName,
    Int,
    IntPair,
    Layer,
    NonNegativeInt,
    NonNegativeIntPair,
    Shape,
    ShapeError,
    expect_rank,
    format_shape,
    kaiming_uniform_bound,
    pair,
)

PADDING_STRINGS = ("valid", "same")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Geometry(NamedTuple):
    """Sizes of one call, from the input's shape."""

    pads: Pads  # (top, bottom, left, right); negative entries crop (non-zero modes only)
    padded: tuple[int, int]  # (Hp, Wp): the plane the kernel slides over
    out: tuple[int, int]  # (Ho, Wo)


class Conv2d(Layer):
    """2-D convolution (cross-correlation) over (N, C, H, W). Mirrors torch.nn.Conv2d.

    Differences: the input always has a batch dimension (netspec adds it); `kernel_size`,
    `stride`, `padding` and `dilation` take an int or a pair, not the longer or shorter
    tuples PyTorch's constructor lets through.
    """

    type: Literal["Conv2d"] = "Conv2d"
    in_channels: NonNegativeInt
    """Number of channels in the input image."""
    out_channels: NonNegativeInt
    """Number of channels produced by the convolution."""
    kernel_size: NonNegativeIntPair
    """Size of the convolving kernel: an int or [height, width]."""
    stride: IntPair = 1
    """Stride of the convolution: an int or [height, width]."""
    padding: Literal["valid", "same"] | IntPair = 0
    """Padding added to all four sides: an int, [height, width], 'valid' or 'same'."""
    dilation: IntPair = 1
    """Spacing between kernel elements: an int or [height, width]."""
    groups: Int = 1
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
        if self.groups <= 0:
            raise ArgError("groups", "groups must be a positive integer")
        if self.in_channels % self.groups != 0:
            raise ArgError("in_channels", "in_channels must be divisible by groups")
        if self.out_channels % self.groups != 0:
            raise ArgError("out_channels", "out_channels must be divisible by groups")
        if self.padding == "same" and pair(self.stride) != (1, 1):
            raise ArgError("padding", "padding='same' is not supported for strided convolutions")
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
        """Padding and sizes for an input of shape x, or PyTorch's error as a ShapeError."""
        _check_rank(x)
        n, channels, height, width = x
        pads = top, bottom, left, right = self.explicit_padding()
        padded = (height + top + bottom, width + left + right)
        if self.padding_mode == "zeros":
            if min(pads) < 0:
                raise _error("negative padding is not supported", "padding")
            # F.conv2d pads only the odd 'same' pixel itself: its messages show that size.
            seen = (n, channels, height + bottom - top, width + right - left)
        else:
            self._check_mode_padding(x, pads)  # F.pad runs before the convolution
            seen = (n, channels, *padded)
        if min(pair(self.stride)) <= 0:
            raise _error("non-positive stride is not supported", "stride")
        if min(pair(self.dilation)) < 0:
            raise _error("dilation should be greater than zero", "dilation")
        if self.out_channels < self.groups:
            raise _error(
                f"Given groups={self.groups}, expected weight to be at least {self.groups} at "
                f"dimension 0, but got weight of size {_dims(self.weight_shape())} instead",
                "out_channels",
            )
        if channels != self.in_channels:
            raise self._channel_mismatch(seen, padded)
        return Geometry(pads, padded, self._output_size(padded))

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
        padded = _pad_input(x, geo.pads, self.padding_mode)  # (N, C, Hp, Wp)
        stride, dilation = pair(self.stride), pair(self.dilation)
        col = _im2col(padded, pair(self.kernel_size), stride, dilation, geo.out, self.groups)
        ctx.save(col, x.shape, geo)
        y = _grouped(p.weight, self.groups) @ col  # (G, O/G, N*Ho*Wo)
        return _to_batch_major(y, x.shape[0], geo.out, p.bias if self.bias else None)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, O, Ho, Wo)
        col, x_shape, geo = ctx.saved
        g_col = _to_channel_major(g, self.groups)  # (G, O/G, N*Ho*Wo)
        # (col @ gᵀ)ᵀ: the long N*Ho*Wo reduction runs as the GEMM's inner dimension of both.
        grads.weight += (col @ g_col.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(p.weight.shape)
        if self.bias:
            grads.bias += g_col.sum(-1).reshape(-1)
        if self._correlation_is_cheaper(array_module(g)):
            dx = self._input_grad_by_correlation(p.weight, g, x_shape, geo)
        else:
            dx = self._input_grad_by_fold(p.weight, g_col, x_shape, geo)
        if self.padding_mode == "zeros":
            return dx
        return _pad_input_backward(dx, x_shape[2:], geo.pads, self.padding_mode)

    def _correlation_is_cheaper(self, xp: Any) -> bool:
        """Correlation needs stride 1. On the CPU it copies O·kh·kw rows of gradient windows
        where the fold writes C·kh·kw rows and re-reads them in kh·kw read-modify-write passes
        (about 2·O against 3·C); on a GPU the fold's 2·kh·kw small kernels always cost more."""
        if pair(self.stride) != (1, 1):
            return False
        return xp is not np or 2 * self.out_channels < 3 * self.in_channels

    def _input_grad_by_correlation(self, weight: Any, g: Any, x_shape: Shape, geo: Geometry):
        """Stride 1: dx = g, zero-padded by d·(k−1), correlated with the flipped kernel.

        Zero padding wants dx on the input's own plane only (smaller pads, or a crop of g);
        the other modes want it on the whole padded plane, for their adjoint.
        """
        (kh, kw), (dh, dw) = pair(self.kernel_size), pair(self.dilation)
        zeros = self.padding_mode == "zeros"
        top, bottom, left, right = geo.pads if zeros else (0, 0, 0, 0)
        plane = x_shape[2:] if zeros else geo.padded
        reach_h, reach_w = dh * (kh - 1), dw * (kw - 1)
        g_pads = (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)
        g_padded = _pad_input(g, g_pads, "crop-zeros")  # (N, O, h + reach_h, w + reach_w)
        g_windows = _im2col(g_padded, (kh, kw), (1, 1), (dh, dw), plane, self.groups)
        groups, per_group = self.groups, weight.shape[1]
        flipped = weight.reshape(groups, weight.shape[0] // groups, per_group, kh, kw)[
            ..., ::-1, ::-1
        ]
        flipped = flipped.transpose(0, 2, 1, 3, 4).reshape(groups, per_group, g_windows.shape[1])
        dx = flipped @ g_windows  # (G, C/G, N*h*w)
        return _to_batch_major(dx, x_shape[0], plane, None)

    def _input_grad_by_fold(self, weight: Any, g_col: Any, x_shape: Shape, geo: Geometry):
        """Any stride: columns from the transposed weights, summed back by kh·kw slice-adds."""
        xp, kernel, groups = array_module(g_col), pair(self.kernel_size), self.groups
        n, per_group = x_shape[0], weight.shape[1]
        d_col = _grouped(weight, groups).transpose(0, 2, 1) @ g_col  # (G, C/G*kh*kw, N*Ho*Wo)
        d_col = d_col.reshape(groups, per_group, *kernel, n, *geo.out)
        dx = fold(
            lambda i, j: d_col[:, :, i, j],  # (G, C/G, N, Ho, Wo)
            (groups, per_group, n, *geo.padded),
            kernel,
            pair(self.stride),
            pair(self.dilation),
            geo.out,
            xp,
            d_col.dtype,
        )
        if self.padding_mode == "zeros":
            dx = pad2d_backward(dx, x_shape[2:], geo.pads)
        dx = dx.reshape(groups * per_group, n, *dx.shape[-2:])  # (C, N, h, w)
        return xp.ascontiguousarray(dx.transpose(1, 0, 2, 3))  # (N, C, h, w)


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


def _im2col(padded, kernel, stride, dilation, out, groups) -> Any:
    """Windows of padded (N, C, Hp, Wp) as channel-major columns (G, C/G*kh*kw, N*Ho*Wo).

    The one copy of the data; output columns stay innermost, so reads run along rows.
    """
    n, channels = padded.shape[:2]
    windows = window_view(padded, kernel, stride, dilation, out)  # (N, C, Ho, Wo, kh, kw)
    windows = windows.reshape(n, groups, channels // groups, *out, *kernel)
    col = array_module(padded).ascontiguousarray(windows.transpose(1, 2, 5, 6, 0, 3, 4))
    rows = channels // groups * kernel[0] * kernel[1]
    return col.reshape(groups, rows, n * out[0] * out[1])  # from (G, C/G, kh, kw, N, Ho, Wo)


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


# -- padding as F.pad does it: negative pads crop ------------------------------------------------
def _split(pads: Pads) -> tuple[Pads, Pads]:
    """Pads -> (growth, cuts)."""
    return tuple(max(p, 0) for p in pads), tuple(max(-p, 0) for p in pads)  # type: ignore[return-value]


def _crop(x: Any, cuts: Pads) -> Any:
    top, bottom, left, right = cuts
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


def _uncrop(g: Any, cuts: Pads, size: tuple[int, int]) -> Any:
    """Adjoint of _crop: g put back into zeros of the uncropped size."""
    if not any(cuts):
        return g
    full = array_module(g).zeros((*g.shape[:-2], *size), dtype=g.dtype)
    full[..., cuts[0] : cuts[0] + g.shape[-2], cuts[2] : cuts[2] + g.shape[-1]] = g
    return full


def _pad_input(x: Any, pads: Pads, mode: str) -> Any:
    """Reflect/replicate pad, then crop; circular and "crop-zeros" crop, then pad."""
    if mode == "zeros":
        return pad2d(x, pads)
    grow, cuts = _split(pads)
    if mode in ("circular", "crop-zeros"):
        return pad2d(_crop(x, cuts), grow, "circular" if mode == "circular" else "zeros")
    return _crop(pad2d(x, grow, mode), cuts)


def _pad_input_backward(g: Any, size: tuple[int, int], pads: Pads, mode: str) -> Any:
    """Adjoint of _pad_input for a non-zero mode: g (N, C, Hp, Wp) -> (N, C, H, W)."""
    grow, cuts = _split(pads)
    height, width = size
    if mode == "circular":
        inner = (height - cuts[0] - cuts[1], width - cuts[2] - cuts[3])
        return _uncrop(pad2d_backward(g, inner, grow, mode), cuts, size)
    grown = (height + grow[0] + grow[1], width + grow[2] + grow[3])
    return pad2d_backward(_uncrop(g, cuts, grown), size, grow, mode)

"""MaxPool2d, AvgPool2d, AdaptiveMaxPool2d, AdaptiveAvgPool2d. Mirrors torch/nn/modules/pooling.py.

PyTorch's pooling constructors accept any values; every check runs at forward time, so here
they all live in `output_shape` (as ShapeError, in PyTorch's order and words). The window
arithmetic (separable max and sums, their adjoints) lives in netspec.ops.windows, the
adaptive bins in netspec.ops.adaptive.

Gradients come back in the memory order of the input (NCHW or channels-last): the layer
below combines them with arrays it saved in that order, and mixed orders cost a transpose.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, WithJsonSchema

from netspec.errors import raise_shape_errors
from netspec.layers.base import Layer
from netspec.lazy import lazy_import
from netspec.types import (
    NOT_ZERO,
    Bool,
    Bounds,
    Int,
    IntPair,
    Shape,
    ShapeError,
    WindowAxis,
    format_shape,
    pair,
    pooled_size,
    sliding_stride,
    torch_sizes,
)

adaptive = lazy_import("netspec.ops.adaptive")
layout = lazy_import("netspec.ops.layout")
windows = lazy_import("netspec.ops.windows")

# `int | (int | None, int | None) | None`, as PyTorch's `_size_2_opt_t`. The schema leaves
# out what output_shape refuses: null itself (no len()) and negative sizes.
AdaptiveSize = Annotated[
    Int
    | Annotated[
        tuple[Int | None, Int | None],
        BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v),
    ]
    | None,
    WithJsonSchema(
        {
            "type": ["integer", "array"],
            "minimum": 0,
            "items": {"type": ["integer", "null"], "minimum": 0},
            "minItems": 2,
            "maxItems": 2,
        }
    ),
]


Pair = tuple[int, int]


def _trunc_div(a: int, b: int) -> int:
    """C++ integer division (rounds toward zero), as in PyTorch's size checks."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _require_nchw(layer: str, x: Shape) -> None:
    if len(x) != 4:
        hint = None
        if len(x) == 3:
            hint = "netspec inputs always carry the batch dimension: declare the input as (C, H, W)"
        raise ShapeError(
            f"{layer} expects an (N, C, H, W) input, received {format_shape(x)}",
            hint=hint,
            code="rank",
        )


def _window_axes(layer: Layer, x: Shape, dilation: Any = 1) -> tuple[WindowAxis, WindowAxis]:
    """The height and width windows for input x, after PyTorch's checks in PyTorch's order."""
    _require_nchw(layer.type_name, x)
    kernel = pair(layer.kernel_size)  # type: ignore[attr-defined]
    stride_field = "kernel_size" if layer.stride is None else "stride"  # type: ignore[attr-defined]
    stride = kernel if layer.stride is None else pair(layer.stride)  # type: ignore[attr-defined]
    pad, dil = pair(layer.padding), pair(dilation)  # type: ignore[attr-defined]
    _, channels, height, width = x
    outs = [
        pooled_size(n, k, p, s, d, layer.ceil_mode) if s > 0 and d > 0 else 0  # type: ignore[attr-defined]
        for n, k, s, d, p in zip((height, width), kernel, stride, dil, pad, strict=True)
    ]
    # so that inference goes on past an argument error where the sizes still make sense
    recovered = (x[0], channels, *outs) if min(*outs, *kernel) > 0 and 0 not in x[1:] else None
    raise_shape_errors(_window_arg_errors(x, kernel, stride, pad, dil, stride_field), recovered)
    if min(outs) < 1:
        raise ShapeError(
            f"Given input size: ({channels}x{height}x{width}). Calculated output size: "
            f"({channels}x{outs[0]}x{outs[1]}). Output size is too small",
            field="kernel_size",
            hint="the kernel is larger than the padded input: use a smaller kernel_size",
            code="size",
        )
    stride = sliding_stride(stride, outs)
    axis_h, axis_w = (
        WindowAxis(n, k, s, d, p, o)
        for n, k, s, d, p, o in zip((height, width), kernel, stride, dil, pad, outs, strict=True)
    )
    return axis_h, axis_w


def _window_arg_errors(
    x: Shape, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair, stride_field: str
) -> list[ShapeError]:
    """PyTorch's checks before the output size, in its order (pooling_output_shape per axis,
    then pool2d_shape_check). PyTorch stops at the first; here each argument gets its first
    error, so that all of them are reported at once."""
    errors: dict[str | None, ShapeError] = {}

    def fail(message: str, field: str | None, hint: str | None = None, code="value") -> None:
        errors.setdefault(field, ShapeError(message, field=field, hint=hint, code=code))

    for k, p, s, d in zip(kernel, pad, stride, dilation, strict=True):
        if s == 0:
            fail("stride should not be zero", stride_field)
        if p < 0:
            fail(f"pad must be non-negative, but got pad: {p}", "padding")
        if p > _trunc_div((k - 1) * d + 1, 2):
            fail(
                f"pad should be at most half of effective kernel size, but got pad={p}, "
                f"kernel_size={k} and dilation={d}",
                "padding",
                hint=f"use padding <= {max(0, k // 2)}",
            )
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = kernel, stride, dilation, pad
    if min(kh, kw) <= 0:
        fail(f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}", "kernel_size")
    if min(sh, sw) <= 0:
        fail(f"stride should be greater than zero, but got dH: {sh} dW: {sw}", stride_field)
    if min(dh, dw) <= 0:
        fail(
            f"dilation should be greater than zero, but got dilationH: {dh} dilationW: {dw}",
            "dilation",
        )
    if 0 in x[1:]:
        message = "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input"
        fail(f"{message}, but got:{torch_sizes(x)}", None, code="empty")
    if ph > kh // 2 or pw > kw // 2:
        fail(
            "pad should be smaller than or equal to half of kernel size, but got "
            f"padW = {pw}, padH = {ph}, kW = {kw}, kH = {kh}",
            "padding",
            hint=f"use padding <= {kh // 2}" if kh == kw else None,
        )
    return list(errors.values())


# -- the layers -------------------------------------------------------------------------------
class MaxPool2d(Layer):
    """Max over sliding windows, padded with −inf. Mirrors torch.nn.MaxPool2d.

    Differences: the input must be (N, C, H, W) (netspec inputs always carry a batch), and the
    tuple arguments take exactly two entries. With return_indices, the values go on and the
    indices are a second output, NAME.indices.
    """

    type: Literal["MaxPool2d"] = "MaxPool2d"
    kernel_size: Annotated[IntPair, Bounds(minimum=1)]
    """Size of the window to take a max over."""
    stride: Annotated[IntPair | None, Bounds(minimum=1)] = None
    """Stride of the window; defaults to kernel_size."""
    padding: Annotated[IntPair, Bounds(minimum=0)] = 0
    """Implicit −inf padding on both sides; at most half the kernel size."""
    dilation: Annotated[IntPair, Bounds(minimum=1)] = 1
    """Spacing between the elements of a window."""
    return_indices: Bool = False
    """Also output the flat index h·W + w of each maximum (as NAME.indices)."""
    ceil_mode: Bool = False
    """Round the output size up: a last, partial window when it starts inside the input."""

    def output_shape(self, x: Shape) -> Shape:
        ah, aw = _window_axes(self, x, self.dilation)
        return (x[0], x[1], ah.out, aw.out)

    def side_output_shapes(self, x: Shape) -> dict[str, Shape]:
        return {"indices": self.output_shape(x)} if self.return_indices else {}

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        ah, aw = _window_axes(self, x.shape, self.dilation)
        y, tap = windows.max_windows(x, ah, aw)  # (N, C, oh, ow) both
        ctx.save(tap, ah, aw, layout.is_channels_last(x))
        if self.return_indices:
            ctx.emit("indices", windows.flat_indices(tap, ah, aw))
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, C, oh, ow)
        return windows.max_windows_backward(g, *ctx.saved)


class AvgPool2d(Layer):
    """Mean over sliding windows. Mirrors torch.nn.AvgPool2d.

    Differences: the input must be (N, C, H, W), and the tuple arguments take two entries.
    """

    type: Literal["AvgPool2d"] = "AvgPool2d"
    kernel_size: Annotated[IntPair, Bounds(minimum=1)]
    """Size of the window to average over."""
    stride: Annotated[IntPair | None, Bounds(minimum=1)] = None
    """Stride of the window; defaults to kernel_size."""
    padding: Annotated[IntPair, Bounds(minimum=0)] = 0
    """Implicit zero padding on both sides; at most half the kernel size."""
    ceil_mode: Bool = False
    """Round the output size up: a last, partial window when it starts inside the input."""
    count_include_pad: Bool = True
    """Count the zero padding in the divisor."""
    divisor_override: Annotated[Int | None, Bounds(**NOT_ZERO)] = None
    """If set, divide every window sum by this instead of the window size."""

    def _axes(self, x: Shape) -> tuple[WindowAxis, WindowAxis]:
        if self.divisor_override == 0:  # PyTorch checks this first
            raise ShapeError("divisor must be not zero", field="divisor_override", code="value")
        return _window_axes(self, x)

    def output_shape(self, x: Shape) -> Shape:
        ah, aw = self._axes(x)
        return (x[0], x[1], ah.out, aw.out)

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        ah, aw = self._axes(x.shape)
        divisor = windows.avg_divisor(ah, aw, self.count_include_pad, self.divisor_override)
        divisor = ctx.xp.asarray(divisor, dtype=x.dtype)
        ctx.save(divisor, ah, aw, layout.is_channels_last(x))
        sums = windows.window_sums(x, ah, aw)  # (N, C, oh, ow)
        sums /= divisor
        return sums

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, C, oh, ow)
        divisor, ah, aw, channels_last = ctx.saved
        return layout.to_layout(windows.spread_windows(g / divisor, ah, aw), channels_last)


# -- adaptive pooling ---------------------------------------------------------------------------
def _adaptive_size(layer: Layer, x: Shape) -> tuple[int, int]:
    """output_size with None entries replaced by the input's size (after the rank check)."""
    _require_nchw(layer.type_name, x)
    size = layer.output_size  # type: ignore[attr-defined]
    if size is None:
        raise ShapeError(
            "output_size cannot be None (PyTorch fails with: object of type 'NoneType' has no "
            "len())",
            field="output_size",
            hint="write [null, null] to keep the input's height and width",
            code="value",
        )
    if isinstance(size, int):
        return size, size
    return tuple(x[2 + i] if d is None else d for i, d in enumerate(size))  # type: ignore[return-value]


def _adaptive_plan(x: Shape, out: tuple[int, int]) -> tuple[WindowAxis, WindowAxis] | None:
    """When the bins are equal, disjoint windows (size divisible by out): MaxPool2d's path."""
    (height, width), (oh, ow) = x[2:], out
    if oh < 1 or ow < 1 or height % oh or width % ow:  # type: ignore[operator]
        return None
    kh, kw = height // oh, width // ow  # type: ignore[operator]
    return WindowAxis(height, kh, kh, 1, 0, oh), WindowAxis(width, kw, kw, 1, 0, ow)  # type: ignore[arg-type]


class AdaptiveMaxPool2d(Layer):
    """Max over `output_size` bins that cover the input. Mirrors torch.nn.AdaptiveMaxPool2d.

    Differences: the input must be (N, C, H, W). With return_indices, the values go on and the
    indices are a second output, NAME.indices.
    """

    type: Literal["AdaptiveMaxPool2d"] = "AdaptiveMaxPool2d"
    output_size: AdaptiveSize
    """Output (H, W), or one int for both; a None entry keeps that input size."""
    return_indices: Bool = False
    """Also output the flat index h·W + w of each maximum (as NAME.indices)."""

    def output_shape(self, x: Shape) -> Shape:
        out = _adaptive_size(self, x)
        for dim in (1, 2, 3):
            if x[dim] == 0:
                raise ShapeError(
                    "adaptive_max_pool2d(): Expected input to have non-zero size for non-batch "
                    f"dimensions, but input has sizes {torch_sizes(x)} with dimension {dim} "
                    "being empty",
                    code="empty",
                )
        shape = (x[0], x[1], *out)
        for d in out:
            if d < 0:
                raise ShapeError(
                    f"Trying to create tensor with negative dimension {d}: {torch_sizes(shape)}",
                    field="output_size",
                    code="value",
                )
        return shape

    def side_output_shapes(self, x: Shape) -> dict[str, Shape]:
        return {"indices": self.output_shape(x)} if self.return_indices else {}

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        n, c, oh, ow = self.output_shape(x.shape)
        plan = _adaptive_plan(x.shape, (oh, ow))
        if plan is not None:
            y, tap = windows.max_windows(x, *plan)
            ctx.save("windows", tap, *plan, layout.is_channels_last(x))
            indices = windows.flat_indices(tap, *plan) if self.return_indices else None
        else:
            y, indices = adaptive.max_bins(x, oh, ow)
            ctx.save("bins", indices, x.shape, layout.is_channels_last(x))
        if self.return_indices:
            ctx.emit("indices", indices)
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, C, oh, ow)
        path, *saved = ctx.saved
        if path == "windows":
            return windows.max_windows_backward(g, *saved)
        indices, shape, channels_last = saved
        return layout.to_layout(adaptive.max_bins_backward(g, indices, shape), channels_last)


class AdaptiveAvgPool2d(Layer):
    """Mean over `output_size` bins that cover the input. Mirrors torch.nn.AdaptiveAvgPool2d.

    Differences: the input must be (N, C, H, W).
    """

    type: Literal["AdaptiveAvgPool2d"] = "AdaptiveAvgPool2d"
    output_size: AdaptiveSize
    """Output (H, W), or one int for both; a None entry keeps that input size."""

    def output_shape(self, x: Shape) -> Shape:
        out = _adaptive_size(self, x)
        if out[0] < 0 or out[1] < 0:
            raise ShapeError(
                "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 "
                f"but received {{{out[0]}, {out[1]}}}",
                field="output_size",
                code="value",
            )
        for dim in (2, 3):
            if x[dim] == 0:
                raise ShapeError(
                    "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch "
                    f"dimensions, but input has sizes {torch_sizes(x)} with dimension {dim} "
                    "being empty",
                    code="empty",
                )
        return (x[0], x[1], *out)

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        xp = ctx.xp
        n, c, oh, ow = self.output_shape(x.shape)
        plan = _adaptive_plan(x.shape, (oh, ow))
        if plan is not None:  # equal bins: AvgPool2d with kernel = stride = size // out
            ah, aw = plan
            share = xp.asarray(1 / (ah.kernel * aw.kernel), dtype=x.dtype)
            ctx.save("windows", layout.is_channels_last(x), share, ah, aw)
            return windows.window_sums(x, ah, aw) * share
        y, mean_h, mean_w = adaptive.mean_bins(x, oh, ow)  # unequal bins: two GEMMs
        ctx.save("matrices", layout.is_channels_last(x), mean_h, mean_w)
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, C, oh, ow)
        path, channels_last, *saved = ctx.saved
        if path == "windows":
            share, ah, aw = saved
            return layout.to_layout(windows.spread_windows(g * share, ah, aw), channels_last)
        return layout.to_layout(adaptive.mean_bins_backward(g, *saved), channels_last)

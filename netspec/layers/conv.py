"""Conv2d. Mirrors torch/nn/modules/conv.py.

The layer is PyTorch's constructor (its argument rules), the shape rule (PyTorch's run-time
checks, every error at once) and the weights; its forward and backward run the kernels of
netspec.ops.conv, which says how (two layouts, blocks of images, correlation or fold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, field_validator, model_validator

from netspec.errors import ArgError, raise_arg_errors, raise_shape_errors
from netspec.layers.base import Layer, kaiming_uniform_bound
from netspec.lazy import lazy_import
from netspec.types import (
    Bool,
    Bounds,
    ConvGeometry,
    DeviceName,
    DTypeName,
    Int,
    IntPair,
    NonNegativeInt,
    NonNegativeIntPair,
    Pads,
    Shape,
    ShapeError,
    expect_rank,
    format_shape,
    pair,
    sliding_stride,
    torch_sizes,
    window_count,
)

conv = lazy_import("netspec.ops.conv")

PADDING_STRINGS = ("valid", "same")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


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
    in_channels: Annotated[NonNegativeInt, Bounds(minimum=1)] | None = None
    """Number of channels in the input image; left out, the input's (as LazyConv2d)."""
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
    """Accepted for compatibility; the network's device decides placement."""
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
            if self.in_channels is not None and self.in_channels % self.groups != 0:
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

    def inferred_arguments(self, x: Shape) -> dict[str, Any]:
        if self.in_channels is not None or len(x) != 4:
            return {}
        return {"in_channels": x[1]}

    def output_shape(self, x: Shape) -> Shape:
        return (x[0], self.out_channels, *self.geometry(x).out)

    def geometry(self, x: Shape) -> ConvGeometry:
        """Padding and sizes for an input of shape x, or PyTorch's errors as a ShapeError.

        PyTorch stops at its first error; here every argument error is found (in PyTorch's
        order), and inference goes on with sizes from the nearest legal arguments (guessed).
        """
        _check_rank(x)
        channels = x[1]
        pads = self.explicit_padding()
        padded = (x[2] + pads[0] + pads[1], x[3] + pads[2] + pads[3])
        errors, seen = self._padding_errors(x, pads, padded)
        errors += self._argument_errors()
        if errors:
            if channels != self.in_channels:
                errors.append(self._channel_mismatch(seen, padded))
            raise_shape_errors(errors, self._guessed_output(x, pads))
        if channels != self.in_channels:
            raise self._channel_mismatch(seen, padded)
        out = self._output_size(padded)
        return ConvGeometry(
            kernel=pair(self.kernel_size),
            stride=sliding_stride(pair(self.stride), out),
            dilation=pair(self.dilation),
            groups=self.groups,
            padding_mode=self.padding_mode,
            pads=pads,
            padded=padded,
            out=out,
            unit_stride=pair(self.stride) == (1, 1),
        )

    def _padding_errors(self, x: Shape, pads: Pads, padded: tuple[int, int]):
        """The padding's errors, and the input shape PyTorch's messages then show."""
        n, channels, height, width = x
        top, bottom, left, right = pads
        if self.padding_mode == "zeros":
            errors = (
                [_error("negative padding is not supported", "padding")] if min(pads) < 0 else []
            )
            # F.conv2d pads only the odd 'same' pixel itself: its messages show that size.
            return errors, (n, channels, height + bottom - top, width + right - left)
        try:
            self._check_mode_padding(x, pads)  # F.pad runs before the convolution
        except ShapeError as error:
            return [error], (n, channels, *padded)
        return [], (n, channels, *padded)

    def _argument_errors(self) -> list[ShapeError]:
        """The convolution's own run-time checks of stride, dilation and groups."""
        errors = []
        if min(pair(self.stride)) <= 0:
            errors.append(_error("non-positive stride is not supported", "stride"))
        if min(pair(self.dilation)) < 0:
            errors.append(_error("dilation should be greater than zero", "dilation"))
        if self.groups > 0 and (self.in_channels or 0) % self.groups != 0:  # inferred
            message = (
                f"in_channels must be divisible by groups: the input has {self.in_channels} "
                f"channels, groups={self.groups}"
            )
            errors.append(_error(message, "groups"))
        if self.out_channels < self.groups:
            errors.append(
                _error(
                    f"Given groups={self.groups}, expected weight to be at least {self.groups} "
                    f"at dimension 0, but got weight of size {torch_sizes(self.weight_shape())} "
                    "instead",
                    "out_channels",
                )
            )
        return errors

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
                f"non-zero dimensions for input, but got: {torch_sizes(x)}",
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
                    f"{torch_sizes(x)}",
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
        return (
            window_count(padded[0], kh, sh, dilation[0]),
            window_count(padded[1], kw, sw, dilation[1]),
        )

    def _channel_mismatch(self, seen: Shape, padded: tuple[int, int]) -> ShapeError:
        try:  # what the declared arguments give, so that inference can go on
            recovered: Shape | None = (seen[0], self.out_channels, *self._output_size(padded))
        except (ShapeError, ZeroDivisionError):  # stride 0 (reported already) gives no size
            recovered = None
        return ShapeError(
            f"Given groups={self.groups}, weight of size {torch_sizes(self.weight_shape())}, "
            f"expected input{torch_sizes(seen)} to have {self.in_channels} channels, but got "
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

    # -- runtime: the kernels of netspec.ops.conv --------------------------------------------
    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        y, saved = conv.conv2d(x, p.weight, p.bias if self.bias else None, self.geometry(x.shape))
        ctx.save(*saved)
        return y  # (N, O, Ho, Wo)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, O, Ho, Wo)
        # needs_input_grad False (the network's first layer in training) skips dx
        d = conv.conv2d_backward(g, p.weight, ctx.saved, self.bias, ctx.needs_input_grad)
        grads.weight += d.weight
        if self.bias:
            grads.bias += d.bias
        return d.input


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

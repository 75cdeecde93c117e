"""ONNX nodes for every layer but the pools (onnx_pooling): one converter per layer type.

Each converter receives a `Call` (onnx_build) and writes the layer's eval-mode value under
the layer's name, reading parameters and buffers under their state-dict names. What ONNX
has no operator for, or had none before a newer opset, is composed from plain operators:
circular padding before opset 19 (Slice + Concat), GELU before opset 20 (Erf or Tanh),
BatchNorm2d without running statistics (ReduceMean over N, H, W: batch statistics, as
PyTorch uses even in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from netspec.export.onnx_build import Call
from netspec.export.onnx_pooling import POOL_CONVERTERS
from netspec.layers import (
    GELU,
    SELU,
    Add,
    BatchNorm2d,
    Concat,
    Conv2d,
    Dropout,
    Dropout2d,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    ReLU6,
    Sigmoid,
    Softmax,
    Tanh,
)
from netspec.types import normalize_dim, pair

# PyTorch's SELU constants, as netspec.layers.activation has them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# padding_mode -> ONNX Pad's mode ("wrap" exists from opset 19)
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# -- Conv2d ---------------------------------------------------------------------------------
def conv2d(c: Call) -> None:
    layer: Conv2d = c.layer
    top, bottom, left, right = layer.explicit_padding()
    x = c.x
    if layer.padding_mode != "zeros" and any((top, bottom, left, right)):
        x = _mode_padding(c, (top, bottom, left, right))
        top = bottom = left = right = 0
    inputs = [x, f"{c.name}.weight"] + ([f"{c.name}.bias"] if layer.bias else [])
    c.scope.op(
        "Conv",
        inputs,
        c.name,
        kernel_shape=list(pair(layer.kernel_size)),
        strides=list(pair(layer.stride)),
        dilations=list(pair(layer.dilation)),
        group=layer.groups,
        pads=[top, left, bottom, right],
    )


def _mode_padding(c: Call, pads: tuple[int, int, int, int]) -> str:
    """F.pad in a non-zero mode, where a negative pad crops: reflect and replicate pad and
    then crop, circular crops and then wraps (netspec.ops.padding.fpad's order)."""
    mode = c.layer.padding_mode
    grow = tuple(max(p, 0) for p in pads)
    cuts = tuple(max(-p, 0) for p in pads)
    height, width = c.spatial
    x = c.x
    if mode == "circular":
        x = _crop(c, x, cuts, (height, width))
        inner = (height - cuts[0] - cuts[1], width - cuts[2] - cuts[3])
        return _wrap(c, x, grow, inner) if any(grow) else x
    if any(grow):
        x = c.scope.pad(x, grow, PAD_MODES[mode])  # type: ignore[arg-type]
    grown = (height + grow[0] + grow[1], width + grow[2] + grow[3])
    return _crop(c, x, cuts, grown)


def _crop(c: Call, x: str, cuts: tuple, size: tuple[int, int]) -> str:
    top, bottom, left, right = cuts
    if top or bottom:
        x = c.scope.slice(x, 2, top, size[0] - bottom)
    if left or right:
        x = c.scope.slice(x, 3, left, size[1] - right)
    return x


def _wrap(c: Call, x: str, grow: tuple, size: tuple[int, int]) -> str:
    """Circular padding: Pad's `wrap` mode from opset 19, else the wrapped rows and columns
    sliced off the other side and concatenated (each pad is at most the size: one wrap)."""
    if c.scope.opset >= 19:
        return c.scope.pad(x, grow, "wrap")
    for axis, (before, after), length in ((2, grow[:2], size[0]), (3, grow[2:], size[1])):
        if not (before or after):
            continue
        parts = [c.scope.slice(x, axis, length - before, length)] if before else []
        parts.append(x)
        if after:
            parts.append(c.scope.slice(x, axis, 0, after))
        x = c.scope.op("Concat", parts, axis=axis)
    return x


# -- activations ------------------------------------------------------------------------------
def _unary(op_type: str, **attributes) -> Callable[[Call], None]:
    def convert(c: Call) -> None:
        c.scope.op(op_type, [c.x], c.name, **attributes)

    return convert


def leaky_relu(c: Call) -> None:
    c.scope.op("LeakyRelu", [c.x], c.name, alpha=float(c.layer.negative_slope))


def relu6(c: Call) -> None:
    c.scope.op("Clip", [c.x, c.scope.const("min", 0.0), c.scope.const("max", 6.0)], c.name)


def selu(c: Call) -> None:
    c.scope.op("Selu", [c.x], c.name, alpha=SELU_ALPHA, gamma=SELU_SCALE)


def gelu(c: Call) -> None:
    """Gelu from opset 20; before, 0.5·x·(1 + erf(x/√2)) or its tanh form."""
    s, x, approximate = c.scope, c.x, c.layer.approximate
    if s.opset >= 20:
        s.op("Gelu", [x], c.name, approximate=approximate)
        return
    if approximate == "tanh":  # tanh(√(2/π)·(x + 0.044715·x³))
        cube = s.op("Mul", [s.op("Mul", [x, x]), x])
        inner = s.op("Add", [x, s.op("Mul", [cube, s.const("kappa", 0.044715)])])
        curve = s.op("Tanh", [s.op("Mul", [inner, s.const("beta", math.sqrt(2 / math.pi))])])
    else:
        curve = s.op("Erf", [s.op("Mul", [x, s.const("inv_sqrt2", math.sqrt(0.5))])])
    half_x = s.op("Mul", [x, s.const("half", 0.5)])
    s.op("Mul", [half_x, s.op("Add", [curve, s.const("one", 1.0)])], c.name)


def softmax(c: Call) -> None:
    c.scope.op("Softmax", [c.x], c.name, axis=c.layer.axis(len(c.shapes[0])))


# -- BatchNorm2d, Linear --------------------------------------------------------------------
def batch_norm(c: Call) -> None:
    """BatchNormalization in inference mode. Without running statistics PyTorch normalises
    with the batch's (biased) mean and variance in eval too: computed here per channel."""
    layer: BatchNorm2d = c.layer
    s, channels = c.scope, c.shapes[0][1]
    scale = f"{c.name}.weight" if layer.affine else s.const("ones", [1.0] * channels)
    shift = f"{c.name}.bias" if layer.affine and layer.bias else s.const("zeros", [0] * channels)
    if layer.track_running_stats:
        mean, var = f"{c.name}.running_mean", f"{c.name}.running_var"
    else:
        kept = s.reduce("ReduceMean", c.x, (0, 2, 3), keepdims=True)
        centred = s.op("Sub", [c.x, kept])
        var = s.reduce("ReduceMean", s.op("Mul", [centred, centred]), (0, 2, 3), False)
        mean = s.op("Reshape", [kept, s.ints("channels", [-1])])
    inputs = [c.x, scale, shift, mean, var]
    s.op("BatchNormalization", inputs, c.name, epsilon=float(layer.eps))


def linear(c: Call) -> None:
    """Gemm (transB) for (N, in); MatMul with the transposed weight for (N, *, in)."""
    weight, bias = f"{c.name}.weight", f"{c.name}.bias"
    has_bias = c.layer.bias
    if len(c.shapes[0]) == 2:
        c.scope.op("Gemm", [c.x, weight] + ([bias] if has_bias else []), c.name, transB=1)
        return
    product = c.scope.op("MatMul", [c.x, c.scope.op("Transpose", [weight], perm=[1, 0])])
    if has_bias:
        c.scope.op("Add", [product, bias], c.name)
    else:
        c.scope.op("Identity", [product], c.name)


# -- shapes and joins ------------------------------------------------------------------------
def flatten(c: Call) -> None:
    shape = c.shapes[0]
    rank = len(shape)
    start = normalize_dim(c.layer.start_dim, rank, "start_dim")
    end = normalize_dim(c.layer.end_dim, rank, "end_dim")
    if start == end:
        c.scope.op("Identity", [c.x], c.name)
    elif start == 1 and end == rank - 1:
        c.scope.op("Flatten", [c.x], c.name, axis=1)
    else:  # 0 copies a leading size (the batch); -1 takes the flattened one with the batch
        merged = -1 if start == 0 else math.prod(shape[start : end + 1])
        target = [0] * start + [merged] + list(shape[end + 1 :])
        c.scope.op("Reshape", [c.x, c.scope.ints("shape", target)], c.name)


def add(c: Call) -> None:
    c.scope.op("Add" if len(c.inputs) == 2 else "Sum", c.inputs, c.name)


def concat(c: Call) -> None:
    axis = normalize_dim(c.layer.dim, len(c.shapes[0]), "dim")
    c.scope.op("Concat", c.inputs, c.name, axis=axis)


CONVERTERS: dict[type, Callable[[Call], None]] = {
    Conv2d: conv2d,
    Sigmoid: _unary("Sigmoid"),
    Tanh: _unary("Tanh"),
    ReLU: _unary("Relu"),
    LeakyReLU: leaky_relu,
    ReLU6: relu6,
    GELU: gelu,
    SELU: selu,
    Softmax: softmax,
    BatchNorm2d: batch_norm,
    Linear: linear,
    Dropout: _unary("Identity"),  # eval mode
    Dropout2d: _unary("Identity"),
    Identity: _unary("Identity"),
    Flatten: flatten,
    Add: add,
    Concat: concat,
    **POOL_CONVERTERS,
}

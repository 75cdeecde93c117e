"""Elementwise activations and Softmax. Mirrors torch/nn/modules/activation.py.

Every layer here keeps the input's shape and dtype. Backward keeps only what it needs: the
output for Sigmoid, Tanh and Softmax (their derivatives are functions of it), the input (or
LeakyReLU's per-element slope, GELU's Phi(x) or tanh term) for the others. The kernels avoid
`xp.where` and `xp.maximum`: on NumPy 2 both are several times slower than `clip` and plain
arithmetic on 0/1 masks, and these layers run on every step.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, get_args

from pydantic import field_validator

from netspec.errors import ArgError
from netspec.layers.base import Layer
from netspec.lazy import lazy_import
from netspec.types import Bool, Float, Int, Shape, ShapeError, normalize_dim

special = lazy_import("netspec.ops.special")
fused = lazy_import("netspec.ops.fused")

_INF = math.inf
# PyTorch's SELU constants (Klambauer et al., 2017), to the digits torch uses.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_GELU_BETA = math.sqrt(2.0 / math.pi)  # tanh form: u = tanh(beta * (x + kappa * x^3))
_GELU_KAPPA = 0.044715
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Largest argument whose exp is finite, by itemsize (float16, float32, float64).
_EXP_CAP = {2: 11.0, 4: 88.0, 8: 708.0}


class _Elementwise(Layer):
    """An activation applied to each element on its own: the output has the input's shape."""

    keeps_shape: ClassVar[bool] = True

    def output_shape(self, x: Shape) -> Shape:
        return x


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)). Mirrors torch.nn.Sigmoid."""

    type: Literal["Sigmoid"] = "Sigmoid"

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        xp = ctx.xp
        # Below the cap, exp(-x) would overflow (and NumPy warn); sigmoid there is < 1e-38.
        y = xp.clip(x, -_EXP_CAP[x.dtype.itemsize], _INF)
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        y += 1
        xp.reciprocal(y, out=y)
        ctx.save(y)
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (y,) = ctx.saved
        dx = 1 - y
        dx *= y
        dx *= g
        return dx


class Tanh(_Elementwise):
    """y = tanh(x). Mirrors torch.nn.Tanh."""

    type: Literal["Tanh"] = "Tanh"

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        y = ctx.xp.tanh(x)
        ctx.save(y)
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (y,) = ctx.saved
        dx = y * y
        ctx.xp.subtract(1, dx, out=dx)
        dx *= g
        return dx


class ReLU(_Elementwise):
    """y = max(0, x); the gradient at 0 is 0. Mirrors torch.nn.ReLU.

    Difference: `inplace` is accepted, but netspec never overwrites its input.
    """

    type: Literal["ReLU"] = "ReLU"
    inplace: Bool = False
    """Accepted for compatibility: the values are the same, the input is never overwritten."""

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        ctx.save(x)
        return ctx.xp.clip(x, 0, _INF)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (x,) = ctx.saved
        return fused.kernel(ctx.xp, "relu_grad")(g, x, ctx.xp.empty_like(g))


class LeakyReLU(_Elementwise):
    """y = x if x > 0 else negative_slope * x; the gradient at 0 is the slope.
    Mirrors torch.nn.LeakyReLU.

    Difference: `inplace` is accepted, but netspec never overwrites its input; so
    inplace=True with a negative slope also trains, where PyTorch's backward refuses it.
    """

    type: Literal["LeakyReLU"] = "LeakyReLU"
    negative_slope: Float = 0.01
    """Slope for x <= 0 (any value: negative, 0, or above 1)."""
    inplace: Bool = False
    """Accepted for compatibility: the values are the same, the input is never overwritten."""

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        # y = x * slope_at(x), and the gradient is g * slope_at(x): one factor serves both,
        # and x * 1 and x * slope are exactly PyTorch's values.
        slope = self.negative_slope
        factor = (x > 0).astype(x.dtype)  # 1 where x > 0, else 0
        factor *= 1 - slope
        factor += slope  # 1 where x > 0, else slope
        ctx.save(factor)
        return x * factor

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (factor,) = ctx.saved
        return g * factor


class ReLU6(_Elementwise):
    """y = min(max(0, x), 6); the gradient is 1 only for 0 < x < 6. Mirrors torch.nn.ReLU6.

    Difference: `inplace` is accepted, but netspec never overwrites its input.
    """

    type: Literal["ReLU6"] = "ReLU6"
    inplace: Bool = False
    """Accepted for compatibility: the values are the same, the input is never overwritten."""

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        ctx.save(x)
        return ctx.xp.clip(x, 0, 6)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (x,) = ctx.saved
        return g * ((x > 0) & (x < 6))


class SELU(_Elementwise):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1)), with PyTorch's alpha and scale;
    the gradient at 0 is scale * alpha. Mirrors torch.nn.SELU.

    Difference: `inplace` is accepted, but netspec never overwrites its input.
    """

    type: Literal["SELU"] = "SELU"
    inplace: Bool = False
    """Accepted for compatibility: the values are the same, the input is never overwritten."""

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        xp = ctx.xp
        ctx.save(x)
        y = xp.clip(x, 0, _INF)
        y *= _SELU_SCALE
        negative = xp.clip(x, -_INF, 0)
        xp.expm1(negative, out=negative)
        negative *= _SELU_SCALE * _SELU_ALPHA
        y += negative
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (x,) = ctx.saved
        xp = ctx.xp
        slope = xp.clip(x, -_INF, 0)
        xp.exp(slope, out=slope)
        slope *= _SELU_SCALE * _SELU_ALPHA  # scale * alpha * exp(x) for x <= 0
        positive = (x > 0).astype(slope.dtype)
        positive *= _SELU_SCALE - _SELU_SCALE * _SELU_ALPHA
        slope += positive  # scale for x > 0
        slope *= g
        return slope


GeluApproximation = Literal["none", "tanh"]


class GELU(_Elementwise):
    """y = x * Phi(x) ('none', through erf) or its tanh approximation ('tanh').
    Mirrors torch.nn.GELU.

    Difference: PyTorch accepts any `approximate` and fails at the first forward; netspec
    reports the same message while reading the spec.
    """

    type: Literal["GELU"] = "GELU"
    approximate: GeluApproximation = "none"
    """'none': the exact x * Phi(x) through erf; 'tanh': the tanh approximation."""

    @field_validator("approximate", mode="before")
    @classmethod
    def _known_approximation(cls, value: Any) -> Any:
        # PyTorch raises this at the first forward; we say it while reading the spec. A value
        # that is not a string is left to the schema's type error.
        if isinstance(value, str) and value not in get_args(GeluApproximation):
            raise ArgError("approximate", "approximate argument must be either none or tanh.")
        return value

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        if self.approximate == "tanh":
            u = x * x
            u *= _GELU_KAPPA
            u += 1
            u *= x
            u *= _GELU_BETA  # beta * (x + kappa * x^3)
            ctx.xp.tanh(u, out=u)
            ctx.save(x, u)
            y = u + 1
            y *= x
            y *= 0.5  # 0.5 * x * (1 + u)
            return y
        cdf = special.erf(x * math.sqrt(0.5), ctx.xp)
        cdf += 1
        cdf *= 0.5  # Phi(x)
        ctx.save(x, cdf)
        return x * cdf

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        x, saved = ctx.saved
        dx = x * x
        if self.approximate == "tanh":
            # d/dx 0.5 x (1 + u) = 0.5 (1 + u) + 0.5 x (1 - u^2) beta (1 + 3 kappa x^2)
            u = saved
            dx *= 3 * _GELU_KAPPA
            dx += 1
            dx *= _GELU_BETA
            dx *= 1 - u * u
            dx *= x
            dx += u
            dx += 1
            dx *= 0.5
        else:
            # d/dx x Phi(x) = Phi(x) + x phi(x)
            cdf = saved
            dx *= -0.5
            ctx.xp.exp(dx, out=dx)
            dx *= _INV_SQRT_2PI
            dx *= x
            dx += cdf
        dx *= g
        return dx


class Softmax(Layer):
    """y = exp(x) / sum(exp(x)) along `dim`, computed stably. Mirrors torch.nn.Softmax.

    dim=None follows PyTorch's legacy rule: dim 0 for 0-, 1- and 3-D inputs, else 1 (the
    deprecation warning is a diagnostic of the spec, not raised here).
    """

    keeps_shape: ClassVar[bool] = True

    type: Literal["Softmax"] = "Softmax"
    dim: Int | None = None
    """Dimension the values sum to 1 along (the batch is dimension 0); negative counts back."""

    def axis(self, rank: int) -> int:
        """The dimension in force for an input of `rank` dimensions."""
        if self.dim is None:
            return 0 if rank in (0, 1, 3) else 1
        return normalize_dim(self.dim, rank, "dim")

    def mixes_samples(self, x: Shape) -> bool:
        return self.axis(len(x)) == 0

    def output_shape(self, x: Shape) -> Shape:
        try:
            self.axis(len(x))
        except ShapeError as error:
            error.recovered = x
            raise
        return x

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        axis = self.axis(x.ndim) if x.ndim else None
        y = x - x.max(axis=axis, keepdims=True)  # exp stays <= 1: no overflow
        ctx.xp.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        ctx.save(y, axis)
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        y, axis = ctx.saved
        dx = g * y
        total = dx.sum(axis=axis, keepdims=True)  # sum(g * y) along the axis
        ctx.xp.subtract(g, total, out=dx)
        dx *= y  # y * (g - sum(g * y))
        return dx

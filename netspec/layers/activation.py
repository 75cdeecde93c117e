"""Elementwise activations and Softmax. Mirrors torch/nn/modules/activation.py.

Every layer here keeps the input's shape and dtype. Backward keeps only what it needs: the
output for Sigmoid, Tanh and Softmax (their derivatives are functions of it), the input (or
LeakyReLU's per-element slope, GELU's Phi(x) or tanh term) for the others. The kernels avoid
`xp.where` and `xp.maximum`: on NumPy 2 both are several times slower than `clip` and plain
arithmetic on 0/1 masks, and these layers run on every step.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import field_validator

from netspec.layers.base import ArgError, Bool, Float, Int, Layer, Shape, ShapeError

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
        return g * (x > 0)


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
        cdf = _erf(x * math.sqrt(0.5), ctx.xp)
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

    type: Literal["Softmax"] = "Softmax"
    dim: Int | None = None
    """Dimension the values sum to 1 along (the batch is dimension 0); negative counts back."""

    def axis(self, rank: int) -> int:
        """The dimension in force for an input of `rank` dimensions."""
        if self.dim is None:
            return 0 if rank in (0, 1, 3) else 1
        span = max(rank, 1)  # PyTorch lets a 0-D tensor use dim 0 or -1
        if not -span <= self.dim < span:
            raise ShapeError(
                f"Dimension out of range (expected to be in range of [{-span}, {span - 1}], "
                f"but got {self.dim})",
                field="dim",
                code="dim",
            )
        return self.dim % span

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


# -- erf ----------------------------------------------------------------------------------
# NumPy has no erf (and SciPy is not a dependency), so GELU gets its own, vectorised for any
# array module. float64: W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
# approximations for the error function", Math. Comp. 23 (1969) 631-638; the coefficients of
# his netlib SPECFUN routine CALERF); measured against math.erf: max error 3e-16. float32: a
# cheaper formula good to float32's own resolution (_erf_float32).
# Coefficients from the highest power down; (numerator, denominator) in z = x^2, y and 1/y^2.
# fmt: off
_ERF_SMALL = (
    (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
     3.77485237685302021e02, 3.20937758913846947e03),
    (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
     2.84423683343917062e03),
)
_ERFC_MID = (
    (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
     6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
     1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03),
    (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
     1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
     3.43936767414372164e03, 1.23033935480374942e03),
)
_ERFC_LARGE = (
    (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
     1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4),
    (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
     6.05183413124413191e-2, 2.33520497626869185e-3),
)
# fmt: on
_INV_SQRT_PI = 0.56418958354775628695


def _ratio(z: Any, coefficients: tuple[tuple[float, ...], tuple[float, ...]]) -> Any:
    """P(z) / Q(z) by Horner's rule."""
    numerator, denominator = coefficients
    num = numerator[0] * z
    den = denominator[0] * z
    for a, b in zip(numerator[1:-1], denominator[1:-1], strict=True):
        num += a
        num *= z
        den += b
        den *= z
    num += numerator[-1]
    den += denominator[-1]
    num /= den
    return num


def _erfc_tail(y: Any, xp: Any) -> Any:
    """erfc(y) for y > 0.46875 (Cody's second and third intervals, split at 4)."""
    out = xp.empty_like(y)
    mid = y <= 4.0
    ym = y[mid]
    out[mid] = _ratio(ym, _ERFC_MID) * xp.exp(-ym * ym)
    # NaN goes here too and stays NaN; capping at 27 (where erfc is 0 in float64) keeps y*y
    # finite, so no overflow warning.
    far = ~mid
    yl = xp.clip(y[far], 0, 27.0)
    inv_sq = 1 / (yl * yl)
    tail = _INV_SQRT_PI - inv_sq * _ratio(inv_sq, _ERFC_LARGE)
    tail /= yl
    tail *= xp.exp(-yl * yl)
    out[far] = tail
    return out


def _erf(x: Any, xp: Any) -> Any:
    """erf(x) elementwise, in x's dtype, for NumPy or CuPy arrays."""
    if x.dtype.itemsize == 4:
        return _erf_float32(x, xp)
    y = xp.abs(x)
    out = xp.empty_like(x)
    small = y <= 0.46875
    xs = x[small]
    out[small] = xs * _ratio(xs * xs, _ERF_SMALL)
    rest = ~small
    xr = x[rest]
    out[rest] = xp.copysign(1 - _erfc_tail(y[rest], xp), xr)
    return out


def _erf_float32(x: Any, xp: Any) -> Any:
    """erf(x) to float32's accuracy (error < 6e-7), without branches: ten times faster than
    Cody's three intervals. Abramowitz & Stegun 7.1.26: erf(y) = 1 - P(t) exp(-y^2) for y >= 0,
    t = 1 / (1 + p y)."""
    y = xp.clip(x, -10.0, 10.0)  # erf(10) = 1 in float32; keeps y*y finite
    xp.abs(y, out=y)
    t = y * 0.3275911
    t += 1
    xp.reciprocal(t, out=t)
    poly = t * 1.061405429
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += coefficient
        poly *= t
    y *= y
    xp.negative(y, out=y)
    xp.exp(y, out=y)
    poly *= y
    xp.subtract(1, poly, out=poly)
    return xp.copysign(poly, x, out=poly)

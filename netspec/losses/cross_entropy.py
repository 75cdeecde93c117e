"""CrossEntropyLoss: softmax cross-entropy over class indices or class probabilities.
Mirrors torch.nn.CrossEntropyLoss.

Logits are viewed as (N, C, S), S the product of the extra dims d1, ..., so one code path
serves (C,), (N, C) and (N, C, d1, ...) inputs; backward keeps the softmax and what the
target picked.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import model_validator

from netspec.errors import ArgError, InputError
from netspec.layers.base import Context
from netspec.losses.base import FloatList, Loss, TargetKind, quiet_division
from netspec.types import Bounds, Float, Int, Shape, ShapeError, format_shape


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy over class indices or class probabilities. Mirrors
    torch.nn.CrossEntropyLoss, except: label_smoothing outside [0, 1] (negative and NaN too)
    is refused when the spec is read, where PyTorch raises at the first forward and lets
    negative values through; class indices may have any integer dtype (PyTorch: int64, uint8).
    """

    targets: ClassVar[TargetKind] = "classes"
    type: Literal["CrossEntropyLoss"] = "CrossEntropyLoss"
    weight: FloatList | None = None
    """A weight for each class (a list of C numbers); None weighs every class 1."""
    ignore_index: Int = -100
    """Class-index targets equal to this are skipped and do not count in the mean."""
    label_smoothing: Annotated[Float, Bounds(minimum=0, maximum=1)] = 0.0
    """In [0, 1]: how much of the target is replaced by the uniform distribution."""

    @model_validator(mode="after")
    def _check_label_smoothing(self) -> CrossEntropyLoss:
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ArgError(
                "label_smoothing",
                f"label_smoothing must be between 0.0 and 1.0. Got: {self.label_smoothing:g}",
                hint="0.1 is a common choice; 0.0 turns smoothing off",
            )
        return self

    def device_arrays(self, xp: Any, dtype: Any) -> dict[str, Any]:
        return {} if self.weight is None else {"weight": xp.asarray(self.weight, dtype=dtype)}

    def check(self, output_shape: Shape) -> None:
        if len(output_shape) < 1:
            raise ShapeError(
                "CrossEntropyLoss expects logits (N, C) or (N, C, d1, ...), received ()",
                code="rank",
            )
        classes = output_shape[1] if len(output_shape) >= 2 else output_shape[0]
        if self.weight is not None and classes is not None and len(self.weight) != classes:
            raise ShapeError(
                _weight_message(classes, [len(self.weight)]),
                field="weight",
                hint=f"give {classes} class weights, one for each of the {classes} outputs",
                code="classes",
            )

    def forward(self, x: Any, target: Any, ctx: Context, weight: Any = None) -> Any:
        """`weight`: the class weights already on the device (from `device_arrays`)."""
        xp = ctx.xp
        classes = x.shape[1] if x.ndim >= 2 else (x.shape[0] if x.ndim == 1 else 0)
        if classes == 0:
            raise InputError(
                "CrossEntropyLoss expects logits (C,), (N, C) or (N, C, d1, ...) with C >= 1, "
                f"received {format_shape(x.shape)}"
            )
        if weight is None and self.weight is not None:
            weight = xp.asarray(self.weight, dtype=x.dtype)
        if weight is not None and weight.shape != (classes,):
            raise InputError(_weight_message(classes, list(weight.shape)))
        probabilities = self._is_probability_target(x, target)
        log_p, p = _log_softmax(_as_ncs(x), xp)  # (N, C, S) each
        with quiet_division():
            if probabilities:
                target = _as_ncs(target.astype(x.dtype, copy=False))  # (N, C, S)
                return self._forward_probabilities(x.shape, log_p, p, target, weight, ctx)
            return self._forward_indices(x.shape, log_p, p, target, weight, ctx)

    def backward(self, grad: Any, ctx: Context) -> Any:
        with quiet_division():
            if ctx.saved[0] == "indices":
                return self._backward_indices(grad, ctx)
            return self._backward_probabilities(grad, ctx)

    def _is_probability_target(self, x: Any, target: Any) -> bool:
        """True for class probabilities, False for class indices; InputError for neither."""
        loss_shape = format_shape(_loss_shape(x.shape))
        if target.dtype.kind == "f":
            if target.shape != x.shape:
                raise InputError(
                    "CrossEntropyLoss: a floating-point target holds class probabilities and "
                    f"must have the input's shape {format_shape(x.shape)}, received "
                    f"{format_shape(target.shape)} (class indices {loss_shape} must be integers)"
                )
            if self.ignore_index != -100:
                raise InputError("ignore_index is not supported for floating point target")
            return True
        if target.dtype.kind in "iu":
            # PyTorch's forward also takes a (1,) target for a (C,) input, but its backward
            # then fails: netspec asks for the documented 0-d target.
            if target.shape != _loss_shape(x.shape):
                note = ""
                if target.shape == x.shape:
                    note = " (a target of the input's shape holds probabilities: make it float)"
                raise InputError(
                    f"CrossEntropyLoss: class-index target must have shape {loss_shape} for "
                    f"input {format_shape(x.shape)}, received {format_shape(target.shape)}{note}"
                )
            return False
        raise InputError(
            "CrossEntropyLoss: target must hold integer class indices or floating-point class "
            f"probabilities, received dtype {target.dtype}"
        )

    def _forward_indices(self, x_shape, log_p, p, target, weight, ctx: Context) -> Any:
        xp = ctx.xp
        n, classes, s = log_p.shape
        t = target.reshape(n, 1, s).astype(xp.int64, copy=False)  # (N, 1, S)
        keep = t != self.ignore_index
        out_of_bounds = keep & ((t < 0) | (t >= classes))
        if out_of_bounds.any():
            raise InputError(f"Target {int(t[out_of_bounds][0])} is out of bounds.")
        safe = xp.where(keep, t, 0)
        w_y = keep.astype(log_p.dtype) if weight is None else weight[safe] * keep  # (N, 1, S)
        at_target = _flat_positions(safe, log_p.shape, xp)  # (N, 1, S)
        picked = log_p.reshape(-1)[at_target]  # log p[n, y_n]: (N, 1, S)
        divisor = self._divisor(w_y.sum(), ctx)  # Σ m_n·w[y_n]: the weighted mean's denominator
        ctx.save("indices", x_shape, p, at_target, keep, w_y, weight, divisor)
        loss_shape = _loss_shape(x_shape)
        nll = self._reduce((-w_y * picked).reshape(loss_shape), divisor, xp)
        eps = self.label_smoothing
        if not eps:
            return nll
        spread = log_p.sum(axis=1) if weight is None else weight @ log_p  # (N, S)
        smooth = self._reduce((-spread * keep[:, 0]).reshape(loss_shape), divisor, xp)
        # Reduced apart, as PyTorch does: when the divisor is 0 the nll part's 0/0 = NaN wins.
        return xp.asarray((1.0 - eps) * nll + (eps / classes) * smooth)

    def _backward_indices(self, grad: Any, ctx: Context) -> Any:
        xp = ctx.xp
        _, x_shape, p, at_target, keep, w_y, weight, divisor = ctx.saved
        n, classes, s = p.shape
        g = self._element_grad(grad, ctx, _loss_shape(x_shape), divisor, p.dtype)
        # Ignored targets get exactly 0, even where the mean divides by 0 (as in PyTorch).
        g = xp.where(keep, g.reshape(n, 1, s) if g.ndim else g, xp.zeros((), p.dtype))
        eps = self.label_smoothing
        total_weight = classes if weight is None else weight.sum()
        # ∂l_n/∂x_n = (1-ε)·w[y_n]·(p_n - e_{y_n}) + (ε/C)·(Σ_c w_c·p_n - w)
        gx = p * (g * ((1.0 - eps) * w_y + (eps / classes) * total_weight))  # (N, C, S)
        gx.reshape(-1)[at_target] -= g * (1.0 - eps) * w_y  # one entry per (n, s): no repeats
        if eps:
            gx -= (g * (eps / classes)) * (1.0 if weight is None else weight[:, None])
        return gx.reshape(x_shape)

    def _forward_probabilities(self, x_shape, log_p, p, target, weight, ctx: Context) -> Any:
        eps = self.label_smoothing
        if eps:
            target = (1.0 - eps) * target + eps / log_p.shape[1]
        weighted = target if weight is None else target * weight[:, None]  # (N, C, S)
        losses = -(weighted * log_p).sum(axis=1)  # (N, S)
        # The mean divides by the element count N·d1·..., whatever the weights.
        divisor = self._divisor(losses.size, ctx)
        ctx.save("probabilities", x_shape, p, weighted, divisor)
        return self._reduce(losses.reshape(_loss_shape(x_shape)), divisor, ctx.xp)

    def _backward_probabilities(self, grad: Any, ctx: Context) -> Any:
        _, x_shape, p, weighted, divisor = ctx.saved
        n, _, s = p.shape
        g = self._element_grad(grad, ctx, _loss_shape(x_shape), divisor, p.dtype)
        g = g.reshape(n, 1, s) if g.ndim else g
        gx = (p * weighted.sum(axis=1, keepdims=True) - weighted) * g  # (N, C, S)
        return gx.reshape(x_shape)


def _weight_message(classes: int, shape: list[int]) -> str:
    return (
        f"weight tensor should be defined either for all {classes} classes or no classes "
        f"but got weight tensor of shape: {shape}"
    )


def _loss_shape(x_shape: tuple) -> tuple:
    """Shape of the per-element loss: (N, d1, ...) for input (N, C, d1, ...); () for (C,)."""
    return (*x_shape[:1], *x_shape[2:]) if len(x_shape) >= 2 else ()


def _as_ncs(a: Any) -> Any:
    """(C,) -> (1, C, 1); (N, C, d1, ...) -> (N, C, d1·...): a view, classes on axis 1.

    Reducing over axis 1 of this layout beats moving the classes last (a copy) for
    K-dimensional inputs, and costs nothing for (N, C).
    """
    if a.ndim == 1:
        return a.reshape(1, a.shape[0], 1)
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def _log_softmax(logits: Any, xp: Any) -> tuple[Any, Any]:
    """log_softmax and softmax over axis 1, shifted by the maximum for stability."""
    log_p = logits - logits.max(axis=1, keepdims=True)
    p = xp.exp(log_p)
    total = p.sum(axis=1, keepdims=True)
    p /= total  # in place: two fresh arrays instead of four (allocation dominates here)
    log_p -= xp.log(total)
    return log_p, p


def _flat_positions(classes: Any, shape: tuple, xp: Any) -> Any:
    """Flat indices of a[n, classes[n, 0, s], s] in a C-contiguous array of `shape` (N, C, S).

    Faster than take_along_axis / put_along_axis for both gather and scatter.
    """
    n, c, s = shape
    return classes * s + (xp.arange(n).reshape(n, 1, 1) * (c * s) + xp.arange(s))  # (N, 1, S)

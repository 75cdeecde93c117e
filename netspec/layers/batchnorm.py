"""BatchNorm2d. Mirrors torch/nn/modules/batchnorm.py.

Speed notes: per-channel sums go through BLAS (`x3 @ ones`, batched dot products) rather
than `mean(axis=(0, 2, 3))`, and every full-size array is allocated once and then updated
in place (fresh allocations cost several times an in-place pass). Centred values are
formed before squaring, so the variance does not suffer the cancellation of E[x^2] - E[x]^2.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from netspec.errors import ArgError, InputError
from netspec.layers.base import Layer
from netspec.ops.backend import array_module
from netspec.types import (
    Bool,
    Bounds,
    DeviceName,
    DTypeName,
    Float,
    Int,
    Shape,
    ShapeError,
    format_shape,
)


def _channel_sums(a3: Any) -> Any:
    """Sum of a (N, C, L) array over N and L, via a BLAS matrix-vector product."""
    ones = array_module(a3).ones(a3.shape[2], dtype=a3.dtype)
    return (a3 @ ones).sum(0)  # (N, C) -> (C,)


def _channel_dots(a3: Any, b3: Any) -> Any:
    """Per-channel sum of a*b over N and L for (N, C, L) arrays, without an (a*b) temporary."""
    return (a3[:, :, None, :] @ b3[:, :, :, None]).sum((0, 2, 3))  # (N, C, 1, 1) -> (C,)


def _per_element(v: Any, plane: int) -> Any:
    """A per-channel (C,) vector repeated over each H*W plane: (C*H*W,).

    Broadcasting it against (N, C*H*W) runs NumPy's contiguous inner loops, about twice
    as fast as broadcasting (C, 1, 1) against (N, C, H, W).
    """
    return array_module(v).repeat(v, plane)


def _torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size([{', '.join(str(d) for d in shape)}])"


def _eps_message(eps: float, training: bool) -> str | None:
    """PyTorch's run-time complaint about eps (batch statistics need eps > 0), or None."""
    if training and eps <= 0.0:
        return f"batch_norm eps must be positive during training, but got {eps}"
    if eps < 0.0:
        return f"batch_norm eps must be non-negative, but got {eps}"
    return None


class BatchNorm2d(Layer):
    """Normalises each channel of (N, C, H, W) over N, H and W; learns a per-channel scale
    and shift. Mirrors torch.nn.BatchNorm2d.

    Differences: PyTorch refuses eps <= 0 only when a training forward runs (eps < 0 in
    eval); netspec trains what it checks, so the shape check reports eps <= 0 up front.
    The batch-size rule (more than one value per channel) is checked when the batch size
    is known: by `netspec check --batch-size`, else at run time (InputError).
    """

    keeps_shape: ClassVar[bool] = True

    type: Literal["BatchNorm2d"] = "BatchNorm2d"
    num_features: Annotated[Int, Bounds(minimum=1)]
    """C, the number of channels of the (N, C, H, W) input."""
    eps: Annotated[Float, Bounds(exclusiveMinimum=0)] = 1e-05
    """Added to the variance before the square root, for numerical stability."""
    momentum: Float | None = 0.1
    """Weight of the new batch in the running statistics; null: cumulative average."""
    affine: Bool = True
    """If true, learn a per-channel weight (scale) and bias (shift)."""
    track_running_stats: Bool = True
    """If true, keep running mean/variance for eval mode; if false, always use batch stats."""
    device: DeviceName | None = None
    """Accepted for compatibility; the network's --device decides placement."""
    dtype: DTypeName | None = None
    """Accepted for compatibility; the network runs in one dtype."""
    bias: Bool = True
    """With affine, whether to learn the shift (PyTorch's keyword-only `bias`)."""

    @model_validator(mode="after")
    def _check_arguments(self) -> BatchNorm2d:
        # PyTorch fails only when it allocates a tensor of size num_features: torch.empty
        # for the weight when affine, else torch.zeros for running_mean.
        c = self.num_features
        if c < 0 and (self.affine or self.track_running_stats):
            message = (
                f"Trying to create tensor with negative dimension {c}: [{c}]"
                if self.affine
                else "zeros: Dimension size must be non-negative."
            )
            raise ArgError("num_features", message, "num_features is the number of input channels")
        return self

    @property
    def _has_bias(self) -> bool:
        return self.affine and self.bias

    # -- schema side ------------------------------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        if len(x) != 4:
            raise ShapeError(
                f"expected 4D input (got {len(x)}D input): BatchNorm2d expects (N, C, H, W), "
                f"received {format_shape(x)} (netspec inputs always carry the batch dimension)",
                recovered=x,
                code="rank",
            )
        n, c, h, w = x
        if c != self.num_features:
            raise ShapeError(
                f"num_features is {self.num_features} but the input {format_shape(x)} "
                f"has {c} channels",
                field="num_features",
                hint=f"set num_features: {c}",
                recovered=x,
                code="channels",
            )
        if n is not None and n * h * w == 1:
            raise ShapeError(
                "Expected more than 1 value per channel when training, got input size "
                + _torch_size((n, c, h, w)),
                hint="train with a batch size above 1 (or larger feature maps)",
                recovered=x,
                code="batch",
            )
        if self.eps <= 0.0:  # a run-time error in PyTorch (in eval mode, only eps < 0 is)
            raise ShapeError(
                f"batch_norm eps must be positive during training, but got {self.eps}",
                field="eps",
                hint="use a small positive eps such as 1e-05",
                recovered=x,
                code="value",
            )
        return x

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        if self.affine:
            shapes["weight"] = (self.num_features,)
            if self.bias:
                shapes["bias"] = (self.num_features,)
        return shapes

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        if not self.track_running_stats:
            return {}
        c = self.num_features
        return {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}

    def init(self, rng: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.affine:
            values["weight"] = np.ones(self.num_features)
            if self.bias:
                values["bias"] = np.zeros(self.num_features)
        if self.track_running_stats:
            values["running_mean"] = np.zeros(self.num_features)
            values["running_var"] = np.ones(self.num_features)
            values["num_batches_tracked"] = np.zeros((), dtype=np.int64)
        return values

    # -- runtime side -------------------------------------------------------------------------
    # Arrays are handled as views: x2 (N, C*H*W) for per-channel arithmetic, x3 (N, C, H*W)
    # for per-channel reductions. Each full-size result is allocated once, then updated in place.
    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        batch_stats = ctx.training or not self.track_running_stats
        if batch_stats and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            raise InputError(
                "Expected more than 1 value per channel when training, got input size "
                + _torch_size(x.shape)
            )
        eps_problem = _eps_message(self.eps, batch_stats)
        if eps_problem:
            raise InputError(eps_problem)
        if batch_stats:
            return self._forward_batch_stats(p, x, ctx)
        return self._forward_running_stats(p, x, ctx)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, C, H, W)
        if ctx.saved[0] == "batch":
            return self._backward_batch_stats(p, g, ctx, grads)
        return self._backward_running_stats(p, g, ctx, grads)

    def _forward_batch_stats(self, p: Any, x: Any, ctx: Any) -> Any:
        n_, c, h, w = x.shape
        n = n_ * h * w
        update = ctx.training and self.track_running_stats
        if update:
            p.num_batches_tracked = ctx.xp.asarray(p.num_batches_tracked + 1)
        if n == 0:  # an empty batch: PyTorch counts it but leaves the statistics alone
            ctx.save("batch", x, None, None)
            return x.copy()
        mean = _channel_sums(x.reshape(n_, c, h * w)) / n  # (C,)
        y = x.reshape(n_, c * h * w) - _per_element(mean, h * w)  # (N, C*H*W), centred
        y3 = y.reshape(n_, c, h * w)
        var = _channel_dots(y3, y3) / n  # biased, from centred values: no cancellation
        inv_std = 1.0 / ctx.xp.sqrt(var + self.eps)
        if update:
            self._update_running_stats(p, mean, var, n)
        y *= _per_element(p.weight * inv_std if self.affine else inv_std, h * w)
        if self._has_bias:
            y += _per_element(p.bias, h * w)
        ctx.save("batch", x, mean, inv_std)
        return y.reshape(x.shape)

    def _update_running_stats(self, p: Any, mean: Any, var: Any, n: int) -> None:
        # momentum None: the cumulative moving average over the batches seen so far
        factor = self.momentum
        if factor is None:
            factor = 1.0 / float(p.num_batches_tracked)
        p.running_mean = p.running_mean * (1.0 - factor) + mean * factor
        p.running_var = p.running_var * (1.0 - factor) + var * (factor * n / (n - 1))

    def _backward_batch_stats(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        _, x, mean, inv_std = ctx.saved
        if mean is None:  # empty batch
            self._accumulate(grads, g.sum((0, 2, 3)), g.sum((0, 2, 3)))
            return g.copy()
        n_, c, h, w = x.shape
        n = n_ * h * w
        g3 = g.reshape(n_, c, h * w)  # (N, C, L)
        sum_g = _channel_sums(g3)
        dx = x.reshape(n_, c * h * w) - _per_element(mean, h * w)  # (N, C*H*W), centred
        sum_g_xhat = _channel_dots(g3, dx.reshape(g3.shape)) * inv_std  # = dweight
        self._accumulate(grads, sum_g_xhat, sum_g)
        # dx = a * (g - xhat * sum_g_xhat / n - sum_g / n), with a = weight * inv_std
        a = p.weight * inv_std if self.affine else inv_std
        dx *= _per_element(sum_g_xhat * inv_std * (-1.0 / n), h * w)
        dx += g.reshape(dx.shape)
        dx *= _per_element(a, h * w)
        dx -= _per_element(a * sum_g * (1.0 / n), h * w)
        return dx.reshape(x.shape)

    def _forward_running_stats(self, p: Any, x: Any, ctx: Any) -> Any:
        n_, c, h, w = x.shape
        inv_std = 1.0 / ctx.xp.sqrt(p.running_var + self.eps)
        scale = p.weight * inv_std if self.affine else inv_std
        shift = -p.running_mean * scale
        if self._has_bias:
            shift += p.bias
        y = x.reshape(n_, c * h * w) * _per_element(scale, h * w)  # (N, C*H*W)
        y += _per_element(shift, h * w)
        ctx.save("running", x if self.affine else None, inv_std, scale)
        return y.reshape(x.shape)

    def _backward_running_stats(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        _, x, inv_std, scale = ctx.saved
        n_, c, h, w = g.shape
        if self.affine:
            g3 = g.reshape(n_, c, h * w)  # (N, C, L)
            centred = x.reshape(n_, c * h * w) - _per_element(p.running_mean, h * w)
            dweight = _channel_dots(g3, centred.reshape(g3.shape)) * inv_std
            self._accumulate(grads, dweight, _channel_sums(g3))
        dx = g.reshape(n_, c * h * w) * _per_element(scale, h * w)  # (N, C*H*W)
        return dx.reshape(g.shape)

    def _accumulate(self, grads: Any, dweight: Any, dbias: Any) -> None:
        if self.affine:
            grads.weight += dweight
        if self._has_bias:
            grads.bias += dbias

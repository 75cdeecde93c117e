"""BatchNorm2d's numerics: normalise each channel of (N, C, H, W) by batch or running
statistics, and the adjoints.

Speed notes: per-channel sums go through BLAS (`x3 @ ones`, batched dot products) rather
than `mean(axis=(0, 2, 3))`, and every full-size array is allocated once and then updated
in place (fresh allocations cost several times an in-place pass). Centred values are
formed before squaring, so the variance does not suffer the cancellation of E[x^2] - E[x]^2.

Arrays are handled as views: x2 (N, C*H*W) for per-channel arithmetic, x3 (N, C, H*W) for
per-channel reductions. `weight` and `bias` are None where the layer has none.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from netspec.ops import fused
from netspec.ops.backend import array_module


class BatchStats(NamedTuple):
    """A batch's per-channel statistics: (C,) each, and the values per channel."""

    mean: Any
    var: Any  # biased
    inv_std: Any  # 1 / sqrt(var + eps)
    count: int  # N*H*W


class NormGrads(NamedTuple):
    input: Any
    weight: Any
    bias: Any


def channel_sums(a3: Any) -> Any:
    """Sum of a (N, C, L) array over N and L, via a BLAS matrix-vector product."""
    ones = array_module(a3).ones(a3.shape[2], dtype=a3.dtype)
    return (a3 @ ones).sum(0)  # (N, C) -> (C,)


def channel_dots(a3: Any, b3: Any) -> Any:
    """Per-channel sum of a*b over N and L for (N, C, L) arrays, without an (a*b) temporary."""
    return (a3[:, :, None, :] @ b3[:, :, :, None]).sum((0, 2, 3))  # (N, C, 1, 1) -> (C,)


def per_element(v: Any, plane: int) -> Any:
    """A per-channel (C,) vector repeated over each H*W plane: (C*H*W,).

    Broadcasting it against (N, C*H*W) runs NumPy's contiguous inner loops, about twice
    as fast as broadcasting (C, 1, 1) against (N, C, H, W).
    """
    return array_module(v).repeat(v, plane)


# -- batch statistics (training, or track_running_stats off) ----------------------------------
def batch_norm(x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, BatchStats | None]:
    """y normalised by the batch's statistics, and those (None for an empty batch, whose
    output is a copy of x: PyTorch leaves the running statistics alone then)."""
    n_, c, h, w = x.shape
    n = n_ * h * w
    if n == 0:
        return x.copy(), None
    mean = channel_sums(x.reshape(n_, c, h * w)) / n  # (C,)
    y = x.reshape(n_, c * h * w) - per_element(mean, h * w)  # (N, C*H*W), centred
    y3 = y.reshape(n_, c, h * w)
    var = channel_dots(y3, y3) / n  # biased, from centred values: no cancellation
    inv_std = 1.0 / array_module(x).sqrt(var + eps)
    scale = weight * inv_std if weight is not None else inv_std
    fused.kernel(array_module(x), "channel_affine")(y, scale, y, bias, plane=h * w)
    return y.reshape(x.shape), BatchStats(mean, var, inv_std, n)


def updated_running_stats(mean: Any, var: Any, batch: BatchStats, factor: float):
    """The running (mean, var) after a batch: an exponential average with weight `factor`,
    the variance unbiased as PyTorch keeps it."""
    n = batch.count
    return (
        mean * (1.0 - factor) + batch.mean * factor,
        var * (1.0 - factor) + batch.var * (factor * n / (n - 1)),
    )


def batch_norm_backward(g: Any, x: Any, weight: Any, batch: BatchStats | None) -> NormGrads:
    """Gradients through batch statistics; weight None: no affine scale."""
    if batch is None:  # empty batch
        return NormGrads(g.copy(), g.sum((0, 2, 3)), g.sum((0, 2, 3)))
    mean, inv_std, n = batch.mean, batch.inv_std, batch.count
    n_, c, h, w = x.shape
    g3 = g.reshape(n_, c, h * w)  # (N, C, L)
    sum_g = channel_sums(g3)
    dx = x.reshape(n_, c * h * w) - per_element(mean, h * w)  # (N, C*H*W), centred
    sum_g_xhat = channel_dots(g3, dx.reshape(g3.shape)) * inv_std  # = dweight
    # dx = a * (g - xhat * sum_g_xhat / n - sum_g / n), with a = weight * inv_std
    a = weight * inv_std if weight is not None else inv_std
    k, m = sum_g_xhat * inv_std * (-1.0 / n), a * sum_g * (1.0 / n)
    fused.kernel(array_module(x), "norm_backward")(dx, g.reshape(dx.shape), k, a, m, plane=h * w)
    return NormGrads(dx.reshape(x.shape), sum_g_xhat, sum_g)


# -- running statistics (eval) ------------------------------------------------------------------
def running_norm(x: Any, weight: Any, bias: Any, mean: Any, var: Any, eps: float):
    """y normalised by the running statistics: one scale and shift per channel. Returns
    (y, inv_std, scale), the last two what backward needs."""
    n_, c, h, w = x.shape
    inv_std = 1.0 / array_module(x).sqrt(var + eps)
    scale = weight * inv_std if weight is not None else inv_std
    shift = -mean * scale
    if bias is not None:
        shift += bias
    x2 = x.reshape(n_, c * h * w)
    y = array_module(x).empty_like(x2)  # (N, C*H*W)
    fused.kernel(array_module(x), "channel_affine")(x2, scale, y, shift, plane=h * w)
    return y.reshape(x.shape), inv_std, scale


def running_norm_backward(g: Any, x: Any, mean: Any, inv_std: Any, scale: Any) -> NormGrads:
    """Gradients through running statistics; x None (no affine scale): no dweight, dbias."""
    n_, c, h, w = g.shape
    dweight = dbias = None
    if x is not None:
        g3 = g.reshape(n_, c, h * w)  # (N, C, L)
        centred = x.reshape(n_, c * h * w) - per_element(mean, h * w)
        dweight = channel_dots(g3, centred.reshape(g3.shape)) * inv_std
        dbias = channel_sums(g3)
    dx = g.reshape(n_, c * h * w) * per_element(scale, h * w)  # (N, C*H*W)
    return NormGrads(dx.reshape(g.shape), dweight, dbias)

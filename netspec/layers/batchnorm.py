"""BatchNorm2d. Mirrors torch/nn/modules/batchnorm.py.

The layer is the schema, the shape rule and the per-channel parameters and buffers; the
arithmetic (BLAS reductions, in-place passes) is netspec.ops.norm's.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import model_validator

from netspec.errors import ArgError, InputError
from netspec.layers.base import Layer
from netspec.lazy import lazy_import
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
    torch_sizes,
)

np = lazy_import("numpy")
norm = lazy_import("netspec.ops.norm")


def _torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size({torch_sizes(shape)})"


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
    is known: by the shape check when it is given one, else at run time (InputError).
    """

    keeps_shape: ClassVar[bool] = True

    type: Literal["BatchNorm2d"] = "BatchNorm2d"
    num_features: Annotated[Int, Bounds(minimum=1)] | None = None
    """C, the number of channels of the (N, C, H, W) input; left out, the input's (as
    LazyBatchNorm2d)."""
    eps: Annotated[Float, Bounds(exclusiveMinimum=0)] = 1e-05
    """Added to the variance before the square root, for numerical stability."""
    momentum: Float | None = 0.1
    """Weight of the new batch in the running statistics; null: cumulative average."""
    affine: Bool = True
    """If true, learn a per-channel weight (scale) and bias (shift)."""
    track_running_stats: Bool = True
    """If true, keep running mean/variance for eval mode; if false, always use batch stats."""
    device: DeviceName | None = None
    """Accepted for compatibility; the network's device decides placement."""
    dtype: DTypeName | None = None
    """Accepted for compatibility; the network runs in one dtype."""
    bias: Bool = True
    """With affine, whether to learn the shift (PyTorch's keyword-only `bias`)."""

    @model_validator(mode="after")
    def _check_arguments(self) -> BatchNorm2d:
        # PyTorch fails only when it allocates a tensor of size num_features: torch.empty
        # for the weight when affine, else torch.zeros for running_mean.
        c = self.num_features
        if c is not None and c < 0 and (self.affine or self.track_running_stats):
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
    def inferred_arguments(self, x: Shape) -> dict[str, Any]:
        if self.num_features is not None or len(x) != 4:
            return {}
        return {"num_features": x[1]}

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

    # -- runtime side: the arithmetic of netspec.ops.norm ------------------------------------
    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, C, H, W)
        batch_stats = ctx.training or not self.track_running_stats
        rows = x.shape[0] if ctx.shard is None else ctx.shard.rows  # the whole batch's
        if batch_stats and rows * x.shape[2] * x.shape[3] == 1:
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

    def _affine(self, p: Any) -> tuple[Any, Any]:
        """(weight, bias), None where the layer learns none."""
        weight = p.weight if self.affine else None
        return weight, p.bias if self._has_bias else None

    def _forward_batch_stats(self, p: Any, x: Any, ctx: Any) -> Any:
        update = ctx.training and self.track_running_stats
        if update:
            p.num_batches_tracked = ctx.xp.asarray(p.num_batches_tracked + 1)
        y, stats = norm.batch_norm(x, *self._affine(p), self.eps, ctx.shard)
        if update and stats is not None:
            # momentum None: the cumulative moving average over the batches seen so far
            factor = self.momentum
            if factor is None:
                factor = 1.0 / float(p.num_batches_tracked)
            p.running_mean, p.running_var = norm.updated_running_stats(
                p.running_mean, p.running_var, stats, factor
            )
        ctx.save("batch", x, stats)
        return y

    def _backward_batch_stats(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        _, x, stats = ctx.saved
        d = norm.batch_norm_backward(g, x, self._affine(p)[0], stats, ctx.shard)
        self._accumulate(grads, d.weight, d.bias)
        return d.input

    def _forward_running_stats(self, p: Any, x: Any, ctx: Any) -> Any:
        y, inv_std, scale = norm.running_norm(
            x, *self._affine(p), p.running_mean, p.running_var, self.eps
        )
        ctx.save("running", x if self.affine else None, inv_std, scale)
        return y

    def _backward_running_stats(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        _, x, inv_std, scale = ctx.saved
        d = norm.running_norm_backward(g, x, p.running_mean, inv_std, scale)
        if self.affine:
            self._accumulate(grads, d.weight, d.bias)
        return d.input

    def _accumulate(self, grads: Any, dweight: Any, dbias: Any) -> None:
        if self.affine:
            grads.weight += dweight
        if self._has_bias:
            grads.bias += dbias

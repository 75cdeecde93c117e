"""Dropout and Dropout2d. Mirrors torch/nn/modules/dropout.py.

Masks come from the network's generator (`ctx.rng`), so they cannot equal PyTorch's; the
law is the same: keep each element (Dropout) or each (sample, channel) slice (Dropout2d)
with probability 1 - p and scale what is kept by 1 / (1 - p).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import model_validator

from netspec.errors import ArgError
from netspec.layers.base import Layer
from netspec.lazy import lazy_import
from netspec.types import Bool, Bounds, Float, Shape, ShapeError, format_shape

backend = lazy_import("netspec.ops.backend")
fused = lazy_import("netspec.ops.fused")


def scaled_mask(rng: Any, shape: tuple[int, ...], dtype: Any, p: float) -> Any:
    """mask / (1 - p) with mask ~ Bernoulli(1 - p), built in one buffer.

    `rng` is a NumPy or CuPy Generator. p = 1 gives zeros (no 0 * inf = NaN).
    """
    mask = rng.random(shape, dtype=dtype)  # uniform on [0, 1)
    scaled = p < 1.0  # in place: 1 / (1 - p) where kept, else 0
    fused.kernel(backend.array_module(mask), "dropout_mask")(
        mask, keep=1.0 - p, scale=1.0 / (1.0 - p) if scaled else 1.0, scaled=scaled
    )
    return mask


class _Dropout(Layer):
    """What Dropout and Dropout2d share: the argument rules and the masked forward."""

    keeps_shape: ClassVar[bool] = True

    p: Annotated[Float, Bounds(minimum=0, maximum=1)] = 0.5
    """Probability of an element (Dropout) or a channel (Dropout2d) being zeroed."""
    inplace: Bool = False
    """Accepted for compatibility: netspec computes the same values without aliasing."""

    @model_validator(mode="after")
    def _check_probability(self) -> _Dropout:
        if not 0.0 <= self.p <= 1.0:
            raise ArgError("p", f"dropout probability has to be between 0 and 1, but got {self.p}")
        return self

    def output_shape(self, x: Shape) -> Shape:
        return x

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the random mask for an input of `shape`; it broadcasts over the rest."""
        return shape

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        if not ctx.training or self.p == 0.0:
            ctx.save(None)
            return x
        shard, shape = ctx.shard, self.mask_shape(x.shape)
        if shard is None:
            mask = scaled_mask(ctx.rng, shape, x.dtype, self.p)
        else:  # the whole batch's mask, whatever the split: this process's rows of it
            whole = scaled_mask(ctx.rng, (shard.rows, *shape[1:]), x.dtype, self.p)
            mask = whole[shard.start : shard.stop]
        ctx.save(mask)
        # A multiplication, as in PyTorch: a NaN or inf input gives NaN even where dropped.
        return x * mask

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (mask,) = ctx.saved
        return g if mask is None else g * mask


class Dropout(_Dropout):
    """Zeroes each element with probability p in training and scales the rest by 1/(1-p);
    the identity in eval mode. Mirrors torch.nn.Dropout."""

    type: Literal["Dropout"] = "Dropout"


class Dropout2d(_Dropout):
    """Zeroes whole channels: each (sample, channel) slice x[n, c] is dropped with
    probability p in training, the rest scaled by 1/(1-p). Mirrors torch.nn.Dropout2d.

    Like PyTorch, any input of rank >= 2 is taken as (N, C, *): a 3-D (N, C, L) input drops
    rows x[n, c, :] (PyTorch's channel-wise 1-D behaviour, pytorch issue #77081), a 2-D
    (N, C) input drops single elements. PyTorch warns for ranks other than 4, and so does
    netspec (see `input_warning`); rank 1 is an error in training, as in PyTorch.
    """

    type: Literal["Dropout2d"] = "Dropout2d"

    def output_shape(self, x: Shape) -> Shape:
        if len(x) < 2 and self.p > 0.0:
            raise ShapeError(
                "Feature dropout requires at least 2 dimensions in the input: Dropout2d "
                f"expects (N, C, H, W), received {format_shape(x)}",
                recovered=x,
                code="rank",
            )
        return x

    def input_warning(self, x: Shape) -> str | None:
        """PyTorch's warning for an input of this shape, or None for a 4-D input."""
        if len(x) == 3:
            return (
                "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                "where C is the channel dim. This behavior will change in a future release to "
                "interpret the input as one without a batch dimension, i.e. shape (C, H, W). "
                "To maintain the 1D channel-wise dropout behavior, please switch to using "
                "dropout1d instead."
            )
        if len(x) != 4:
            return (
                f"dropout2d: Received a {len(x)}-D input to dropout2d, which is deprecated "
                "and will result in an error in a future release. To retain the behavior "
                "and silence this warning, please use dropout instead. Note that dropout2d "
                "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, "
                "a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs)."
            )
        return None

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:2], *(1 for _ in shape[2:]))  # (N, C, 1, ..., 1)

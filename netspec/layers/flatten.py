"""Flatten. Mirrors torch/nn/modules/flatten.py."""

from __future__ import annotations

from typing import Any, Literal

from netspec.layers.base import Layer
from netspec.types import Int, Shape, ShapeError, format_shape, normalize_dim, prod


class Flatten(Layer):
    """Flattens dimensions start_dim..end_dim into one. Mirrors torch.nn.Flatten."""

    type: Literal["Flatten"] = "Flatten"
    start_dim: Int = 1
    """First dimension to flatten (the batch is dimension 0)."""
    end_dim: Int = -1
    """Last dimension to flatten."""

    def _span(self, rank: int) -> tuple[int, int]:
        start = normalize_dim(self.start_dim, rank, "start_dim")
        end = normalize_dim(self.end_dim, rank, "end_dim")
        if start > end:
            raise ShapeError(
                "flatten() has invalid args: start_dim cannot come after end_dim",
                field="start_dim",
                code="dim",
            )
        return start, end

    def output_shape(self, x: Shape) -> Shape:
        start, end = self._span(len(x))
        return (*x[:start], prod(x[start : end + 1]), *x[end + 1 :])

    def mixes_samples(self, x: Shape) -> bool:
        start, end = self._span(len(x))
        return start == 0 and end > 0

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        ctx.save(x.shape)
        start, end = self._span(x.ndim)
        merged = prod(x.shape[start : end + 1])  # not -1: an empty batch has no size to divide
        return x.reshape(*x.shape[:start], merged, *x.shape[end + 1 :])

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        (shape,) = ctx.saved
        return g.reshape(shape)

    def describe_flattening(self, x: Shape) -> str:
        """`(N, 16, 5, 5) = 400`: used in hints about the layer after a Flatten."""
        start, end = self._span(len(x))
        return f"{format_shape(x)} = {prod(x[start : end + 1])}"

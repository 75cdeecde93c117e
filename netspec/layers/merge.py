"""Add and Concat: the structural layers that join branches (residual blocks, Inception).

PyTorch writes these as `x + y` and `torch.cat`; netspec names them as layers, as Keras does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netspec.layers.base import Layer
from netspec.types import Int, Shape, ShapeError, format_shape, normalize_dim


def _shapes(shapes: tuple[Shape, ...]) -> str:
    return ", ".join(format_shape(s) for s in shapes)


class Add(Layer):
    """Elementwise sum of two or more inputs of the same shape (`x + y` in PyTorch)."""

    type: Literal["Add"] = "Add"
    arity: ClassVar[int | None] = None

    def output_shape(self, *xs: Shape) -> Shape:
        if any(x != xs[0] for x in xs[1:]):
            raise ShapeError(f"Add needs inputs of one shape, received {_shapes(xs)}", code="merge")
        return xs[0]

    def forward(self, p: Any, xs: list, ctx: Any) -> Any:
        ctx.save(len(xs))
        total = xs[0] + xs[1]
        for x in xs[2:]:
            total += x
        return total

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> list:
        (count,) = ctx.saved
        return [g] * count


class Concat(Layer):
    """Joins two or more inputs along `dim` (torch.cat); other dimensions must agree."""

    type: Literal["Concat"] = "Concat"
    dim: Int = 1
    """Dimension to join along (the batch is dimension 0)."""
    arity: ClassVar[int | None] = None

    def _axis(self, rank: int) -> int:
        return normalize_dim(self.dim, rank, "dim")

    def mixes_samples(self, *xs: Shape) -> bool:
        return self._axis(len(xs[0])) == 0

    def output_shape(self, *xs: Shape) -> Shape:
        rank = len(xs[0])
        if any(len(x) != rank for x in xs):
            raise ShapeError(
                f"Concat needs inputs of one rank, received {_shapes(xs)}", code="merge"
            )
        axis = self._axis(rank)
        others = [x[:axis] + x[axis + 1 :] for x in xs]
        if any(o != others[0] for o in others[1:]):
            raise ShapeError(
                f"Concat along dim {self.dim} needs the other dimensions to agree, "
                f"received {_shapes(xs)}",
                code="merge",
            )
        sizes = [x[axis] for x in xs]
        total = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
        return (*xs[0][:axis], total, *xs[0][axis + 1 :])

    def forward(self, p: Any, xs: list, ctx: Any) -> Any:
        axis = self._axis(xs[0].ndim)
        ctx.save(axis, [x.shape[axis] for x in xs])
        return ctx.xp.concatenate(xs, axis=axis)

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> list:
        axis, sizes = ctx.saved
        bounds = [sum(sizes[:i]) for i in range(1, len(sizes))]
        return ctx.xp.split(g, bounds, axis=axis)

"""Linear and Identity. Mirrors torch/nn/modules/linear.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from netspec.layers.base import Layer, kaiming_uniform_bound
from netspec.types import (
    Bool,
    DeviceName,
    DTypeName,
    NonNegativeInt,
    Shape,
    ShapeError,
    format_shape,
    prod,
)


class Linear(Layer):
    """y = x W^T + b over the last axis. Mirrors torch.nn.Linear."""

    type: Literal["Linear"] = "Linear"
    in_features: NonNegativeInt | None = None
    """Size of each input sample (the last dimension); left out, the input's (as LazyLinear)."""
    out_features: NonNegativeInt
    """Size of each output sample."""
    bias: Bool = True
    """If false, the layer learns no additive bias."""
    device: DeviceName | None = None
    """Accepted for compatibility; the network's device decides placement."""
    dtype: DTypeName | None = None
    """Accepted for compatibility; the network runs in one dtype."""

    def inferred_arguments(self, x: Shape) -> dict[str, Any]:
        if self.in_features is not None or len(x) < 2:
            return {}
        return {"in_features": x[-1]}

    def output_shape(self, x: Shape) -> Shape:
        recovered = (*x[:-1], self.out_features) if len(x) >= 2 else (x[0], self.out_features)
        if len(x) < 2:
            raise ShapeError(
                f"Linear expects (N, *, in_features), received {format_shape(x)}",
                recovered=recovered,
                code="rank",
            )
        if x[-1] != self.in_features:
            hint = f"set in_features: {x[-1]}"
            raise ShapeError(
                f"in_features is {self.in_features} but the input {format_shape(x)} "
                f"has {x[-1]} features",
                field="in_features",
                hint=hint,
                recovered=recovered,
                code="features",
            )
        return recovered

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def macs(self, inputs: Sequence[tuple[int, ...]], output: tuple[int, ...]) -> int:
        (x,) = inputs
        return (prod(x[:-1]) or 0) * self.in_features * self.out_features

    def init(self, rng: Any) -> dict[str, Any]:
        bound = kaiming_uniform_bound(self.in_features)
        values = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))}
        if self.bias:
            values["bias"] = rng.uniform(-bound, bound, (self.out_features,))
        return values

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:  # x: (N, *, in)
        ctx.save(x)
        y = x @ p.weight.T  # (N, *, out)
        if self.bias:
            y += p.bias
        return y

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:  # g: (N, *, out)
        (x,) = ctx.saved
        rows = math.prod(g.shape[:-1])  # not -1: out_features may be 0, as in PyTorch
        g2 = g.reshape(rows, g.shape[-1])  # (N*, out)
        grads.weight += g2.T @ x.reshape(rows, x.shape[-1])  # (out, in)
        if self.bias:
            grads.bias += g2.sum(0)
        return g @ p.weight  # (N, *, in)


class Identity(Layer):
    """y = x. Mirrors torch.nn.Identity (which ignores any arguments; this takes none)."""

    keeps_shape: ClassVar[bool] = True

    type: Literal["Identity"] = "Identity"

    def output_shape(self, x: Shape) -> Shape:
        return x

    def forward(self, p: Any, x: Any, ctx: Any) -> Any:
        return x

    def backward(self, p: Any, g: Any, ctx: Any, grads: Any) -> Any:
        return g

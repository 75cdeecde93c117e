"""RMSprop: torch.optim.RMSprop's schema (`train.optimizer: {RMSprop: {...}}`) and its
single-tensor step."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import model_validator

from netspec.errors import ArgError
from netspec.optim.base import (
    NonNegative,
    Optimizer,
    OptimizerSpec,
    backend,
    fused,
    lerp_scalars,
)
from netspec.types import Bool, Float


class RMSpropOptimizer(Optimizer):
    """torch.optim.RMSprop's single-tensor step."""

    spec: RMSprop

    def step_scalars(self) -> dict[str, float]:
        return {"lr": self.lr, "neg_lr": -self.lr}

    def _update(self, param: Any, grad: Any, state: dict[str, Any], scalars: dict) -> None:
        spec, xp = self.spec, backend.array_module(param)
        if not state:
            state.update({name: xp.zeros_like(param) for name in spec.state_buffers()})
        fused.kernel(xp, "rmsprop")(
            param,
            grad,
            state["square_avg"],
            state.get("grad_avg"),
            state.get("momentum_buffer"),
            alpha=spec.alpha,
            **lerp_scalars(1 - spec.alpha),
            eps=spec.eps,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            maximize=spec.maximize,
            decays=spec.weight_decay != 0,
            **scalars,
        )


class RMSprop(OptimizerSpec):
    """RMSprop: steps scaled by a running average of squared gradients, optionally centered
    and with momentum. Mirrors torch.optim.RMSprop.

    Differences: one step count for all parameters, as for Adam ("step" in the state dict).
    """

    runtime = RMSpropOptimizer

    type: Literal["RMSprop"] = "RMSprop"
    lr: Annotated[Float, NonNegative] = 1e-2
    """Learning rate."""
    alpha: Annotated[Float, NonNegative] = 0.99
    """Smoothing constant: the share of the squared-gradient average kept at each step."""
    eps: Annotated[Float, NonNegative] = 1e-8
    """Added to the denominator, after its square root, for numerical stability."""
    weight_decay: Annotated[Float, NonNegative] = 0.0
    """L2 penalty: weight_decay * param is added to the gradient."""
    momentum: Annotated[Float, NonNegative] = 0.0
    """Momentum factor; 0 keeps no momentum buffer."""
    centered: Bool = False
    """Centered RMSprop: divide by an estimate of the gradient's variance, not its square."""
    capturable: Bool = False
    """Accepted for compatibility (CUDA-graph capture); no-op here."""
    foreach: Bool | None = None
    """Accepted for compatibility; an implementation choice with the same result (no-op)."""
    maximize: Bool = False
    """Maximise the objective: step along +gradient."""
    differentiable: Bool = False
    """Accepted for compatibility; netspec does not differentiate through the step (no-op)."""

    @model_validator(mode="after")
    def _check(self) -> RMSprop:
        # torch.optim.RMSprop's order and words; `not x >= 0` refuses NaN, as its
        # `not 0.0 <= x` does.
        for field, words in (
            ("lr", "learning rate"),
            ("eps", "epsilon value"),
            ("momentum", "momentum value"),
            ("weight_decay", "weight_decay value"),
            ("alpha", "alpha value"),
        ):
            value = getattr(self, field)
            if not value >= 0.0:
                raise ArgError(field, f"Invalid {words}: {value}")
        return self

    def state_buffers(self) -> tuple[str, ...]:
        momentum = ("momentum_buffer",) if self.momentum > 0 else ()
        return ("square_avg", *momentum, *(("grad_avg",) if self.centered else ()))

"""SGD: torch.optim.SGD's schema (`train.optimizer: {SGD: {...}}`) and its single-tensor step."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, model_validator

from netspec.errors import ArgError
from netspec.optim.base import (
    FUSED_RULE,
    NonNegative,
    Optimizer,
    OptimizerSpec,
    backend,
    fused,
)
from netspec.types import Bool, Float


class SGDOptimizer(Optimizer):
    """torch.optim.SGD's single-tensor step."""

    spec: SGD

    def _update(self, param: Any, grad: Any, state: dict[str, Any], scalars: dict) -> None:
        spec = self.spec
        buffer, first = state.get("momentum_buffer"), False
        if spec.momentum != 0 and buffer is None:  # the first step starts it at the gradient
            buffer, first = backend.array_module(param).empty_like(param), True
            state["momentum_buffer"] = buffer
        fused.kernel(backend.array_module(param), "sgd")(
            param,
            grad,
            buffer,
            lr=scalars["lr"],
            momentum=spec.momentum,
            keep=1 - spec.dampening,
            weight_decay=spec.weight_decay,
            maximize=spec.maximize,
            decays=spec.weight_decay != 0,
            first=first,
            nesterov=spec.nesterov,
        )


class SGD(OptimizerSpec):
    """Stochastic gradient descent, with momentum, dampening and Nesterov. Mirrors torch.optim.SGD.

    Differences: gradients are always present (netspec's zero_grad fills zeros, like torch's
    `zero_grad(set_to_none=False)`), so every parameter is stepped every time.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                FUSED_RULE,
                {  # the editor's copy of the nesterov rule in `_check`
                    "if": {"properties": {"nesterov": {"const": True}}, "required": ["nesterov"]},
                    "then": {
                        "required": ["momentum"],
                        "properties": {
                            "momentum": {"exclusiveMinimum": 0},
                            "dampening": {"const": 0},
                        },
                    },
                },
            ]
        }
    )
    runtime = SGDOptimizer

    type: Literal["SGD"] = "SGD"
    lr: Annotated[Float, NonNegative] = 1e-3
    """Learning rate (torch 2.13's default is 0.001)."""
    momentum: Annotated[Float, NonNegative] = 0.0
    """Momentum factor; 0 disables the momentum buffer."""
    dampening: Float = 0.0
    """Dampening for momentum: the new gradient enters the buffer times (1 - dampening)."""
    weight_decay: Annotated[Float, NonNegative] = 0.0
    """L2 penalty: weight_decay * param is added to the gradient."""
    nesterov: Bool = False
    """Nesterov momentum (needs momentum > 0 and dampening 0)."""
    maximize: Bool = False
    """Maximise the objective: step along +gradient."""
    foreach: Bool | None = None
    """Accepted for compatibility; an implementation choice with the same result (no-op)."""
    differentiable: Bool = False
    """Accepted for compatibility; netspec does not differentiate through the step (no-op)."""
    fused: Bool | None = None
    """Accepted for compatibility; an implementation choice with the same result (no-op)."""

    @model_validator(mode="after")
    def _check(self) -> SGD:
        if self.lr < 0.0:  # NaN passes, as in torch.optim.SGD
            raise ArgError("lr", f"Invalid learning rate: {self.lr}")
        if self.momentum < 0.0:
            raise ArgError("momentum", f"Invalid momentum value: {self.momentum}")
        if self.weight_decay < 0.0:
            raise ArgError("weight_decay", f"Invalid weight_decay value: {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ArgError(
                "nesterov",
                "Nesterov momentum requires a momentum and zero dampening",
                "set momentum > 0 and dampening: 0, or nesterov: false",
            )
        self._check_fused(self.foreach, self.fused, self.differentiable)
        return self

    def state_buffers(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

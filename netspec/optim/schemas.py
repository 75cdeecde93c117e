"""Optimizer schemas: `train.optimizer`, mirroring torch.optim's constructors (without
`params`), their defaults and their constructor-time errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from netspec.errors import ArgError
from netspec.types import Bool, Bounds, Float


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# `(beta1, beta2)`; a YAML list stands for the tuple.
FloatPair = Annotated[tuple[Float, Float], BeforeValidator(_list_to_tuple)]
NonNegative = Bounds(minimum=0)
# The editor's copy of `_check_fused`.
_FUSED_RULE = {
    "if": {"properties": {"fused": {"const": True}}, "required": ["fused"]},
    "then": {
        "properties": {"differentiable": {"const": False}, "foreach": {"enum": [False, None]}}
    },
}


class OptimizerSpec(BaseModel):
    """Base of every optimizer schema: `type` plus torch.optim's arguments (without params)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k != "type"}

    def _check_fused(self, foreach: bool | None, fused: bool | None, differentiable: bool) -> None:
        if fused and differentiable:
            raise ArgError("fused", "`fused` does not support `differentiable`")
        if fused and foreach:
            raise ArgError("fused", "`fused` and `foreach` cannot be `True` together.")


class SGD(OptimizerSpec):
    """Stochastic gradient descent, with momentum, dampening and Nesterov. Mirrors torch.optim.SGD.

    Differences: gradients are always present (netspec's zero_grad fills zeros, like torch's
    `zero_grad(set_to_none=False)`), so every parameter is stepped every time.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                _FUSED_RULE,
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


class _AdamFamily(OptimizerSpec):
    """The arguments Adam and AdamW share (torch.optim.AdamW subclasses Adam)."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_FUSED_RULE]})

    type: Literal["Adam", "AdamW"]  # declared first so that it leads the JSON schema too
    lr: Annotated[Float, NonNegative] = 1e-3
    """Learning rate."""
    betas: Annotated[FloatPair, Bounds(minimum=0, exclusiveMaximum=1)] = (0.9, 0.999)
    """Decay rates of the running averages of the gradient and of its square."""
    eps: Annotated[Float, NonNegative] = 1e-8
    """Added to the denominator for numerical stability."""
    weight_decay: Annotated[Float, NonNegative] = 0.0
    """L2 penalty added to the gradient (decoupled: see decoupled_weight_decay)."""
    amsgrad: Bool = False
    """Use the maximum of all second-moment averages so far (AMSGrad)."""
    foreach: Bool | None = None
    """Accepted for compatibility; an implementation choice with the same result (no-op)."""
    maximize: Bool = False
    """Maximise the objective: step along +gradient."""
    capturable: Bool = False
    """Accepted for compatibility (CUDA-graph capture); no-op here."""
    differentiable: Bool = False
    """Accepted for compatibility; netspec does not differentiate through the step (no-op)."""
    fused: Bool | None = None
    """Accepted for compatibility; an implementation choice with the same result (no-op)."""

    @property
    def decouples_weight_decay(self) -> bool:
        """Whether weight decay multiplies the weights instead of joining the gradient."""
        return False

    @model_validator(mode="after")
    def _check(self) -> _AdamFamily:
        # `not x >= 0` refuses NaN too, as torch.optim.Adam's `not 0.0 <= x` does.
        if not self.lr >= 0.0:
            raise ArgError("lr", f"Invalid learning rate: {self.lr}")
        if not self.eps >= 0.0:
            raise ArgError("eps", f"Invalid epsilon value: {self.eps}")
        for index, beta in enumerate(self.betas):
            if not 0.0 <= beta < 1.0:
                raise ArgError("betas", f"Invalid beta parameter at index {index}: {beta}")
        if not self.weight_decay >= 0.0:
            raise ArgError("weight_decay", f"Invalid weight_decay value: {self.weight_decay}")
        self._check_fused(self.foreach, self.fused, self.differentiable)
        return self


class Adam(_AdamFamily):
    """Adam, optionally AMSGrad and decoupled weight decay. Mirrors torch.optim.Adam.

    Differences: one step count for all parameters ("step" in the state dict; torch keeps one
    per parameter, equal whenever every parameter has a gradient, which netspec guarantees).
    torch refuses `betas` mixing an int and a float; a YAML int is taken as a float here.
    """

    type: Literal["Adam"] = "Adam"
    decoupled_weight_decay: Bool = False
    """Decay the weights directly, param *= 1 - lr * weight_decay (AdamW's rule)."""

    @property
    def decouples_weight_decay(self) -> bool:
        return self.decoupled_weight_decay


class AdamW(_AdamFamily):
    """Adam with decoupled weight decay. Mirrors torch.optim.AdamW (see Adam's differences)."""

    type: Literal["AdamW"] = "AdamW"
    weight_decay: Annotated[Float, NonNegative] = 1e-2
    """Decoupled weight decay: param *= 1 - lr * weight_decay before the Adam step."""

    @property
    def decouples_weight_decay(self) -> bool:
        return True


OPTIMIZERS: tuple[type[OptimizerSpec], ...] = (SGD, Adam, AdamW)
OPTIMIZER_TYPES: dict[str, type[OptimizerSpec]] = {
    cls.model_fields["type"].default: cls for cls in OPTIMIZERS
}
AnyOptimizer = Annotated[Union[OPTIMIZERS], Field(discriminator="type")]  # noqa: UP007

"""Adam and AdamW: torch.optim.Adam's and torch.optim.AdamW's schemas and their shared
single-tensor step (AdamW is Adam with decoupled weight decay, as in torch)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, model_validator

from netspec.errors import ArgError
from netspec.optim.base import (
    FUSED_RULE,
    FloatPair,
    NonNegative,
    Optimizer,
    OptimizerSpec,
    backend,
    fused,
    lerp_scalars,
)
from netspec.types import Bool, Bounds, Float


class AdamOptimizer(Optimizer):
    """torch.optim.Adam's single-tensor step (AdamW: Adam with decoupled weight decay)."""

    spec: Adam | AdamW

    def step_scalars(self) -> dict[str, float]:
        # Python floats, as torch computes them: bias corrections of the running averages.
        spec, lr = self.spec, self.lr
        beta1, beta2 = spec.betas
        return {
            "decay": 1 - lr * spec.weight_decay,
            "neg_step_size": -(lr / (1 - beta1**self.steps)),
            "bias_correction2_sqrt": (1 - beta2**self.steps) ** 0.5,
        }

    def _update(self, param: Any, grad: Any, state: dict[str, Any], scalars: dict) -> None:
        spec, xp = self.spec, backend.array_module(param)
        beta1, beta2 = spec.betas
        if not state:
            state.update({name: xp.zeros_like(param) for name in spec.state_buffers()})
        fused.kernel(xp, "adam")(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq"),
            weight_decay=spec.weight_decay,
            **lerp_scalars(1 - beta1),
            beta2=beta2,
            rest2=1 - beta2,
            eps=spec.eps,
            maximize=spec.maximize,
            decays=spec.weight_decay != 0,
            decoupled=spec.decouples_weight_decay,
            **scalars,
        )


class _AdamFamily(OptimizerSpec):
    """The arguments Adam and AdamW share (torch.optim.AdamW subclasses Adam)."""

    model_config = ConfigDict(json_schema_extra={"allOf": [FUSED_RULE]})
    runtime = AdamOptimizer

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

    def state_buffers(self) -> tuple[str, ...]:
        names = ("exp_avg", "exp_avg_sq")
        return (*names, "max_exp_avg_sq") if self.amsgrad else names


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

"""Learning-rate schedules: schemas that mirror torch.optim.lr_scheduler's constructors, and
a `Scheduler` that sets an optimizer's `lr` once per epoch with torch's own formulas.

torch computes most schedules recursively from the current lr (the "chainable" form, e.g.
CosineAnnealingLR's ratio of cosines), not in closed form; the two differ in the last bits,
so this follows the recursive form to reproduce torch's sequences to rounding.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netspec.errors import ArgError
from netspec.ops.backend import to_numpy
from netspec.optim import Optimizer, OptimizerStateError
from netspec.types import NOT_ZERO, Bounds, Float, Int


class ScheduleSpec(BaseModel):
    """Base of every schedule schema: `type` plus torch's arguments (without the optimizer)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k != "type"}


class EpochSchedule(ScheduleSpec):
    """A schedule driven by the epoch count alone (torch's LRScheduler subclasses)."""

    last_epoch: Int = -1
    """Index of the last epoch; -1 starts afresh, k resumes as if k + 1 epochs were done."""

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        """torch's get_lr: the lr for `epoch` from the current `lr` (`initial`: at construction)."""
        return lr


class StepLR(EpochSchedule):
    """lr *= gamma every step_size epochs. Mirrors torch.optim.lr_scheduler.StepLR.

    Difference: step_size 0 is refused here; torch accepts it and divides by zero at the
    first step.
    """

    type: Literal["StepLR"] = "StepLR"
    step_size: Annotated[Int, Bounds(**NOT_ZERO)]
    """Period of learning-rate decay, in epochs."""
    gamma: Float = 0.1
    """Multiplicative factor of learning-rate decay."""

    @model_validator(mode="after")
    def _check(self) -> StepLR:
        if self.step_size == 0:
            raise ArgError("step_size", "step_size must not be 0 (torch divides by it)")
        return self

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        if epoch == 0 or epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class MultiStepLR(EpochSchedule):
    """lr *= gamma at each milestone epoch (gamma**n if listed n times).
    Mirrors torch.optim.lr_scheduler.MultiStepLR."""

    type: Literal["MultiStepLR"] = "MultiStepLR"
    milestones: list[Int]
    """Epoch indices at which to decay (torch's docs ask for increasing ones)."""
    gamma: Float = 0.1
    """Multiplicative factor of learning-rate decay."""

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        counts = Counter(self.milestones)
        if epoch not in counts:
            return lr
        return lr * self.gamma ** counts[epoch]


class ExponentialLR(EpochSchedule):
    """lr *= gamma every epoch. Mirrors torch.optim.lr_scheduler.ExponentialLR."""

    type: Literal["ExponentialLR"] = "ExponentialLR"
    gamma: Float
    """Multiplicative factor of learning-rate decay."""

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        return lr if initial else lr * self.gamma


class CosineAnnealingLR(EpochSchedule):
    """Cosine annealing from the initial lr to eta_min over T_max epochs, then back up.
    Mirrors torch.optim.lr_scheduler.CosineAnnealingLR (its recursive form).

    Difference: T_max 0 is refused here; torch accepts it and divides by zero at the first
    step.
    """

    type: Literal["CosineAnnealingLR"] = "CosineAnnealingLR"
    T_max: Annotated[Int, Bounds(**NOT_ZERO)]
    """Half period: epochs from the initial lr down to eta_min."""
    eta_min: Float = 0.0
    """Minimum learning rate."""

    @model_validator(mode="after")
    def _check(self) -> CosineAnnealingLR:
        if self.T_max == 0:
            raise ArgError("T_max", "T_max must not be 0 (torch divides by it)")
        return self

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        if initial:
            return lr
        if (epoch - 1 - self.T_max) % (2 * self.T_max) == 0:  # the lowest point: turn back up
            return lr + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        return (1 + math.cos(math.pi * epoch / self.T_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / self.T_max)
        ) * (lr - self.eta_min) + self.eta_min


class ReduceLROnPlateau(ScheduleSpec):
    """lr *= factor when a monitored metric stops improving for `patience` epochs.
    Mirrors torch.optim.lr_scheduler.ReduceLROnPlateau; `step(metric)` takes the metric."""

    type: Literal["ReduceLROnPlateau"] = "ReduceLROnPlateau"
    mode: Literal["min", "max"] = "min"
    """'min': the metric should go down (a loss); 'max': up (an accuracy)."""
    factor: Annotated[Float, Bounds(exclusiveMaximum=1)] = 0.1
    """Multiplicative factor of learning-rate reduction (< 1)."""
    patience: Int = 10
    """Epochs without improvement tolerated before reducing; the next bad one reduces."""
    threshold: Float = 1e-4
    """How much better than the best counts as an improvement (see threshold_mode)."""
    threshold_mode: Literal["rel", "abs"] = "rel"
    """'rel': better than best * (1 -/+ threshold); 'abs': than best -/+ threshold."""
    cooldown: Int = 0
    """Epochs to wait after a reduction before counting bad epochs again."""
    min_lr: Annotated[Float | list[Float], Bounds(minItems=1, maxItems=1)] = 0.0
    """Lower bound of the learning rate (a list: one per parameter group; netspec has one)."""
    eps: Float = 1e-8
    """Reductions smaller than eps are skipped."""

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("min", "max"):
            raise ArgError("mode", f"mode {value} is unknown!", "expected 'min' or 'max'")
        return value

    @field_validator("threshold_mode", mode="before")
    @classmethod
    def _known_threshold_mode(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("rel", "abs"):
            message = f"threshold mode {value} is unknown!"
            raise ArgError("threshold_mode", message, "expected 'rel' or 'abs'")
        return value

    @model_validator(mode="after")
    def _check(self) -> ReduceLROnPlateau:
        if self.factor >= 1.0:
            raise ArgError("factor", "Factor should be < 1.0.")
        if isinstance(self.min_lr, list) and len(self.min_lr) != 1:
            message = f"expected 1 min_lrs, got {len(self.min_lr)}"
            raise ArgError("min_lr", message, "netspec's optimizer has one parameter group")
        return self

    @property
    def lower_bound(self) -> float:
        return self.min_lr[0] if isinstance(self.min_lr, list) else self.min_lr

    def is_better(self, value: float, best: float) -> bool:
        """torch's `_is_better`: does `value` improve on `best` by more than the threshold?"""
        if self.mode == "min" and self.threshold_mode == "rel":
            return value < best * (1.0 - self.threshold)
        if self.mode == "min":
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (self.threshold + 1.0)
        return value > best + self.threshold


SCHEDULES: tuple[type[ScheduleSpec], ...] = (
    StepLR,
    MultiStepLR,
    ExponentialLR,
    CosineAnnealingLR,
    ReduceLROnPlateau,
)
SCHEDULE_TYPES: dict[str, type[ScheduleSpec]] = {
    cls.model_fields["type"].default: cls for cls in SCHEDULES
}
AnySchedule = Annotated[Union[SCHEDULES], Field(discriminator="type")]  # noqa: UP007


# -- the runtime side ---------------------------------------------------------------------
class Scheduler:
    """Sets `optimizer.lr` once per epoch by a schedule, as torch.optim.lr_scheduler does.

    Build it after the optimizer: it takes the optimizer's lr as its base, and an epoch
    schedule takes its epoch-0 step at construction, as torch's does. Call `step(metric)`
    after each epoch's optimizer steps; ReduceLROnPlateau needs the metric, the others
    ignore it. The state dict is flat: 0-d NumPy arrays (`np.savez`-storable).
    """

    def __init__(self, spec: ScheduleSpec, optimizer: Optimizer):
        self.spec = spec
        self.optimizer = optimizer
        self.last_lr = optimizer.lr
        if isinstance(spec, ReduceLROnPlateau):
            self.state_names = ("last_epoch", "last_lr", "best", "num_bad_epochs", "cooldown")
            self.last_epoch = 0
            self.best = math.inf if spec.mode == "min" else -math.inf
            self.num_bad_epochs = 0
            self.cooldown = 0  # epochs of cooldown left (torch's cooldown_counter)
        else:
            self.state_names = ("last_epoch", "last_lr", "base_lr")
            self.base_lr = optimizer.lr
            self.last_epoch = spec.last_epoch  # type: ignore[attr-defined]
            self._advance(initial=True)

    @property
    def lr(self) -> float:
        """The learning rate this schedule set last (torch's get_last_lr()[0])."""
        return self.last_lr

    def step(self, metric: Any = None) -> None:
        """End of an epoch: move the learning rate on."""
        if isinstance(self.spec, ReduceLROnPlateau):
            if metric is None:
                raise OptimizerStateError("ReduceLROnPlateau.step needs the monitored metric")
            self._plateau_step(self.spec, float(metric))
        else:
            self._advance(initial=False)

    def _advance(self, initial: bool) -> None:
        self.last_epoch += 1
        spec: EpochSchedule = self.spec  # type: ignore[assignment]
        lr = spec.next_lr(self.optimizer.lr, self.base_lr, self.last_epoch, initial)
        self.optimizer.lr = self.last_lr = lr

    def _plateau_step(self, spec: ReduceLROnPlateau, metric: float) -> None:
        self.last_epoch += 1
        if spec.is_better(metric, self.best):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown > 0:
            self.cooldown -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > spec.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * spec.factor, spec.lower_bound)
            if old_lr - new_lr > spec.eps:
                self.optimizer.lr = new_lr
            self.cooldown, self.num_bad_epochs = spec.cooldown, 0
        self.last_lr = self.optimizer.lr

    def state_dict(self) -> dict[str, np.ndarray]:
        """The schedule's counters and rates, each a 0-d NumPy array (int64 or float64)."""
        return {name: np.asarray(getattr(self, name)) for name in self.state_names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; also sets the optimizer's lr to the restored last lr,
        so the order of loading the optimizer and the schedule does not matter."""
        names = set(self.state_names)
        if state.keys() != names:
            missing, unexpected = sorted(names - state.keys()), sorted(state.keys() - names)
            raise OptimizerStateError(
                f"{self.spec.type} state does not fit: "  # type: ignore[attr-defined]
                f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}"
            )
        for name in self.state_names:
            value = to_numpy(state[name])
            if value.ndim != 0:
                raise OptimizerStateError(f"schedule state '{name}' should be a scalar")
            kind = type(getattr(self, name))  # int counters stay ints, rates floats
            setattr(self, name, kind(value[()]))
        self.optimizer.lr = self.last_lr


def compile_schedule(spec: ScheduleSpec, optimizer: Optimizer) -> Scheduler:
    """The runtime schedule of `spec` over `optimizer`."""
    return Scheduler(spec, optimizer)

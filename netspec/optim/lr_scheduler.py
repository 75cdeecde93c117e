"""Learning-rate schedules, mirroring torch.optim.lr_scheduler: each schema with torch's
constructor arguments and defaults, and the runtime that steps it (scheduler.py holds what
they share: the bases, the registry, `Scheduler`, `compile_schedule`).

torch computes most schedules recursively from the current lr (the "chainable" form, e.g.
CosineAnnealingLR's ratio of cosines), not in closed form; the two differ in the last bits,
so this follows the recursive form to reproduce torch's sequences to rounding.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import field_validator, model_validator

from netspec.errors import ArgError
from netspec.optim.base import Optimizer, OptimizerStateError
from netspec.optim.scheduler import REGISTRY, EpochSchedule, Scheduler, ScheduleSpec
from netspec.optim.scheduler import compile_schedule as compile_schedule
from netspec.types import NOT_ZERO, Bounds, Float, Int


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


class PlateauScheduler(Scheduler):
    """ReduceLROnPlateau's runtime: counts epochs without improvement of the metric it is
    stepped with, and multiplies the lr by `factor` when they pass `patience`."""

    state_names = ("last_epoch", "last_lr", "best", "num_bad_epochs", "cooldown")
    spec: ReduceLROnPlateau

    def __init__(self, spec: ReduceLROnPlateau, optimizer: Optimizer):
        super().__init__(spec, optimizer)
        self.best = math.inf if spec.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown = 0  # epochs of cooldown left (torch's cooldown_counter)

    def step(self, metric: Any = None) -> None:
        if metric is None:
            raise OptimizerStateError("ReduceLROnPlateau.step needs the monitored metric")
        spec, metric = self.spec, float(metric)
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


class ReduceLROnPlateau(ScheduleSpec):
    """lr *= factor when a monitored metric stops improving for `patience` epochs.
    Mirrors torch.optim.lr_scheduler.ReduceLROnPlateau; `step(metric)` takes the metric."""

    runtime = PlateauScheduler

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

    def monitored_metric(self, has_validation: bool, classification: bool) -> str | None:
        """val_loss (loss without validation); in mode 'max', val_accuracy for
        classification (accuracy without validation)."""
        prefix = "val_" if has_validation else ""
        return prefix + ("accuracy" if self.mode == "max" and classification else "loss")

    def is_better(self, value: float, best: float) -> bool:
        """torch's `_is_better`: does `value` improve on `best` by more than the threshold?"""
        if self.mode == "min" and self.threshold_mode == "rel":
            return value < best * (1.0 - self.threshold)
        if self.mode == "min":
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (self.threshold + 1.0)
        return value > best + self.threshold


SCHEDULES = REGISTRY.classes()
SCHEDULE_TYPES = dict(REGISTRY.types)
AnySchedule = REGISTRY.union()

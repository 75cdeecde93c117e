"""What every learning-rate schedule shares: the schema base that `train.lr_schedule`
entries subclass (and that registers them), and the `Scheduler` runtime base that sets an
optimizer's lr once per epoch and saves and restores its own state. The schedules
themselves are in lr_scheduler.py, each schema with the runtime that steps it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from netspec.lazy import lazy_import
from netspec.optim.base import Optimizer, OptimizerStateError
from netspec.optim.registry import RegisteredSchema, Registry
from netspec.types import Int

np = lazy_import("numpy")
backend = lazy_import("netspec.ops.backend")


class Scheduler(ABC):
    """Sets `optimizer.lr` once per epoch by a schedule, as torch.optim.lr_scheduler does.

    `Scheduler(spec, optimizer)` builds the runtime the schedule names (`spec.runtime`), as
    `pathlib.Path(...)` builds a PosixPath. Build it after the optimizer: it takes the
    optimizer's lr as its base. Call `step(metric)` after each epoch's optimizer steps; a
    schedule that monitors a metric (`ScheduleSpec.monitored_metric`) needs it, the others
    ignore it. Each runtime names its state (`state_names`, attributes of its own); the
    state dict is flat: 0-d NumPy arrays (`np.savez`-storable).
    """

    state_names: ClassVar[tuple[str, ...]]

    def __new__(cls, spec: ScheduleSpec, optimizer: Optimizer) -> Scheduler:
        return super().__new__(spec.runtime if cls is Scheduler else cls)

    def __init__(self, spec: ScheduleSpec, optimizer: Optimizer):
        self.spec = spec
        self.optimizer = optimizer
        self.last_lr = optimizer.lr
        self.last_epoch = 0

    @property
    def lr(self) -> float:
        """The learning rate this schedule set last (torch's get_last_lr()[0])."""
        return self.last_lr

    @abstractmethod
    def step(self, metric: Any = None) -> None:
        """End of an epoch: move the learning rate on."""

    def state_dict(self) -> dict[str, Any]:
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
            value = backend.to_numpy(state[name])
            if value.ndim != 0:
                raise OptimizerStateError(f"schedule state '{name}' should be a scalar")
            kind = type(getattr(self, name))  # int counters stay ints, rates floats
            setattr(self, name, kind(value[()]))
        self.optimizer.lr = self.last_lr


class EpochScheduler(Scheduler):
    """The runtime of a schedule driven by the epoch count alone (torch's LRScheduler
    subclasses): it takes its epoch-0 step at construction, as torch's does."""

    state_names = ("last_epoch", "last_lr", "base_lr")
    spec: EpochSchedule

    def __init__(self, spec: EpochSchedule, optimizer: Optimizer):
        super().__init__(spec, optimizer)
        self.base_lr = optimizer.lr
        self.last_epoch = spec.last_epoch
        self._advance(initial=True)

    def step(self, metric: Any = None) -> None:
        self._advance(initial=False)

    def _advance(self, initial: bool) -> None:
        self.last_epoch += 1
        lr = self.spec.next_lr(self.optimizer.lr, self.base_lr, self.last_epoch, initial)
        self.optimizer.lr = self.last_lr = lr


REGISTRY: Registry[ScheduleSpec] = Registry("schedule")


class ScheduleSpec(RegisteredSchema):
    """Base of every schedule schema: `type` plus torch's arguments (without the optimizer).

    A subclass that names its `type` is registered when it is defined (see `Registry`) and
    says which `Scheduler` runs it (`runtime`).
    """

    registry: ClassVar[Registry] = REGISTRY
    runtime: ClassVar[type[Scheduler]]

    def monitored_metric(self, has_validation: bool, classification: bool) -> str | None:
        """The name of the epoch metric `Scheduler.step` takes, or None: it takes none."""
        return None


class EpochSchedule(ScheduleSpec):
    """A schedule driven by the epoch count alone (torch's LRScheduler subclasses)."""

    runtime = EpochScheduler

    last_epoch: Int = -1
    """Index of the last epoch; -1 starts afresh, k resumes as if k + 1 epochs were done."""

    def next_lr(self, lr: float, base_lr: float, epoch: int, initial: bool) -> float:
        """torch's get_lr: the lr for `epoch` from the current `lr` (`initial`: at construction)."""
        return lr


def compile_schedule(spec: ScheduleSpec, optimizer: Optimizer) -> Scheduler:
    """The runtime schedule of `spec` over `optimizer`."""
    return spec.runtime(spec, optimizer)

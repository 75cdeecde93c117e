"""The metrics a run watches and logs: the best checkpoint's and early stopping's monitors,
the value ReduceLROnPlateau steps on, and `metrics.jsonl` (one JSON line per epoch).

A monitor follows Keras' EarlyStopping rule: a value improves on the best one by more than
`min_delta` (down in mode 'min', up in 'max'; 'auto' means 'max' for accuracies), and the
run stops after `patience` epochs in a row without improvement.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.training.events import TrainingError

if TYPE_CHECKING:
    from netspec.frontend.spec import TrainSpec


class Monitor:
    """Tracks the best value of one metric (Keras' EarlyStopping rule with min_delta)."""

    def __init__(self, metric: str, mode: str, min_delta: float = 0.0, patience: int = 0):
        if mode == "auto":
            mode = "max" if metric.endswith("accuracy") else "min"
        self.metric, self.mode, self.min_delta, self.patience = metric, mode, min_delta, patience
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0

    def update(self, metrics: dict) -> bool:
        """Record an epoch's metrics; True when the monitored value improved."""
        value = metrics.get(self.metric)
        if value is None:
            self.wait += 1
            return False
        sign = 1.0 if self.mode == "min" else -1.0
        improved = self.best is None or sign * (value - self.best) < -self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, metrics["epoch"], 0
        else:
            self.wait += 1
        return improved

    @property
    def exhausted(self) -> bool:
        """Keras' rule: stop after `patience` epochs in a row without improvement (0: the
        first one)."""
        return self.wait >= max(self.patience, 1)

    def state(self) -> dict:
        return {
            "metric": self.metric,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
        }

    def load(self, state: dict) -> None:
        """Go on from a saved state; one of another metric (the spec changed) is ignored."""
        if state["metric"] == self.metric:
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.wait = state["wait"]


def monitors_for(
    train: TrainSpec, has_validation: bool, classification: bool, loss_type: str
) -> tuple[Monitor, Monitor | None]:
    """The monitor of best.npz and the early-stopping one (same metric when both)."""
    stopping = train.early_stopping
    if stopping is None:
        default = "val_loss" if has_validation else "loss"
        return Monitor(default, "auto"), None
    metric = stopping.monitor
    if metric.startswith("val_") and not has_validation:
        raise TrainingError(
            f"early_stopping monitors {metric}, but the data has no validation split",
            hint="set data.validation_split above 0, or monitor: " + metric.removeprefix("val_"),
        )
    if metric.endswith("accuracy") and not classification:
        raise TrainingError(
            f"early_stopping monitors {metric}, but accuracy is only measured for "
            f"CrossEntropyLoss (the spec's loss is {loss_type})",
            hint="monitor: " + metric.replace("accuracy", "loss"),
        )
    best = Monitor(metric, stopping.mode)
    return best, Monitor(metric, stopping.mode, stopping.min_delta, stopping.patience)


def plateau_metric(
    train: TrainSpec, metrics: dict, has_validation: bool, classification: bool
) -> float | None:
    """The value the lr schedule steps on: the epoch metric it monitors (ReduceLROnPlateau's
    `monitored_metric`), NaN when the epoch did not measure it; None for a schedule that
    monitors none."""
    schedule = train.lr_schedule
    name = schedule.monitored_metric(has_validation, classification) if schedule else None
    if name is None:
        return None
    value = metrics.get(name)
    return value if value is not None else math.nan


def finite_or_none(value: Any) -> Any:
    """Metrics log values: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """`metrics.jsonl` in a run's folder: one line of metrics per completed epoch.

    Never written through a symbolic link: a link there would have its target overwritten,
    which is not the run's file to change (O_NOFOLLOW, or a check where it is missing).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "metrics.jsonl"

    def start(self, history: list[dict]) -> None:
        """Start the file over from the (resumed) history: it always matches it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"cannot write to {self.folder}: {exc.strerror or exc}") from None
        lines = "".join(json.dumps(m) + "\n" for m in history)
        self._write(lines, os.O_TRUNC)

    def append(self, metrics: dict) -> None:
        self._write(json.dumps(metrics) + "\n", os.O_APPEND)

    def _write(self, text: str, mode: int) -> None:
        link = TrainingError(
            f"{self.path} is a symbolic link; netspec does not write through links",
            hint="remove the link (or write the run to another folder)",
        )
        if self.path.is_symlink():
            raise link
        flags = os.O_WRONLY | os.O_CREAT | mode | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # made a link between the check and the open
                raise link from None
            raise TrainingError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as log:
                log.write(text)
        except OSError as exc:
            raise TrainingError(f"cannot write {self.path}: {exc.strerror or exc}") from None

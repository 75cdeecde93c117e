"""What a training run tells the outside world: callbacks, results and training errors.

The library never prints: the trainer calls a `Callback`'s methods as things happen and
returns a `TrainResult` (`evaluate` an `EvalResult`); the CLI turns them into output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netspec.errors import NetspecError


class TrainingError(NetspecError):
    """Training cannot start or go on; `hint` says what to change."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; training stopped before that step's update."""

    def __init__(self, message: str, hint: str, epoch: int, step: int, checkpoint: Path | None):
        super().__init__(message, hint)
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint

    @classmethod
    def at(
        cls,
        loss: float,
        *,
        epoch: int,
        step: int,
        batch: int,
        batches: int,
        checkpoint: Path | None,
        writes_files: bool,
    ) -> NonFiniteLossError:
        """The error for `loss` at optimizer step `step`, batch `batch` of `batches` (both
        counted from 1); `checkpoint`: the last good one; `writes_files`: the run has a folder."""
        where = f"epoch {epoch}, step {step} (batch {batch} of {batches})"
        if checkpoint is not None:
            kept = f"; the last good checkpoint is {checkpoint}"
        elif writes_files:
            kept = "; no checkpoint was written (no epoch had completed)"
        else:
            kept = ""
        return cls(
            f"the loss became {loss} at {where}: training stopped before that update{kept}",
            hint="lower the learning rate, or check the data's scale (data.normalize)",
            epoch=epoch,
            step=step,
            checkpoint=checkpoint,
        )


class Callback:
    """Receives training events; override what you need. Raising KeyboardInterrupt from
    `on_batch_end` or `on_epoch_end` stops training as Ctrl-C does (a checkpoint is saved).
    A run that fails after `on_train_start` calls `on_train_error` with the error it is
    about to raise instead of `on_train_end`."""

    def on_train_start(self, run: RunInfo) -> None: ...
    def on_epoch_start(self, epoch: int, batches: int) -> None: ...
    def on_batch_end(self, epoch: int, batch: int, batches: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict) -> None: ...
    def on_checkpoint(self, kind: str, path: Path) -> None: ...
    def on_warning(self, message: str) -> None: ...
    def on_train_end(self, result: TrainResult) -> None: ...
    def on_train_error(self, error: Exception) -> None: ...


def emit(callbacks: Sequence[Callback], event: str, *args: Any) -> None:
    """Call `event` on every callback that has it (duck-typed: any object will do)."""
    for callback in callbacks:
        handler = getattr(callback, event, None)
        if handler is not None:
            handler(*args)


@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do (given to `Callback.on_train_start`)."""

    spec_name: str
    device: str
    epochs: int  # the target: training stops after this many epochs in all
    start_epoch: int  # epochs already done (a resumed run)
    batches: int  # per epoch
    batch_size: int
    train_samples: int
    val_samples: int
    classification: bool
    data_name: str
    out: Path | None
    resumed_from: Path | None


@dataclass
class TrainResult:
    """How a run ended, its metrics per epoch and the files it wrote."""

    history: list[dict]
    epochs: int  # epochs completed in all (resumed ones included)
    step: int
    stopped: str  # "completed" | "early_stopping" | "interrupted"
    best: dict | None = None  # {"monitor", "value", "epoch"} of best.npz
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    metrics_path: Path | None = None
    plot_path: Path | None = None
    batch: int = 0  # batches done in an unfinished epoch (after an interrupt)
    saved_on_interrupt: bool = False  # last_checkpoint holds the state at the interrupt
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted (a callback: SIGINT)

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


@dataclass
class EvalResult:
    """Loss and (classification) accuracy and confusion matrix over one split."""

    loss: float
    samples: int
    split: str  # "validation", or "training" when the data has no validation split
    accuracy: float | None = None
    confusion: np.ndarray | None = None  # (C, C): rows true class, columns prediction
    checkpoint_epoch: int | None = None
    recorded: dict | None = None  # the checkpoint's own metrics for its epoch, if logged
    warnings: list[str] = field(default_factory=list)

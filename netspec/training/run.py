"""One `fit()` call's parts, the work of an epoch, and how the run starts and ends.

An epoch: shuffled mini-batches (seeded) in train mode, one optimizer step each, then
validation in eval mode, the schedule's step (ReduceLROnPlateau gets val_loss, or
val_accuracy in mode 'max'), the monitors and the next position. The loss reported per
epoch is the mean of the batch losses weighted by batch size (a loss with reduction 'none'
is averaged, and its gradient is that of the average).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.data import batch_count, iterate_batches
from netspec.training.evaluation import (
    accuracy_counts,
    evaluate_arrays,
    first_output,
    loss_value,
    output_grads,
)
from netspec.training.events import Callback, NonFiniteLossError, RunInfo, TrainResult, emit
from netspec.training.metrics import MetricsLog, finite_or_none, plateau_metric

if TYPE_CHECKING:
    import numpy as np

    from netspec.frontend.spec import TrainSpec
    from netspec.optim import Optimizer
    from netspec.optim.lr_scheduler import Scheduler
    from netspec.training.data_parallel import DataParallel
    from netspec.training.interrupts import DeferredInterrupts
    from netspec.training.setup import RunSetup
    from netspec.training.state import RunState
    from netspec.training.step_graph import EagerStep


@dataclass
class Run:
    """What a trainer builds for one `fit()`: the settings, the compiled parts, the state
    a checkpoint keeps, and the run's bookkeeping (files written, whether the state is
    whole)."""

    train: TrainSpec
    setup: RunSetup
    optimizer: Optimizer
    scheduler: Scheduler | None
    state: RunState
    metrics_log: MetricsLog | None  # None: the run writes no files
    callbacks: list[Callback]  # the trainer's own (the plot) first, then the caller's
    interrupts: DeferredInterrupts
    shuffle: bool
    step: EagerStep | None  # the halves of a training step (step_graph.py: maybe CUDA graphs)
    parallel: DataParallel | None = None  # this process's part of a data-parallel run
    last_path: Path | None = None
    best_path: Path | None = None
    start_step: int = 0  # the step this fit() started from (a resumed run's)
    consistent: bool = True  # False while a step or an epoch's bookkeeping is half done
    saved_on_interrupt: bool = False
    epoch_started: float = field(default_factory=time.perf_counter)

    def emit(self, event: str, *args: Any) -> None:
        emit(self.callbacks, event, *args)

    @property
    def batches(self) -> int:
        """Batches per epoch."""
        return batch_count(len(self.setup.data.x_train), self.train.batch_size)

    def info(self, spec_name: str, device: str, out: Path | None, resume: Any) -> RunInfo:
        """What the run is about to do, for `on_train_start`."""
        data = self.setup.data
        return RunInfo(
            spec_name=spec_name,
            device=device,
            epochs=self.train.epochs,
            start_epoch=self.state.position.epoch,
            batches=self.batches,
            batch_size=self.train.batch_size,
            train_samples=len(data.x_train),
            val_samples=len(data.x_val),
            classification=self.setup.classification,
            data_name=data.name,
            out=out,
            resumed_from=Path(resume) if resume is not None else None,
        )

    def result(self, stopped: str) -> TrainResult:
        """How the run ended; `plot_path` is filled in by the plot's `on_train_end`."""
        state, monitor = self.state, self.state.best_monitor
        best = None
        if monitor.best is not None:
            best = {"monitor": monitor.metric, "value": monitor.best, "epoch": monitor.best_epoch}
        return TrainResult(
            history=list(state.history),
            epochs=state.position.epoch,
            step=state.position.step,
            stopped=stopped,
            best=best,
            last_checkpoint=self.last_path,
            best_checkpoint=self.best_path,
            metrics_path=self.metrics_log.path if self.metrics_log is not None else None,
            batch=state.position.batch,
            saved_on_interrupt=self.saved_on_interrupt,
            signal=(self.interrupts.signal or "SIGINT") if stopped == "interrupted" else None,
        )

    def elapsed(self) -> float:
        """Seconds spent in the current epoch (0 at its start, where a checkpoint needs none)."""
        return time.perf_counter() - self.epoch_started if self.state.position.batch else 0.0

    def train_epoch(self, epoch: int) -> None:
        data, pos, batches = self.setup.data, self.state.position, self.batches
        rng = self.state.rng
        rng.bit_generator.state = pos.epoch_rng  # a resumed run redraws the same order
        self.setup.net.train()
        self.epoch_started = time.perf_counter() - pos.elapsed
        stream = iterate_batches(
            data.x_train, data.y_train, self.train.batch_size, shuffle=self.shuffle, rng=rng
        )
        for index, (xb, yb) in enumerate(stream):
            if index < pos.batch:
                continue  # done before the checkpoint this run resumed from
            stop = self._train_step(xb, yb, epoch, batches)
            self._stop_if_asked(stop)
            self.emit("on_batch_end", epoch, pos.batch, batches, self._running())

    def _train_step(self, xb: np.ndarray, yb: np.ndarray, epoch: int, batches: int) -> str | None:
        """One optimizer step on a batch and its bookkeeping; in a data-parallel run, the
        signal some process received (every process stops after the same step)."""
        setup, pos = self.setup, self.state.position
        self.consistent = False  # until the step's bookkeeping is done
        stop = None
        if self.parallel is None:
            loss, correct, counted = self._local_step(xb, yb, epoch, batches)
        else:
            totals = self.parallel.step(
                xb, yb, self._signal(), lambda loss: self._stop_unless_finite(loss, epoch, batches)
            )
            loss, correct, counted, stop = totals.loss, totals.correct, totals.counted, totals.stop
        pos.loss_sum += loss * len(xb)
        pos.seen += len(xb)
        if setup.classification:
            pos.correct, pos.counted = pos.correct + correct, pos.counted + counted
        pos.batch, pos.step = pos.batch + 1, pos.step + 1
        self.consistent = True
        return stop

    def _local_step(self, xb: np.ndarray, yb: np.ndarray, epoch: int, batches: int):
        """(loss, correct, counted) of a step in this process alone."""
        setup, xp, step = self.setup, self.setup.xp, self.step
        assert step is not None
        x, target = xp.asarray(xb), xp.asarray(yb)
        out = step.forward(x)  # gradients zeroed, then the forward pass
        y = first_output(out)
        value = setup.loss(y, target)
        loss = loss_value(value)
        self._stop_unless_finite(loss, epoch, batches)
        mean_grad = None if value.ndim == 0 else xp.full(value.shape, 1 / value.size, value.dtype)
        grad = setup.loss.backward(mean_grad)
        # backward (nobody reads the data's gradient), then the optimizer step
        step.update(output_grads(out, grad))
        correct = counted = 0
        if setup.classification:
            correct, counted = accuracy_counts(y, target, setup)
        return loss, correct, counted

    def _signal(self) -> str | None:
        """The signal this process received and has not acted on, if any."""
        return self.interrupts.signal if self.interrupts.requested else None

    def _stop_if_asked(self, agreed: str | None = None) -> None:
        """KeyboardInterrupt once a signal came: this process's, or in a data-parallel run
        the one any process received, as the last collective said (`agreed`)."""
        if self.parallel is None:
            self.interrupts.check()
        elif agreed is not None:
            self.interrupts.signal = agreed
            raise KeyboardInterrupt

    def _stop_unless_finite(self, loss: float, epoch: int, batches: int) -> None:
        """NonFiniteLossError before the update of a NaN or infinite loss."""
        if math.isfinite(loss):
            return
        pos = self.state.position
        raise NonFiniteLossError.at(
            loss,
            epoch=epoch,
            step=pos.step + 1,
            batch=pos.batch + 1,
            batches=batches,
            checkpoint=self.last_path,
            writes_files=self.metrics_log is not None,
        )

    def _running(self) -> dict:
        pos, seconds = self.state.position, time.perf_counter() - self.epoch_started
        logs = {"loss": pos.loss_sum / pos.seen, "step": pos.step, "seconds": seconds}
        if self.setup.classification and pos.counted:
            logs["accuracy"] = pos.correct / pos.counted
        logs["samples_per_second"] = pos.seen / seconds if seconds > 0 else 0.0
        return logs

    def finish_epoch(self, epoch: int) -> tuple[dict, bool]:
        """The epoch's metrics, and whether the monitored one improved."""
        state = self.state
        metrics = self._epoch_metrics(epoch)
        self.consistent = False  # the epoch's bookkeeping is one unit
        state.history.append(metrics)
        data, classification = self.setup.data, self.setup.classification
        if self.scheduler is not None:
            self.scheduler.step(
                plateau_metric(self.train, metrics, data.has_validation, classification)
            )
        improved = state.best_monitor.update(metrics)
        if state.early is not None:
            state.early.update(metrics)
        state.next_epoch(epoch)
        self.consistent = True
        return metrics, improved

    def _epoch_metrics(self, epoch: int) -> dict:
        """The epoch's line of metrics.jsonl: training sums, then a validation pass."""
        setup, pos, data = self.setup, self.state.position, self.setup.data
        metrics: dict[str, Any] = {"epoch": epoch, "step": pos.step}
        metrics["loss"] = pos.loss_sum / pos.seen
        if setup.classification:
            metrics["accuracy"] = pos.correct / pos.counted if pos.counted else None
        if data.has_validation:
            val_loss, correct, counted, _ = evaluate_arrays(
                setup, data.x_val, data.y_val, self.train.batch_size, parallel=self.parallel
            )
            metrics["val_loss"] = val_loss
            if setup.classification:
                metrics["val_accuracy"] = correct / counted if counted else None
        parallel = self.parallel
        self._stop_if_asked(parallel.agreed_stop(self._signal()) if parallel else None)
        metrics["lr"] = self.optimizer.lr
        metrics["seconds"] = round(time.perf_counter() - self.epoch_started, 3)
        return {k: finite_or_none(v) for k, v in metrics.items()}

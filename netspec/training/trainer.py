"""Training: the loop behind `netspec train`.

    trainer = Trainer(spec, device="cpu", out="runs/digits", callbacks=[my_progress])
    result = trainer.fit()                      # or fit(resume="runs/digits/last.npz")
    evaluation = evaluate(spec, "runs/digits/best.npz")

One epoch: shuffled mini-batches (seeded) in train mode, then validation in eval mode, then
the schedule's step (ReduceLROnPlateau gets val_loss, or val_accuracy in mode 'max'), early
stopping, checkpoints (`last.npz` every epoch, `best.npz` when the monitored metric improves)
and a line of `metrics.jsonl`. The library never prints: progress goes to `Callback`s.

The pieces around the loop: run_setup.py (data, network, loss, settings), evaluation.py
(validation, accuracy), metrics.py (monitors, metrics.jsonl), resume.py (checkpoint
position), interrupts.py (Ctrl-C at batch boundaries), events.py (callbacks, results).
The loss reported per epoch is the mean of the batch losses weighted by batch size (a loss
with reduction 'none' is averaged, and its gradient is that of the average).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.data import batch_count, iterate_batches
from netspec.data.base import SHUFFLE_STREAM, seeded_rng
from netspec.ops.backend import get_xp
from netspec.optim import compile_optimizer
from netspec.optim.lr_scheduler import compile_schedule
from netspec.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netspec.training.evaluation import (
    accuracy_counts,
    evaluate,
    evaluate_arrays,
    first_output,
    loss_value,
)
from netspec.training.events import (
    Callback,
    EvalResult,
    NonFiniteLossError,
    RunInfo,
    TrainingError,
    TrainResult,
)
from netspec.training.interrupts import DeferredInterrupts
from netspec.training.metrics import MetricsLog, finite_or_none, monitors_for, plateau_metric
from netspec.training.run_folder import (
    RunExistsError,
    RunLock,
    clear_run,
    remove_if_empty,
    remove_stale_temporaries,
    run_files,
)
from netspec.training.setup import check_training_memory, prepare, train_settings
from netspec.training.state import (
    Position,
    check_same_network,
    lr_warning,
    restore_run,
    run_checkpoint,
)
from netspec.wording import plural

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec


class Trainer:
    """Trains a spec's network on its data (see the module docstring for one epoch).

    `out`: folder for last.npz, best.npz, metrics.jsonl and metrics.png (None: write
    nothing). A folder that holds another run is refused (RunExistsError) unless `fit`
    resumes from a checkpoint in it or `overwrite` is True (its run files are removed
    first); while the trainer writes the folder it holds its lock (RunLockedError for a
    second trainer). `epochs`, `batch_size`, `lr` and `seed` override the spec's `train:` section;
    a resumed run takes its seed and batch size from the checkpoint unless given, and
    `epochs` is the total to reach, resumed epochs included.
    """

    def __init__(
        self,
        spec: Spec,
        *,
        device: str = "cpu",
        out: str | Path | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        seed: int | None = None,
        callbacks: Sequence[Callback] = (),
        overwrite: bool = False,
    ):
        self.spec = spec
        self.device = device
        self.out = Path(out) if out is not None else None
        self.overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
        self.callbacks = list(callbacks)
        self.overwrite = overwrite

    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Train to the configured number of epochs (or an early stop, or Ctrl-C).

        Ctrl-C or SIGTERM (or a callback raising KeyboardInterrupt) stops at the next batch
        boundary, saves last.npz and returns with `stopped == "interrupted"` (`signal` says
        which); one before training starts raises KeyboardInterrupt (interrupts.Terminated
        for SIGTERM). A run that is finished (all epochs, or stopped early) does nothing
        more when resumed. A NaN or infinite loss
        raises NonFiniteLossError before that step's update, leaving checkpoints as they
        were. Other failures are NetspecErrors (DataError, CheckpointError, DeviceError...).
        """
        get_xp(self.device)
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise TrainingError(
                f"the output folder {self.out} is a file, not a folder",
                hint="choose another folder for the run's files",
            )
        self._interrupts = DeferredInterrupts()
        with self._interrupts.installed():
            created = self.out is not None and not self.out.exists()
            lock = self._take_folder(resume)
            try:
                return self._fit(resume)
            finally:
                if lock is not None:
                    lock.release()
                    if created:
                        remove_if_empty(self.out)  # type: ignore[arg-type]

    def _fit(self, resume: str | Path | None) -> TrainResult:
        checkpoint = load_checkpoint(resume, self.spec) if resume is not None else None
        self._build(checkpoint)
        if checkpoint is not None:
            self._restore(checkpoint, Path(resume))  # type: ignore[arg-type]
        if self.metrics_log is not None:
            self.metrics_log.start(self.history)
        self._emit("on_train_start", self._run_info(resume))
        for note in self._folder_notes:
            self._emit("on_warning", note)
        # A diverging run overflows on its way to a NaN loss; the clean NonFiniteLossError
        # says so, NumPy's RuntimeWarnings before it would only be noise.
        with (
            self._interrupts.deferring(),
            np.errstate(over="ignore", invalid="ignore", divide="ignore"),
        ):
            try:
                stopped = self._loop()
            except KeyboardInterrupt:
                stopped = self._interrupted()
            result = self._result(stopped)
        self._emit("on_train_end", result)
        return result

    def _take_folder(self, resume: str | Path | None) -> RunLock | None:
        """Lock the run folder, refuse to overwrite another run in it (unless told to),
        and clear what dead writers left there. None when the run writes no files."""
        self._folder_notes: list[str] = []
        if self.out is None:
            return None
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"cannot create {self.out}: {exc.strerror or exc}") from None
        lock = RunLock.acquire(self.out)
        try:
            takeover = lock.describe_takeover()
            if takeover is not None:
                self._folder_notes.append(takeover)
            continues = resume is not None and _same_folder(Path(resume).parent, self.out)
            found = run_files(self.out)
            if found and not continues:
                if not self.overwrite:
                    raise RunExistsError(self.out, found)
                removed = clear_run(self.out)
                self._folder_notes.append(f"overwrote the run in {self.out} ({', '.join(removed)})")
            stale = remove_stale_temporaries(self.out)
            if stale:
                names = ", ".join(p.name for p in stale)
                self._folder_notes.append(f"removed what interrupted writes left: {names}")
        except BaseException:
            lock.release()
            raise
        return lock

    # -- set-up -----------------------------------------------------------------------------
    def _build(self, checkpoint: Checkpoint | None) -> None:
        """Settings, data, network, loss, optimizer, schedule and a fresh run position."""
        self.train = train_settings(self.spec, self.overrides, checkpoint)
        check_training_memory(self.spec, self.train, self.device)
        self.setup = prepare(self.spec, self.device, self.train.seed)
        self.optimizer = compile_optimizer(self.train.optimizer, self.setup.net)
        schedule = self.train.lr_schedule
        self.scheduler = compile_schedule(schedule, self.optimizer) if schedule else None
        self.rng = seeded_rng(self.train.seed, SHUFFLE_STREAM)
        self.pos = Position(epoch_rng=self.rng.bit_generator.state)
        self.history: list[dict] = []
        self.best_monitor, self.early = monitors_for(
            self.train,
            self.setup.data.has_validation,
            self.setup.classification,
            self.spec.loss.type,  # type: ignore[union-attr]
        )
        self.metrics_log = MetricsLog(self.out) if self.out is not None else None
        self.last_path: Path | None = None
        self.best_path: Path | None = None
        self._start_step = 0  # the step this fit() started from (a resumed run's)
        self._consistent = True  # False while a step or an epoch's bookkeeping is half done
        self._saved_on_interrupt = False
        self._plot_skip_said = False
        self._epoch_started = time.perf_counter()

    def _run_info(self, resume: str | Path | None) -> RunInfo:
        data = self.setup.data
        return RunInfo(
            spec_name=self.spec.name,
            device=self.device,
            epochs=self.train.epochs,
            start_epoch=self.pos.epoch,
            batches=self._batches(),
            batch_size=self.train.batch_size,
            train_samples=len(data.x_train),
            val_samples=len(data.x_val),
            classification=self.setup.classification,
            data_name=data.name,
            out=self.out,
            resumed_from=Path(resume) if resume is not None else None,
        )

    def _batches(self) -> int:
        return batch_count(len(self.setup.data.x_train), self.train.batch_size)

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> str:
        batches = self._batches()
        if self.early is not None and self.early.exhausted:
            early = self.early
            self._emit(
                "on_warning",
                f"nothing to do: the run stopped early after epoch {self.pos.epoch} "
                f"({early.metric} did not improve for {plural(early.wait, 'epoch')}; raise "
                "early_stopping.patience to train longer)",
            )
            return "early_stopping"
        if self.pos.epoch >= self.train.epochs:
            total = self.train.epochs
            self._emit(
                "on_warning",
                f"nothing to do: {self.pos.epoch} of {plural(total, 'epoch')} "
                f"{'is' if total == 1 else 'are'} done (ask for more epochs to train longer)",
            )
        while self.pos.epoch < self.train.epochs:
            epoch = self.pos.epoch + 1
            self._emit("on_epoch_start", epoch, batches)
            self._train_epoch(epoch, batches)
            metrics, improved = self._finish_epoch(epoch)
            self._epoch_files(metrics, improved)
            self._emit("on_epoch_end", epoch, metrics)
            if self.early is not None and self.early.exhausted:
                return "early_stopping"
        return "completed"

    def _train_epoch(self, epoch: int, batches: int) -> None:
        data, pos = self.setup.data, self.pos
        self.rng.bit_generator.state = pos.epoch_rng  # a resumed run redraws the same order
        self.setup.net.train()
        self._epoch_started = time.perf_counter() - pos.elapsed
        shuffle = self.train.shuffle and self.spec.data.shuffle  # type: ignore[union-attr]
        stream = iterate_batches(
            data.x_train, data.y_train, self.train.batch_size, shuffle=shuffle, rng=self.rng
        )
        for index, (xb, yb) in enumerate(stream):
            if index < pos.batch:
                continue  # done before the checkpoint this run resumed from
            self._train_step(xb, yb, epoch, batches)
            self._interrupts.check()
            self._emit("on_batch_end", epoch, pos.batch, batches, self._running())

    def _train_step(self, xb: np.ndarray, yb: np.ndarray, epoch: int, batches: int) -> None:
        setup, pos, xp = self.setup, self.pos, self.setup.net.xp
        self._consistent = False  # until the step's bookkeeping is done
        x, target = xp.asarray(xb), xp.asarray(yb)
        self.optimizer.zero_grad()
        out = setup.net(x)
        y = first_output(out)
        value = setup.loss(y, target)
        loss = loss_value(value)
        self._stop_unless_finite(loss, epoch, batches)
        mean_grad = None if value.ndim == 0 else xp.full(value.shape, 1 / value.size, value.dtype)
        grad = setup.loss.backward(mean_grad)
        grads = (grad, *[None] * (len(out) - 1)) if isinstance(out, tuple) else grad
        setup.net.backward(grads, input_grad=False)  # nobody reads the data's gradient
        self.optimizer.step()
        pos.loss_sum += loss * len(xb)
        pos.seen += len(xb)
        if setup.classification:
            correct, counted = accuracy_counts(y, target, setup)
            pos.correct, pos.counted = pos.correct + correct, pos.counted + counted
        pos.batch, pos.step = pos.batch + 1, pos.step + 1
        self._consistent = True

    def _running(self) -> dict:
        pos, seconds = self.pos, time.perf_counter() - self._epoch_started
        logs = {"loss": pos.loss_sum / pos.seen, "step": pos.step, "seconds": seconds}
        if self.setup.classification and pos.counted:
            logs["accuracy"] = pos.correct / pos.counted
        logs["samples_per_second"] = pos.seen / seconds if seconds > 0 else 0.0
        return logs

    def _finish_epoch(self, epoch: int) -> tuple[dict, bool]:
        metrics = self._epoch_metrics(epoch)
        self._consistent = False  # the epoch's bookkeeping is one unit
        self.history.append(metrics)
        data, classification = self.setup.data, self.setup.classification
        if self.scheduler is not None:
            self.scheduler.step(
                plateau_metric(self.train, metrics, data.has_validation, classification)
            )
        improved = self.best_monitor.update(metrics)
        if self.early is not None:
            self.early.update(metrics)
        self.pos.next_epoch(epoch, self.rng.bit_generator.state)
        self._consistent = True
        return metrics, improved

    def _epoch_metrics(self, epoch: int) -> dict:
        """The epoch's line of metrics.jsonl: training sums, then a validation pass."""
        setup, pos, data = self.setup, self.pos, self.setup.data
        metrics: dict[str, Any] = {"epoch": epoch, "step": pos.step}
        metrics["loss"] = pos.loss_sum / pos.seen
        if setup.classification:
            metrics["accuracy"] = pos.correct / pos.counted if pos.counted else None
        if data.has_validation:
            val_loss, correct, counted, _ = evaluate_arrays(
                setup, data.x_val, data.y_val, self.train.batch_size
            )
            metrics["val_loss"] = val_loss
            if setup.classification:
                metrics["val_accuracy"] = correct / counted if counted else None
        self._interrupts.check()
        metrics["lr"] = self.optimizer.lr
        metrics["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        return {k: finite_or_none(v) for k, v in metrics.items()}

    # -- faults -----------------------------------------------------------------------------
    def _stop_unless_finite(self, loss: float, epoch: int, batches: int) -> None:
        """NonFiniteLossError before the update of a NaN or infinite loss (the plot of the
        epochs so far is drawn: it often shows the divergence coming)."""
        if math.isfinite(loss):
            return
        self._write_plot()
        pos = self.pos
        raise NonFiniteLossError.at(
            loss,
            epoch=epoch,
            step=pos.step + 1,
            batch=pos.batch + 1,
            batches=batches,
            checkpoint=self.last_path,
            writes_files=self.out is not None,
        )

    def _interrupted(self) -> str:
        # A KeyboardInterrupt in the middle of a step (a second Ctrl-C) leaves half-updated
        # weights: then the checkpoints on disk are the last good state.
        if self.out is not None and self._consistent and self.pos.step > self._start_step:
            # best before last: a kill between the two never leaves best older than the
            # best epoch last records
            if self.pos.batch == 0 and self.best_monitor.best_epoch == self.pos.epoch > 0:
                self.best_path = self._save("best")
            self.last_path = self._save("last")
            self._saved_on_interrupt = True
        return "interrupted"

    # -- files ------------------------------------------------------------------------------
    def _epoch_files(self, metrics: dict, improved: bool) -> None:
        if self.metrics_log is None:
            return
        self.metrics_log.append(metrics)
        if improved:  # before last.npz: see _interrupted
            self.best_path = self._save("best")
        self.last_path = self._save("last")

    def _save(self, kind: str) -> Path:
        elapsed = time.perf_counter() - self._epoch_started if self.pos.batch else 0.0
        checkpoint = run_checkpoint(self, elapsed)
        path = save_checkpoint(self.out / f"{kind}.npz", checkpoint)  # type: ignore[operator]
        self._emit("on_checkpoint", kind, path)
        return path

    def _restore(self, checkpoint: Checkpoint, path: Path) -> None:
        warning = check_same_network(checkpoint, self.spec, self.setup.net, path)
        if warning is not None:
            self._emit("on_warning", warning)
        asked_lr = self.optimizer.lr  # what the spec (or the override) would start at
        restore_run(self, checkpoint, path, self._batches())
        lr_note = lr_warning(checkpoint, asked_lr, self.optimizer.lr, self.overrides["lr"])
        if lr_note is not None:
            self._emit("on_warning", lr_note)
        self._start_step = self.pos.step
        self.last_path = path
        if self.out is not None and (self.out / "best.npz").is_file():
            self.best_path = self.out / "best.npz"

    def _write_plot(self) -> Path | None:
        if self.out is None or not self.history:
            return None
        from netspec.cli import plot

        path = self.out / "metrics.png"
        if path.is_symlink():  # as metrics.jsonl: never write through a link
            self._emit("on_warning", f"{path} skipped: it is a symbolic link")
            return None
        if not plot.matplotlib_available():
            if not self._plot_skip_said:
                self._plot_skip_said = True
                self._emit("on_warning", f"{path} skipped: {plot.MISSING_MATPLOTLIB}")
            return None
        try:
            return plot.save_plot(self.history, path, title=self.spec.name)
        except Exception as exc:  # matplotlib fails in many ways (fonts, backends, disks)
            self._emit("on_warning", f"could not draw {path}: {exc}")
            return None

    def _result(self, stopped: str) -> TrainResult:
        monitor = self.best_monitor
        best = None
        if monitor.best is not None:
            best = {"monitor": monitor.metric, "value": monitor.best, "epoch": monitor.best_epoch}
        return TrainResult(
            history=list(self.history),
            epochs=self.pos.epoch,
            step=self.pos.step,
            stopped=stopped,
            best=best,
            last_checkpoint=self.last_path,
            best_checkpoint=self.best_path,
            metrics_path=self.metrics_log.path if self.metrics_log is not None else None,
            plot_path=self._write_plot(),
            batch=self.pos.batch,
            saved_on_interrupt=self._saved_on_interrupt,
            signal=(self._interrupts.signal or "SIGINT") if stopped == "interrupted" else None,
        )

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(*args)


def fit(spec: Spec, resume: str | Path | None = None, **options: Any) -> TrainResult:
    """`Trainer(spec, **options).fit(resume)` in one call (e.g. `out=`, `overwrite=True`)."""
    return Trainer(spec, **options).fit(resume)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


__all__ = [
    "Callback",
    "EvalResult",
    "NonFiniteLossError",
    "RunInfo",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "evaluate",
    "fit",
]

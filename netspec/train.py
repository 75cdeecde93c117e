"""Training and evaluation: the loop behind `netspec train` and `netspec eval`.

    trainer = Trainer(spec, device="cpu", out="runs/digits", callbacks=[my_progress])
    result = trainer.fit()                      # or fit(resume="runs/digits/last.npz")
    evaluation = evaluate(spec, "runs/digits/best.npz")

One epoch: shuffled mini-batches (seeded) in train mode, then validation in eval mode, then
the schedule's step (ReduceLROnPlateau gets val_loss, or val_accuracy in mode 'max'), early
stopping, checkpoints (`last.npz` every epoch, `best.npz` when the monitored metric improves)
and a line of `metrics.jsonl`. The library never prints: progress goes to `Callback`s.

Defaults for a spec without some sections: no `train:` trains with TrainSpec's defaults
(10 epochs, batches of 64, Adam at lr 1e-3, seed 0); no `loss:` or no `data:` is a
TrainingError (netspec cannot guess what to minimise or what to train on).

Classification means CrossEntropyLoss: accuracy compares the argmax over dim 1 with class
indices (ignore_index skipped) or with the argmax of class-probability targets. The loss
reported per epoch is the mean of the batch losses weighted by batch size (a loss with
reduction 'none' is averaged, and its gradient is that of the average).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from netspec.backend import get_xp, to_numpy
from netspec.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_fits,
    load_checkpoint,
    network_fingerprint,
    save_checkpoint,
    spec_meta,
)
from netspec.data import Dataset, batch_count, iterate_batches, load_dataset
from netspec.diagnostics import NetspecError
from netspec.network import StateDictError
from netspec.optim import OptimizerStateError, compile_optimizer
from netspec.schedule import ReduceLROnPlateau, compile_schedule

if TYPE_CHECKING:
    from netspec.losses import CompiledLoss
    from netspec.network import Network
    from netspec.spec import Spec, TrainSpec

_SHUFFLE_STREAM = 3  # data.py draws the split from stream 1 and synthetic data from 2
_UNUSED_RNG = np.random.default_rng(0)  # iterate_batches wants one even without shuffling


class TrainingError(NetspecError):
    """Training cannot start or go on; `hint` says what to change."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; training stopped before that step's update."""

    def __init__(self, message: str, hint: str, epoch: int, step: int, checkpoint: Path | None):
        super().__init__(message, hint)
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint


class Callback:
    """Receives training events; override what you need. Raising KeyboardInterrupt from
    `on_batch_end` or `on_epoch_end` stops training as Ctrl-C does (a checkpoint is saved)."""

    def on_train_start(self, run: RunInfo) -> None: ...
    def on_epoch_start(self, epoch: int, batches: int) -> None: ...
    def on_batch_end(self, epoch: int, batch: int, batches: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict) -> None: ...
    def on_checkpoint(self, kind: str, path: Path) -> None: ...
    def on_warning(self, message: str) -> None: ...
    def on_train_end(self, result: TrainResult) -> None: ...


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


# -- shared set-up ------------------------------------------------------------------------
@dataclass
class _Setup:
    net: Network
    loss: CompiledLoss
    data: Dataset
    classification: bool
    ignore_index: int | None


def _prepare(spec: Spec, device: str, seed: int) -> _Setup:
    """Device, data, network and loss for a spec; every failure is a NetspecError."""
    from netspec.graph import infer
    from netspec.losses import compile_loss
    from netspec.network import compile

    get_xp(device)  # a missing CuPy is the first thing to say
    if spec.loss is None:
        raise TrainingError(
            f"spec '{spec.name}' has no `loss:` section, so there is nothing to minimise",
            hint="add e.g. `loss: CrossEntropyLoss` (classification) or `loss: MSELoss`",
        )
    if spec.data is None:
        raise TrainingError(
            f"spec '{spec.name}' has no `data:` section, so there is nothing to train on",
            hint="add e.g. `data: {source: digits}`, `{source: npz, path: data.npz}` "
            "or `{source: synthetic}`",
        )
    output_shape = infer(spec).output_shapes[0]
    data = load_dataset(
        spec.data,
        input_shape=tuple(spec.input.shape),
        output_shape=output_shape,
        loss_type=spec.loss.type,
        seed=seed,
        spec_dir=spec.spec_dir,
        dtype=spec.input.dtype,
    )
    net = compile(spec, device=device, seed=seed)
    loss = compile_loss(spec.loss, device=device, dtype=net.dtype)
    classification = spec.loss.type == "CrossEntropyLoss"
    ignore_index = getattr(spec.loss, "ignore_index", None)
    return _Setup(net, loss, data, classification, ignore_index)


def _first_output(y: Any) -> Any:
    return y[0] if isinstance(y, tuple) else y


def _loss_value(value: Any) -> float:
    """The loss as one float: the value itself, or the mean of a reduction='none' loss."""
    return float(value) if value.ndim == 0 else float(value.mean())


def _hits(y: Any, target: Any, setup: _Setup) -> tuple[Any, Any, Any]:
    """Predictions, true classes and a mask of the elements that count, all (N, d1, ...)."""
    predicted = y.argmax(axis=1)
    if target.dtype.kind == "f":  # class probabilities
        return predicted, target.argmax(axis=1), None
    valid = None if setup.ignore_index is None else target != setup.ignore_index
    return predicted, target, valid


def _accuracy_counts(y: Any, target: Any, setup: _Setup) -> tuple[int, int]:
    predicted, true, valid = _hits(y, target, setup)
    right = predicted == true
    if valid is None:
        return int(right.sum()), int(right.size)
    return int((right & valid).sum()), int(valid.sum())


def _evaluate_arrays(
    setup: _Setup, x: np.ndarray, y: np.ndarray, batch_size: int, confusion: bool = False
) -> tuple[float, int | None, int, np.ndarray | None]:
    """Mean loss, correct count, counted elements and (optionally) the confusion matrix of
    the network in eval mode over (x, y), in batches."""
    net, xp = setup.net, setup.net.xp
    net.eval()
    loss_sum, correct, counted = 0.0, 0, 0
    classes = setup.data.num_classes or 0
    matrix = np.zeros((classes, classes), dtype=np.int64) if confusion else None
    for xb, yb in iterate_batches(x, y, batch_size, shuffle=False, rng=_UNUSED_RNG):
        target = xp.asarray(yb)
        out = _first_output(net(xp.asarray(xb)))
        loss_sum += _loss_value(setup.loss(out, target)) * len(xb)
        if setup.classification:
            c, n = _accuracy_counts(out, target, setup)
            correct, counted = correct + c, counted + n
            if matrix is not None:
                matrix += _confusion(out, target, setup, classes)
    mean = loss_sum / len(x) if len(x) else math.nan
    return mean, (correct if setup.classification else None), counted, matrix


def _confusion(y: Any, target: Any, setup: _Setup, classes: int) -> np.ndarray:
    predicted, true, valid = _hits(y, target, setup)
    predicted, true = to_numpy(predicted).ravel(), to_numpy(true).ravel()
    if valid is not None:
        keep = to_numpy(valid).ravel()
        predicted, true = predicted[keep], true[keep]
    flat = np.bincount(true * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes)


# -- monitors (best checkpoint, early stopping) -------------------------------------------
class _Monitor:
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


@dataclass
class _Position:
    """Where a run is; all of it goes into the checkpoint so a resumed run goes on exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch: int = 0  # batches done in the current epoch
    epoch_rng: dict = field(default_factory=dict)  # shuffle RNG state at this epoch's start
    loss_sum: float = 0.0  # running sums of the current epoch
    seen: int = 0
    correct: int = 0
    counted: int = 0
    elapsed: float = 0.0  # seconds spent in the current epoch before a resume


# -- the trainer --------------------------------------------------------------------------
class Trainer:
    """Trains a spec's network on its data (see the module docstring for one epoch).

    `out`: folder for last.npz, best.npz, metrics.jsonl and metrics.png (None: write
    nothing). `epochs`, `batch_size`, `lr` and `seed` override the spec's `train:` section;
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
    ):
        self.spec = spec
        self.device = device
        self.out = Path(out) if out is not None else None
        self.overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
        self.callbacks = list(callbacks)

    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Train to the configured number of epochs (or an early stop, or Ctrl-C).

        Ctrl-C (or a callback raising KeyboardInterrupt) stops at the next batch boundary,
        saves last.npz and returns with `stopped == "interrupted"`. A NaN or infinite loss
        raises NonFiniteLossError before that step's update, leaving checkpoints as they
        were. Other failures are NetspecErrors (DataError, CheckpointError, DeviceError...).
        """
        get_xp(self.device)
        checkpoint = load_checkpoint(resume) if resume is not None else None
        self.train = self._settings(checkpoint)
        self.setup = _prepare(self.spec, self.device, self.train.seed)
        self.optimizer = compile_optimizer(self.train.optimizer, self.setup.net)
        schedule = self.train.lr_schedule
        self.scheduler = compile_schedule(schedule, self.optimizer) if schedule else None
        self.rng = np.random.default_rng([self.train.seed & (2**64 - 1), _SHUFFLE_STREAM])
        self.pos = _Position(epoch_rng=self.rng.bit_generator.state)
        self.history: list[dict] = []
        self.best_monitor, self.early = self._monitors()
        self.last_path: Path | None = None
        self.best_path: Path | None = None
        self._consistent, self._interrupt_requested = True, False
        self._saved_on_interrupt = False
        self._epoch_started = time.perf_counter()
        if checkpoint is not None:
            self._restore(checkpoint, Path(resume))  # type: ignore[arg-type]
        self._start_files()
        self._emit("on_train_start", self._run_info(resume))
        with self._deferred_interrupts():
            try:
                stopped = self._loop()
            except KeyboardInterrupt:
                stopped = self._interrupted()
        result = self._result(stopped)
        self._emit("on_train_end", result)
        return result

    # -- set-up -----------------------------------------------------------------------------
    def _settings(self, checkpoint: Checkpoint | None) -> TrainSpec:
        from netspec.spec import TrainSpec

        train = self.spec.train or TrainSpec()
        given = {k: v for k, v in self.overrides.items() if v is not None and k != "lr"}
        if checkpoint is not None:
            meta = checkpoint.meta
            for key in ("seed", "batch_size"):
                saved = _meta_int(meta, key, getattr(train, key))
                changed = key in given and given[key] != saved
                if changed and (key == "seed" or _meta_int(meta, "batch", 0)):
                    raise _resume_conflict(key, saved, given[key])
                given.setdefault(key, saved)
        if self.overrides["lr"] is not None:
            given["optimizer"] = _with_lr(train.optimizer, self.overrides["lr"])
        return train.model_copy(update=given)

    def _monitors(self) -> tuple[_Monitor, _Monitor | None]:
        """The monitor of best.npz and the early-stopping one (same metric when both)."""
        stopping = self.train.early_stopping
        if stopping is None:
            default = "val_loss" if self.setup.data.has_validation else "loss"
            return _Monitor(default, "auto"), None
        metric = stopping.monitor
        if metric.startswith("val_") and not self.setup.data.has_validation:
            raise TrainingError(
                f"early_stopping monitors {metric}, but the data has no validation split",
                hint="set data.validation_split above 0, or monitor: "
                + metric.removeprefix("val_"),
            )
        if metric.endswith("accuracy") and not self.setup.classification:
            raise TrainingError(
                f"early_stopping monitors {metric}, but accuracy is only measured for "
                f"CrossEntropyLoss (the spec's loss is {self.spec.loss.type})",  # type: ignore[union-attr]
                hint="monitor: " + metric.replace("accuracy", "loss"),
            )
        best = _Monitor(metric, stopping.mode)
        return best, _Monitor(metric, stopping.mode, stopping.min_delta, stopping.patience)

    def _run_info(self, resume: str | Path | None) -> RunInfo:
        data = self.setup.data
        return RunInfo(
            spec_name=self.spec.name,
            device=self.device,
            epochs=self.train.epochs,
            start_epoch=self.pos.epoch,
            batches=batch_count(len(data.x_train), self.train.batch_size),
            batch_size=self.train.batch_size,
            train_samples=len(data.x_train),
            val_samples=len(data.x_val),
            classification=self.setup.classification,
            data_name=data.name,
            out=self.out,
            resumed_from=Path(resume) if resume is not None else None,
        )

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> str:
        batches = batch_count(len(self.setup.data.x_train), self.train.batch_size)
        if self.pos.epoch >= self.train.epochs:
            self._emit(
                "on_warning",
                f"nothing to do: {self.pos.epoch} of {self.train.epochs} epochs are done "
                "(raise --epochs to train longer)",
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
            self._check_interrupt()
            self._emit("on_batch_end", epoch, pos.batch, batches, self._running())

    def _train_step(self, xb: np.ndarray, yb: np.ndarray, epoch: int, batches: int) -> None:
        setup, pos, xp = self.setup, self.pos, self.setup.net.xp
        self._consistent = False  # until the step's bookkeeping is done
        x, target = xp.asarray(xb), xp.asarray(yb)
        self.optimizer.zero_grad()
        out = setup.net(x)
        y = _first_output(out)
        value = setup.loss(y, target)
        loss = _loss_value(value)
        if not math.isfinite(loss):
            self._write_plot()
            raise self._non_finite(loss, epoch, batches)
        mean_grad = None if value.ndim == 0 else xp.full(value.shape, 1 / value.size, value.dtype)
        grad = setup.loss.backward(mean_grad)
        setup.net.backward((grad, *[None] * (len(out) - 1)) if isinstance(out, tuple) else grad)
        self.optimizer.step()
        pos.loss_sum += loss * len(xb)
        pos.seen += len(xb)
        if setup.classification:
            correct, counted = _accuracy_counts(y, target, setup)
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
        setup, pos, data = self.setup, self.pos, self.setup.data
        metrics: dict[str, Any] = {"epoch": epoch, "step": pos.step}
        metrics["loss"] = pos.loss_sum / pos.seen
        if setup.classification:
            metrics["accuracy"] = pos.correct / pos.counted if pos.counted else None
        if data.has_validation:
            val_loss, correct, counted, _ = _evaluate_arrays(
                setup, data.x_val, data.y_val, self.train.batch_size
            )
            metrics["val_loss"] = val_loss
            if setup.classification:
                metrics["val_accuracy"] = correct / counted if counted else None
        self._check_interrupt()
        metrics["lr"] = self.optimizer.lr
        metrics["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        metrics = {k: _finite_or_none(v) for k, v in metrics.items()}
        self._consistent = False  # the epoch's bookkeeping is one unit
        self.history.append(metrics)
        if self.scheduler is not None:
            self.scheduler.step(self._plateau_metric(metrics))
        improved = self.best_monitor.update(metrics)
        if self.early is not None:
            self.early.update(metrics)
        pos.epoch, pos.batch, pos.elapsed = epoch, 0, 0.0
        pos.loss_sum, pos.seen, pos.correct, pos.counted = 0.0, 0, 0, 0
        pos.epoch_rng = self.rng.bit_generator.state
        self._consistent = True
        return metrics, improved

    def _plateau_metric(self, metrics: dict) -> float | None:
        """ReduceLROnPlateau's metric: val_loss (loss without validation); in mode 'max',
        val_accuracy for classification."""
        if not isinstance(self.train.lr_schedule, ReduceLROnPlateau):
            return None
        prefix = "val_" if self.setup.data.has_validation else ""
        wants_accuracy = self.train.lr_schedule.mode == "max" and self.setup.classification
        value = metrics.get(prefix + ("accuracy" if wants_accuracy else "loss"))
        return value if value is not None else math.nan

    # -- faults -----------------------------------------------------------------------------
    def _check_interrupt(self) -> None:
        if self._interrupt_requested:
            raise KeyboardInterrupt

    @contextmanager
    def _deferred_interrupts(self) -> Iterator[None]:
        """Ctrl-C stops at the next batch boundary, where the state is whole and can be
        saved; a second Ctrl-C stops at once. Only where Python's default handler is set."""
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _interrupted(self) -> str:
        # A KeyboardInterrupt in the middle of a step (a second Ctrl-C) leaves half-updated
        # weights: then the checkpoints on disk are the last good state.
        if self.out is not None and self._consistent:
            self.last_path = self._save("last")
            self._saved_on_interrupt = True
            if self.pos.batch == 0 and self.best_monitor.best_epoch == self.pos.epoch > 0:
                self.best_path = self._save("best")
        return "interrupted"

    def _non_finite(self, loss: float, epoch: int, batches: int) -> NonFiniteLossError:
        pos = self.pos
        where = f"epoch {epoch}, step {pos.step + 1} (batch {pos.batch + 1} of {batches})"
        if self.last_path is not None:
            kept = f"; the last good checkpoint is {self.last_path}"
        elif self.out is not None:
            kept = "; no checkpoint was written (no epoch had completed)"
        else:
            kept = ""
        return NonFiniteLossError(
            f"the loss became {loss} at {where}: training stopped before that update{kept}",
            hint="lower the learning rate (--lr), or check the data's scale (data.normalize)",
            epoch=epoch,
            step=pos.step + 1,
            checkpoint=self.last_path,
        )

    # -- files ------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path | None:
        return self.out / "metrics.jsonl" if self.out is not None else None

    def _start_files(self) -> None:
        """metrics.jsonl starts over from the (resumed) history: it always matches it."""
        if self.metrics_path is None:
            return
        try:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps(m) + "\n" for m in self.history)
            self.metrics_path.write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise TrainingError(f"cannot write to {self.out}: {exc.strerror or exc}") from None

    def _epoch_files(self, metrics: dict, improved: bool) -> None:
        if self.metrics_path is None:
            return
        try:
            with self.metrics_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(metrics) + "\n")
        except OSError as exc:
            raise TrainingError(f"cannot write {self.metrics_path}: {exc.strerror}") from None
        self.last_path = self._save("last")
        if improved:
            self.best_path = self._save("best")

    def _save(self, kind: str) -> Path:
        path = save_checkpoint(self.out / f"{kind}.npz", self._checkpoint())  # type: ignore[operator]
        self._emit("on_checkpoint", kind, path)
        return path

    def _checkpoint(self) -> Checkpoint:
        net, pos = self.setup.net, self.pos
        elapsed = time.perf_counter() - self._epoch_started if pos.batch else 0.0
        meta = {
            **spec_meta(self.spec),
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "seed": self.train.seed,
            "batch_size": self.train.batch_size,
            "epochs": self.train.epochs,
            "dtype": net.dtype.name,
            "device": self.device,
            "rng": {"shuffle": pos.epoch_rng, "forward_calls": net.forward_calls},
            "running": {
                "loss_sum": pos.loss_sum,
                "seen": pos.seen,
                "correct": pos.correct,
                "counted": pos.counted,
                "elapsed": elapsed,
            },
            "monitors": {
                "best": self.best_monitor.state(),
                "early_stopping": self.early.state() if self.early else None,
            },
            "history": self.history,
        }
        schedule = self.scheduler.state_dict() if self.scheduler is not None else {}
        return Checkpoint(net.state_dict(), self.optimizer.state_dict(), schedule, meta)

    def _restore(self, checkpoint: Checkpoint, path: Path) -> None:
        meta, net = checkpoint.meta, self.setup.net
        if meta.get("network_fingerprint") != network_fingerprint(self.spec):
            check_fits(checkpoint, net, path)  # names and shapes: the more precise message
            raise CheckpointError(
                f"cannot resume from {path}: it was saved from a different network "
                f"(spec '{meta.get('spec_name', '?')}'), and a resumed run needs the same layers",
                hint="pass the spec it was trained with, or start a new run without --resume",
            )
        if meta.get("spec_fingerprint") != self.spec.fingerprint():
            self._emit(
                "on_warning",
                f"{path} was saved with other loss/train/data settings; "
                "going on with the spec's current ones",
            )
        if self.overrides["lr"] is not None:
            self._emit("on_warning", "--lr is ignored when resuming: the optimizer state wins")
        try:
            net.load_state_dict(checkpoint.state)
            self.optimizer.load_state_dict(checkpoint.optimizer)
            self._restore_schedule(checkpoint, path)
            self._restore_position(meta)
        except (StateDictError, OptimizerStateError) as exc:
            raise CheckpointError(
                f"cannot resume from {path}: {exc}",
                hint="the optimizer or schedule changed since it was saved: start a new run",
            ) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} is damaged: bad or missing meta entry ({exc!r})"
            ) from None
        self.last_path = path
        if self.out is not None and (self.out / "best.npz").is_file():
            self.best_path = self.out / "best.npz"

    def _restore_schedule(self, checkpoint: Checkpoint, path: Path) -> None:
        if (self.scheduler is None) != (not checkpoint.schedule):
            saved = "with" if checkpoint.schedule else "without"
            now = "has one" if self.scheduler is not None else "has none"
            raise CheckpointError(
                f"cannot resume from {path}: it was saved {saved} an lr_schedule and the spec "
                f"now {now}",
                hint="restore the spec's lr_schedule, or start a new run",
            )
        if self.scheduler is not None:
            self.scheduler.load_state_dict(checkpoint.schedule)

    def _restore_position(self, meta: dict) -> None:
        pos, running = self.pos, meta["running"]
        pos.epoch, pos.step, pos.batch = (int(meta[k]) for k in ("epoch", "step", "batch"))
        pos.loss_sum, pos.elapsed = float(running["loss_sum"]), float(running["elapsed"])
        counters = ("seen", "correct", "counted")
        pos.seen, pos.correct, pos.counted = (int(running[k]) for k in counters)
        batches = batch_count(len(self.setup.data.x_train), self.train.batch_size)
        if min(pos.epoch, pos.step, pos.batch) < 0 or pos.batch > batches:
            raise ValueError(f"position epoch {pos.epoch}, batch {pos.batch} of {batches}")
        self.rng.bit_generator.state = meta["rng"]["shuffle"]
        pos.epoch_rng = self.rng.bit_generator.state
        self.setup.net.forward_calls = int(meta["rng"]["forward_calls"])
        self.history = [dict(m) for m in meta["history"]]
        monitors = meta["monitors"]
        self.best_monitor.load(monitors["best"])
        if self.early is not None and monitors.get("early_stopping"):
            self.early.load(monitors["early_stopping"])

    def _write_plot(self) -> Path | None:
        if self.out is None or not self.history:
            return None
        from netspec.plot import save_plot

        try:
            return save_plot(self.history, self.out / "metrics.png", title=self.spec.name)
        except Exception as exc:  # matplotlib fails in many ways (fonts, backends, disks)
            self._emit("on_warning", f"could not draw {self.out / 'metrics.png'}: {exc}")
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
            metrics_path=self.metrics_path,
            plot_path=self._write_plot(),
            batch=self.pos.batch,
            saved_on_interrupt=self._saved_on_interrupt,
        )

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(*args)


def fit(spec: Spec, resume: str | Path | None = None, **options: Any) -> TrainResult:
    """`Trainer(spec, **options).fit(resume)` in one call."""
    return Trainer(spec, **options).fit(resume)


# -- evaluation ---------------------------------------------------------------------------
def evaluate(
    spec: Spec, weights: str | Path, *, device: str = "cpu", batch_size: int | None = None
) -> EvalResult:
    """Loss, accuracy and confusion matrix of a checkpoint on the validation split.

    The split is the training run's: the seed comes from the checkpoint. Without a
    validation split the training data is used (`split` says which). The batch size
    defaults to the run's, so the loss matches the logged val_loss to the last digit.
    """
    from netspec.spec import TrainSpec

    get_xp(device)
    path = Path(weights)
    checkpoint = load_checkpoint(path)
    meta, train = checkpoint.meta, spec.train or TrainSpec()
    setup = _prepare(spec, device, _meta_int(meta, "seed", train.seed))
    warning = check_fits(checkpoint, setup.net, path)
    setup.net.load_state_dict(checkpoint.state)
    data = setup.data
    if data.has_validation:
        x, y, split = data.x_val, data.y_val, "validation"
    else:
        x, y, split = data.x_train, data.y_train, "training"
    size = batch_size or _meta_int(meta, "batch_size", train.batch_size)
    loss, correct, counted, matrix = _evaluate_arrays(setup, x, y, size, setup.classification)
    recorded = None
    if _meta_int(meta, "batch", 0) == 0 and isinstance(meta.get("history"), list):
        matches = [m for m in meta["history"] if isinstance(m, dict)]
        recorded = next((m for m in matches if m.get("epoch") == checkpoint.epoch), None)
    return EvalResult(
        loss=loss,
        samples=len(x),
        split=split,
        accuracy=correct / counted if correct is not None and counted else None,
        confusion=matrix,
        checkpoint_epoch=checkpoint.epoch,
        recorded=recorded,
        warnings=[warning] if warning else [],
    )


# -- small helpers ------------------------------------------------------------------------
def _finite_or_none(value: Any) -> Any:
    """Metrics log values: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _meta_int(meta: dict, key: str, default: int) -> int:
    value = meta.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint is damaged: meta entry '{key}' is {value!r}")
    return value


def _with_lr(optimizer: Any, lr: float) -> Any:
    try:
        return type(optimizer).model_validate({**optimizer.model_dump(), "lr": lr})
    except ValidationError as exc:
        raise TrainingError(f"--lr {lr}: {exc.errors()[0]['msg']}") from None


def _resume_conflict(key: str, saved: int, given: int) -> TrainingError:
    flag = "--" + key.replace("_", "-")
    if key == "seed":
        reason = "another seed draws another validation split and shuffle order"
    else:
        reason = "the checkpoint stopped in the middle of an epoch of other batches"
    return TrainingError(
        f"cannot resume with {flag} {given}: the checkpoint was trained with {saved}, and {reason}",
        hint=f"drop {flag} to resume, or start a new run without --resume",
    )

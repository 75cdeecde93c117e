"""Training: the loop behind `netspec train`.

    trainer = Trainer(spec, device="cpu", out="runs/digits", callbacks=[my_progress])
    result = trainer.fit()                      # or fit(resume="runs/digits/last.npz")
    evaluation = evaluate(spec, "runs/digits/best.npz")

Each epoch (run.py) is followed by early stopping, checkpoints (`last.npz` every epoch,
`best.npz` when the monitored metric improves), a line of `metrics.jsonl`, and at the end
`metrics.png` (plot.py). The library never prints: progress goes to `Callback`s.

The pieces around the loop: setup.py (data, network, loss, settings), run.py (one fit's
parts and an epoch's work), state.py (what a checkpoint keeps), evaluation.py (validation,
accuracy), metrics.py (monitors, metrics.jsonl), run_folder.py (the folder and its lock),
interrupts.py (Ctrl-C at batch boundaries), events.py (callbacks, results).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.ops.backend import get_xp
from netspec.optim import compile_optimizer
from netspec.optim.lr_scheduler import compile_schedule
from netspec.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netspec.training.data_parallel import DataParallel
from netspec.training.distributed import DistributedError, PeerFailedError, device_for
from netspec.training.evaluation import evaluate
from netspec.training.events import (
    Callback,
    EvalResult,
    NonFiniteLossError,
    RunInfo,
    TrainingError,
    TrainResult,
    emit,
)
from netspec.training.interrupts import DeferredInterrupts
from netspec.training.metrics import MetricsLog, monitors_for
from netspec.training.plot import MetricsPlot
from netspec.training.run import Run
from netspec.training.run_folder import claim_run_folder, remove_if_empty
from netspec.training.setup import RunSetup, check_training_memory, prepare, train_settings
from netspec.training.state import RunState, check_same_network, lr_warning
from netspec.training.step_graph import training_step
from netspec.wording import plural

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec
    from netspec.optim import Optimizer
    from netspec.training.distributed import MpiWorld


class Trainer:
    """Trains a spec's network on its data (see the module docstring for one epoch).

    `out`: folder for last.npz, best.npz, metrics.jsonl and metrics.png (None: write
    nothing). A folder that holds another run is refused (RunExistsError) unless `fit`
    resumes from a checkpoint in it or `overwrite` is True (its run files are removed
    first); while the trainer writes the folder it holds its lock (RunLockedError for a
    second trainer). `epochs`, `batch_size`, `lr` and `seed` override the spec's `train:` section;
    a resumed run takes its seed and batch size from the checkpoint unless given, and
    `epochs` is the total to reach, resumed epochs included.

    `world` (distributed.launched_world()) makes the run data-parallel: this process trains
    its rows of every batch (data_parallel.py), and only rank 0 writes files.
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
        world: MpiWorld | None = None,
    ):
        self.spec = spec
        self.device = device
        self.world = world
        writes = world is None or world.rank == 0
        self.out = Path(out) if out is not None and writes else None
        self.overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
        self.callbacks = list(callbacks)
        self.overwrite = overwrite
        self.run: Run | None = None  # the parts of the latest fit(), once built

    @property
    def setup(self) -> RunSetup:
        """The data, network and loss of the run in progress (or the last one)."""
        return self._built().setup

    @property
    def optimizer(self) -> Optimizer:
        return self._built().optimizer

    def _built(self) -> Run:
        if self.run is None:
            raise TrainingError("the trainer builds its network when fit() starts")
        return self.run

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
        xp = get_xp(self.device)  # a missing CuPy is the first thing to say
        if self.world is not None and self.device == "cuda":  # (cuda:N: the one asked for)
            device_for(self.world)  # before CuPy allocates anything: this rank's own GPU
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise TrainingError(
                f"the output folder {self.out} is a file, not a folder",
                hint="choose another folder for the run's files",
            )
        interrupts = DeferredInterrupts()
        with interrupts.installed():
            created = self.out is not None and not self.out.exists()
            lock, notes = self._agreed(claim_run_folder, self.out, resume, self.overwrite)
            try:
                return self._fit(resume, interrupts, notes, xp)
            finally:
                interrupts.hold()
                if lock is not None:
                    lock.release()
                    if created:
                        remove_if_empty(self.out)  # type: ignore[arg-type]

    def _fit(
        self, resume: str | Path | None, interrupts: DeferredInterrupts, notes: list[str], xp: Any
    ) -> TrainResult:
        self.run = run = self._agreed(self._start, resume, interrupts, xp)
        if run.metrics_log is not None:
            run.metrics_log.start(run.state.history)
        run.emit("on_train_start", run.info(self.spec.name, self.device, self.out, resume))
        for note in notes:
            run.emit("on_warning", note)
        # A diverging run overflows on its way to a NaN loss; the clean NonFiniteLossError
        # says so, NumPy's RuntimeWarnings before it would only be noise.
        with interrupts.deferring(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                stopped = self._loop()
            except KeyboardInterrupt:
                stopped = self._interrupted()
            except Exception as exc:
                run.emit("on_train_error", exc)
                raise
            result = run.result(stopped)
            run.emit("on_train_end", result)  # deferring still: the plot is drawn in it
        return result

    # -- set-up -----------------------------------------------------------------------------
    def _start(self, resume: str | Path | None, interrupts: DeferredInterrupts, xp: Any) -> Run:
        checkpoint = load_checkpoint(resume, self.spec) if resume is not None else None
        run = self.run = self._build(checkpoint, interrupts, xp)
        if checkpoint is not None:
            self._restore(checkpoint, Path(resume))  # type: ignore[arg-type]
        return run

    def _agreed(self, action: Callable[..., Any], *args: Any) -> Any:
        """action(*args), in a data-parallel run only once every process has done its part
        without an error: one that failed raises its error, the others PeerFailedError."""
        if self.world is None:
            return action(*args)
        try:
            result = action(*args)
        except BaseException:
            self.world.any(True)
            raise
        if self.world.any(False):
            raise PeerFailedError("another process of the run failed to start (it said why)")
        return result

    def _build(self, checkpoint: Checkpoint | None, interrupts: DeferredInterrupts, xp: Any) -> Run:
        """Settings, data, network, loss, optimizer, schedule and a fresh run state."""
        spec = self.spec
        train = train_settings(spec, self.overrides, checkpoint)
        check_training_memory(spec, train, self.device)
        setup = prepare(spec, self.device, train.seed, xp)
        optimizer = compile_optimizer(train.optimizer, setup.net)
        schedule = train.lr_schedule
        scheduler = compile_schedule(schedule, optimizer) if schedule else None
        loss_type = spec.loss.type  # type: ignore[union-attr]
        monitors = monitors_for(train, setup.data.has_validation, setup.classification, loss_type)
        state = RunState(spec, self.device, train, setup.net, optimizer, scheduler, monitors)
        parallel = DataParallel(self.world, setup, optimizer) if self.world is not None else None
        callbacks = list(self.callbacks)
        if self.out is not None:
            warn = lambda message: emit(callbacks, "on_warning", message)  # noqa: E731
            callbacks.insert(0, MetricsPlot(self.out, spec.name, state, warn))
        return Run(
            train=train,
            setup=setup,
            optimizer=optimizer,
            scheduler=scheduler,
            state=state,
            metrics_log=MetricsLog(self.out) if self.out is not None else None,
            callbacks=callbacks,
            interrupts=interrupts,
            shuffle=train.shuffle and spec.data.shuffle,  # type: ignore[union-attr]
            step=training_step(setup.net, optimizer, self.device) if parallel is None else None,
            parallel=parallel,
        )

    def _restore(self, checkpoint: Checkpoint, path: Path) -> None:
        run = self._built()
        warning = check_same_network(checkpoint, self.spec, run.setup.net, path)
        if warning is not None:
            run.emit("on_warning", warning)
        asked_lr = run.optimizer.lr  # what the spec (or the override) would start at
        run.state.restore(checkpoint, path, run.batches)
        lr_note = lr_warning(checkpoint, asked_lr, run.optimizer.lr, self.overrides["lr"])
        if lr_note is not None:
            run.emit("on_warning", lr_note)
        run.start_step = run.state.position.step
        run.last_path = path
        if self.out is not None and (self.out / "best.npz").is_file():
            run.best_path = self.out / "best.npz"

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> str:
        run = self._built()
        epochs, position, early = run.train.epochs, run.state.position, run.state.early
        if early is not None and early.exhausted:
            run.emit(
                "on_warning",
                f"nothing to do: the run stopped early after epoch {position.epoch} "
                f"({early.metric} did not improve for {plural(early.wait, 'epoch')}; raise "
                "early_stopping.patience to train longer)",
            )
            return "early_stopping"
        if position.epoch >= epochs:
            run.emit(
                "on_warning",
                f"nothing to do: {position.epoch} of {plural(epochs, 'epoch')} "
                f"{'is' if epochs == 1 else 'are'} done (ask for more epochs to train longer)",
            )
        while position.epoch < epochs:
            epoch = position.epoch + 1
            run.emit("on_epoch_start", epoch, run.batches)
            run.train_epoch(epoch)
            metrics, improved = run.finish_epoch(epoch)
            self._check_same_weights(epoch)
            self._epoch_files(metrics, improved)
            run.emit("on_epoch_end", epoch, metrics)
            if early is not None and early.exhausted:
                return "early_stopping"
        return "completed"

    def _check_same_weights(self, epoch: int) -> None:
        """In a data-parallel run, every process must hold the same weights after an epoch
        (their sums agree bit for bit); a difference would only grow, so it stops the run."""
        if self.world is None:
            return
        net = self._built().setup.net
        if not self.world.same_everywhere(net.state_dict().values()):
            raise DistributedError(
                f"after epoch {epoch} the processes hold different weights: their MPI "
                "library's sums differ between ranks",
                hint="report it with the MPI library's name and version",
            )

    def _interrupted(self) -> str:
        # A KeyboardInterrupt in the middle of a step (a second Ctrl-C) leaves half-updated
        # weights: then the checkpoints on disk are the last good state.
        run = self._built()
        position = run.state.position
        if self.out is not None and run.consistent and position.step > run.start_step:
            # best before last: a kill between the two never leaves best older than the
            # best epoch last records
            if position.batch == 0 and run.state.best_monitor.best_epoch == position.epoch > 0:
                run.best_path = self._save("best")
            run.last_path = self._save("last")
            run.saved_on_interrupt = True
        return "interrupted"

    # -- files ------------------------------------------------------------------------------
    def _epoch_files(self, metrics: dict, improved: bool) -> None:
        run = self._built()
        if run.metrics_log is None:
            return
        run.metrics_log.append(metrics)
        if improved:  # before last.npz: see _interrupted
            run.best_path = self._save("best")
        run.last_path = self._save("last")

    def _save(self, kind: str) -> Path:
        run = self._built()
        checkpoint = run.state.checkpoint(run.elapsed())
        path = save_checkpoint(self.out / f"{kind}.npz", checkpoint)  # type: ignore[operator]
        run.emit("on_checkpoint", kind, path)
        return path


def fit(spec: Spec, resume: str | Path | None = None, **options: Any) -> TrainResult:
    """`Trainer(spec, **options).fit(resume)` in one call (e.g. `out=`, `overwrite=True`)."""
    return Trainer(spec, **options).fit(resume)


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

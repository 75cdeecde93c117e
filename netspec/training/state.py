"""Resuming a run exactly: a run's whole state as a Checkpoint, and back (RunState).

A checkpoint holds the network, optimizer and schedule states plus a meta document: the
position (epoch, step, batch in the epoch, the epoch's running sums and the shuffle RNG
state at its start), the monitors and the history, so that a resumed run draws the same
batches and logs the same numbers as one that was never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.data.base import SHUFFLE_STREAM, seeded_rng
from netspec.network import StateDictError
from netspec.optim import OptimizerStateError
from netspec.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_fits,
    network_fingerprint,
    spec_meta,
)

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec, TrainSpec
    from netspec.network import Network
    from netspec.optim import Optimizer
    from netspec.optim.lr_scheduler import Scheduler
    from netspec.training.metrics import Monitor

_COUNTERS = ("seen", "correct", "counted")


@dataclass
class Position:
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

    def running(self, elapsed: float) -> dict[str, Any]:
        """The current epoch's running sums, as the checkpoint's meta stores them."""
        return {
            "loss_sum": self.loss_sum,
            "seen": self.seen,
            "correct": self.correct,
            "counted": self.counted,
            "elapsed": elapsed,
        }

    def load(self, meta: dict, batches: int) -> None:
        """Take the position from a checkpoint's meta; ValueError (or KeyError, TypeError)
        when it is damaged. `batches`: how many an epoch has."""
        running = meta["running"]
        self.epoch, self.step, self.batch = (int(meta[k]) for k in ("epoch", "step", "batch"))
        self.loss_sum, self.elapsed = float(running["loss_sum"]), float(running["elapsed"])
        self.seen, self.correct, self.counted = (int(running[k]) for k in _COUNTERS)
        if min(self.epoch, self.step, self.batch) < 0 or self.batch > batches:
            raise ValueError(f"position epoch {self.epoch}, batch {self.batch} of {batches}")

    def next_epoch(self, epoch: int, rng_state: dict) -> None:
        """`epoch` is complete: zero the running sums for the next one."""
        self.epoch, self.batch, self.elapsed = epoch, 0, 0.0
        self.loss_sum, self.seen, self.correct, self.counted = 0.0, 0, 0, 0
        self.epoch_rng = rng_state


def check_same_network(checkpoint: Checkpoint, spec: Spec, net: Network, path: Path) -> str | None:
    """CheckpointError unless the checkpoint was saved from this spec's network; a warning
    when only the loss/train/data settings changed."""
    meta = checkpoint.meta
    if meta.get("network_fingerprint") != network_fingerprint(spec):
        check_fits(checkpoint, net, path)  # names and shapes: the more precise message
        raise CheckpointError(
            f"cannot resume from {path}: it was saved from a different network "
            f"(spec '{meta.get('spec_name', '?')}'), and a resumed run needs the same layers",
            hint="pass the spec it was trained with, or start a new run instead of resuming",
        )
    if meta.get("spec_fingerprint") != spec.fingerprint():
        return (
            f"{path} was saved with other loss/train/data settings; going on with the "
            "spec's current ones, except the learning rate, which comes from the checkpoint"
        )
    return None


def lr_warning(
    checkpoint: Checkpoint, asked: float, restored: float, override: float | None
) -> str | None:
    """What a resumed run does with a learning rate other than the one its run started at:
    it goes on at the checkpoint's (`restored`, from the optimizer and schedule state), not
    at the spec's or the override's (`asked`: the rate a new run would start at)."""
    history = checkpoint.meta.get("history") or [{}]
    started = history[0].get("lr") if isinstance(history[0], dict) else None
    if started is None and checkpoint.epoch == 0:
        started = restored  # still in epoch 1, where no schedule has moved the rate yet
    if not isinstance(started, float | int) or math.isclose(started, asked, rel_tol=1e-9):
        return None
    if override is not None:
        wanted = f"learning rate {asked:g} is not used"
    else:
        wanted = f"the spec's learning rate is {asked:g}"
    return (
        f"{wanted}, but the run started at {started:g}: resuming goes on at the checkpoint's "
        f"learning rate {restored:g} (its optimizer and schedule state); start a new run to "
        f"train at {asked:g}"
    )


class RunState:
    """What a run changes as it trains and a checkpoint keeps, so that a resumed run draws
    the same batches and logs the same numbers: the weights (of `net`), the optimizer and
    schedule states, the position, the history, the monitors and the shuffle RNG.

    It writes itself into a Checkpoint (`checkpoint`) and restores itself from one
    (`restore`); the run's identity (spec, device, settings) goes into the meta with it.
    """

    def __init__(
        self,
        spec: Spec,
        device: str,
        train: TrainSpec,
        net: Network,
        optimizer: Optimizer,
        scheduler: Scheduler | None,
        monitors: tuple[Monitor, Monitor | None],
    ):
        self.spec, self.device, self.train = spec, device, train
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.best_monitor, self.early = monitors
        self.rng = seeded_rng(train.seed, SHUFFLE_STREAM)
        self.position = Position(epoch_rng=self.rng.bit_generator.state)
        self.history: list[dict] = []

    def next_epoch(self, epoch: int) -> None:
        """`epoch` is complete: the next one starts from the shuffle RNG's state now."""
        self.position.next_epoch(epoch, self.rng.bit_generator.state)

    def checkpoint(self, elapsed: float) -> Checkpoint:
        """Everything a resumed run needs; `elapsed`: seconds spent in the unfinished epoch."""
        net, pos, train = self.net, self.position, self.train
        meta = {
            **spec_meta(self.spec),
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "seed": train.seed,
            "batch_size": train.batch_size,
            "epochs": train.epochs,
            "dtype": net.dtype.name,
            "device": self.device,
            "rng": {"shuffle": pos.epoch_rng, "forward_calls": net.forward_calls},
            "running": pos.running(elapsed),
            "monitors": {
                "best": self.best_monitor.state(),
                "early_stopping": self.early.state() if self.early else None,
            },
            "history": self.history,
        }
        scheduler = self.scheduler
        schedule = scheduler.state_dict() if scheduler is not None else {}
        return Checkpoint(net.state_dict(), self.optimizer.state_dict(), schedule, meta)

    def restore(self, checkpoint: Checkpoint, path: Path, batches: int) -> None:
        """Go on from a checkpoint (`check_same_network` first); CheckpointError when a
        state does not fit or the meta is damaged. `batches`: how many an epoch has."""
        with _resume_errors(path):
            self.net.load_state_dict(checkpoint.state)
            self.optimizer.load_state_dict(checkpoint.optimizer)
            _restore_schedule(self.scheduler, checkpoint, path)
            meta = checkpoint.meta
            self.position.load(meta, batches)
            self.rng.bit_generator.state = meta["rng"]["shuffle"]
            self.position.epoch_rng = self.rng.bit_generator.state
            self.net.forward_calls = int(meta["rng"]["forward_calls"])
            self.history = [dict(m) for m in meta["history"]]
            monitors = meta["monitors"]
            self.best_monitor.load(monitors["best"])
            if self.early is not None and monitors.get("early_stopping"):
                self.early.load(monitors["early_stopping"])


def _restore_schedule(scheduler: Scheduler | None, checkpoint: Checkpoint, path: Path) -> None:
    """Load the schedule's state; CheckpointError when one side has a schedule and the
    other has none."""
    if (scheduler is None) != (not checkpoint.schedule):
        saved = "with" if checkpoint.schedule else "without"
        now = "has one" if scheduler is not None else "has none"
        raise CheckpointError(
            f"cannot resume from {path}: it was saved {saved} an lr_schedule and the spec "
            f"now {now}",
            hint="restore the spec's lr_schedule, or start a new run",
        )
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint.schedule)


@contextmanager
def _resume_errors(path: Path) -> Iterator[None]:
    """Turn what loading a checkpoint's states and meta can raise into CheckpointErrors."""
    try:
        yield
    except (StateDictError, OptimizerStateError) as exc:
        raise CheckpointError(
            f"cannot resume from {path}: {exc}",
            hint="the optimizer or schedule changed since it was saved: start a new run",
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is damaged: bad or missing meta entry ({exc!r})"
        ) from None

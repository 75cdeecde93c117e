"""One process's part of a data-parallel run (design.md §6).

`train.batch_size` stays the global batch: every process draws the same shuffled batches
(same seed) and computes rows [start, stop) of each (`shard_bounds`: contiguous, sizes
differing by at most one, so any batch size splits). The network and the loss see a
`Shard` (layers/base.py): BatchNorm sums its statistics over the processes, Dropout keeps
its rows of the global batch's mask, a mean divides by the global count. So each process's
loss value is its share of the batch's, and the sum of the processes' gradients is the
1-process gradient: one allreduce per step of one flat buffer holding every gradient, with
a second small one (float64, waited for together) for the loss, the accuracy counts and
whether any process was asked to stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.layers.base import Shard
from netspec.training.distributed import DistributedError
from netspec.training.evaluation import accuracy_counts, first_output, output_grads

if TYPE_CHECKING:
    from collections.abc import Callable

    from netspec.optim import Optimizer
    from netspec.training.distributed import MpiWorld
    from netspec.training.setup import RunSetup

# What the step's small sum carries, by index: the batch loss, the accuracy counts, and how
# many processes received each signal since the last step.
_LOSS, _CORRECT, _COUNTED, _SIGINT, _SIGTERM = range(5)


def shard_bounds(rows: int, size: int, rank: int) -> tuple[int, int]:
    """Rows [start, stop) of a batch of `rows` for process `rank` of `size`."""
    return rows * rank // size, rows * (rank + 1) // size


def check_splittable(setup: RunSetup) -> None:
    """DistributedError when a layer mixes samples (the batch could not be split by rows)."""
    graph = setup.net.graph
    for node in graph.nodes:
        shapes = [graph.shapes[ref] for ref in node.inputs]
        if None not in shapes and node.layer.mixes_samples(*shapes):
            raise DistributedError(
                f"layer '{node.shown}' ({node.layer.type_name}) works along the batch "
                "dimension 0, so the batch cannot be split between processes",
                hint="train it in one process, or make the layer work along dimension 1 or later",
            )


@dataclass
class StepTotals:
    """A step's figures over the whole batch."""

    loss: float
    correct: int
    counted: int
    stop: str | None  # the signal some process received, or None


class DataParallel:
    """This process's rows of each batch, the reduced step, and reduced validation sums."""

    def __init__(self, world: MpiWorld, setup: RunSetup, optimizer: Optimizer):
        check_splittable(setup)
        self.world, self.setup, self.optimizer = world, setup, optimizer
        self.grads = setup.net.gather_grads()  # one buffer: `net.grads` are views of it
        self.totals = np.zeros(5)

    def own_rows(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        """This process's rows of a batch, on the device; the network and loss are told."""
        world, rows = self.world, len(xb)
        start, stop = shard_bounds(rows, world.size, world.rank)
        shard = Shard(start, stop, rows, world.sum)
        self.setup.net.shard = self.setup.loss.shard = shard
        xp = self.setup.xp
        return xp.asarray(xb[start:stop]), xp.asarray(yb[start:stop])

    def share(self, value: Any) -> float:
        """This process's share of the batch loss, from its loss value (rows' reductions
        already divide by the global count; a reduction='none' loss is averaged here)."""
        if value.ndim == 0:
            return float(value)
        per_row = math.prod(value.shape[1:])
        return float(value.sum()) / (per_row * self.setup.net.shard.rows)  # type: ignore[union-attr]

    def step(
        self, xb: Any, yb: Any, stop: str | None, before_update: Callable[[float], None]
    ) -> StepTotals:
        """Forward and backward on this process's rows, the sums, then (after
        `before_update` has seen the batch loss) the optimizer step. `stop`: a signal this
        process received since the last step."""
        setup, totals = self.setup, self.totals
        x, target = self.own_rows(xb, yb)
        self.grads.fill(0)
        out = setup.net(x)
        y = first_output(out)
        value = setup.loss(y, target)
        mean_grad = None
        if value.ndim:  # the average of the batch's elements, as the 1-process step
            share = 1.0 / (math.prod(value.shape[1:]) * len(xb))
            mean_grad = setup.xp.full(value.shape, share, value.dtype)
        grad = setup.loss.backward(mean_grad)
        setup.net.backward(output_grads(out, grad), input_grad=False)
        totals[:] = 0.0
        totals[_LOSS] = self.share(value)
        if setup.classification:
            totals[_CORRECT], totals[_COUNTED] = accuracy_counts(y, target, setup)
        _put_signal(totals, stop)
        self.world.sum_in_place(self.grads, totals)
        loss = float(totals[_LOSS])
        before_update(loss)
        self.optimizer.step()
        return StepTotals(loss, int(totals[_CORRECT]), int(totals[_COUNTED]), _stopped(totals))

    def sum_counts(self, loss_sum: float, correct: int, counted: int) -> tuple[float, int, int]:
        """Validation's sums over the processes."""
        totals = np.array([loss_sum, correct, counted], dtype=np.float64)
        self.world.sum_in_place(totals)
        return float(totals[0]), int(totals[1]), int(totals[2])

    def agreed_stop(self, stop: str | None) -> str | None:
        """The signal any process received (SIGTERM first), asked of them all."""
        totals = np.zeros(5)
        _put_signal(totals, stop)
        self.world.sum_in_place(totals)
        return _stopped(totals)


def _put_signal(totals: Any, signal: str | None) -> None:
    if signal is not None:
        totals[_SIGTERM if signal == "SIGTERM" else _SIGINT] = 1.0


def _stopped(totals: Any) -> str | None:
    if totals[_SIGTERM]:
        return "SIGTERM"
    return "SIGINT" if totals[_SIGINT] else None

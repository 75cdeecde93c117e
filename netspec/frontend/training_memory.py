"""How much memory training a spec takes, estimated before any array exists, and how much
the machine has: `netspec check` warns and the trainer refuses to start when it won't fit.

The estimate counts what a training step holds at its peak: parameters and buffers, one
gradient per parameter, the optimizer's state (the parameter-sized arrays its schema's
`state_buffers()` names), and every value of a forward pass at the batch size twice (kept
for backward, then met by its gradient). It leaves out the data set and the temporaries of
single layers (im2col columns), so it errs low: a spec it flags does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec.memory import format_bytes
from netspec.types import prod

if TYPE_CHECKING:
    from netspec.frontend.graph import Graph
    from netspec.frontend.spec import Spec

_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, by kind; `largest` names the layer with most parameters."""

    parameters: int  # parameters and buffers
    gradients: int
    optimizer: int
    activations: int  # forward values at the batch size and their gradients
    batch_size: int
    optimizer_name: str
    largest: tuple[int, str, int] | None = None  # (layer index, name, parameter bytes)
    data: int = 0  # the data set in host memory, where its size is known before reading

    @property
    def on_device(self) -> int:
        """What lives where the network runs."""
        return self.parameters + self.gradients + self.optimizer + self.activations

    @property
    def total(self) -> int:
        return self.on_device + self.data

    def describe(self) -> str:
        """`about 36.0 GiB (parameters 12.0 GiB, gradients ..., activations ... at batch 64)`"""
        return (
            f"about {format_bytes(self.total)} (parameters {format_bytes(self.parameters)}, "
            f"gradients {format_bytes(self.gradients)}, {self.optimizer_name} state "
            f"{format_bytes(self.optimizer)}, activations {format_bytes(self.activations)} "
            f"at batch {self.batch_size}"
            + (f", data {format_bytes(self.data)})" if self.data else ")")
        )


def training_memory(
    spec: Spec, graph: Graph, batch_size: int, optimizer: Any = None
) -> MemoryEstimate:
    """The estimate for `graph` (shapes inferred, batch symbolic or not) at `batch_size`;
    `optimizer`: an optimizer schema (default: the spec's, else TrainSpec's Adam)."""
    from netspec.frontend.spec import TrainSpec

    if optimizer is None:
        optimizer = (spec.train or TrainSpec()).optimizer
    itemsize = _ITEMSIZE.get(spec.input.dtype, 4)
    params = buffers = 0
    largest: tuple[int, str, int] | None = None
    for node in graph.nodes:
        if node.layer is None or graph.shapes.get(node.name) is None:  # after an error
            continue
        count = sum(prod(s) or 0 for s in node.layer.parameter_shapes().values())
        params += count
        buffers += sum(prod(s) or 0 for s in node.layer.buffer_shapes().values())
        if count and (largest is None or count * itemsize > largest[2]):
            largest = (node.index, node.name, count * itemsize)
    per_sample = sum(prod(shape[1:]) or 0 for shape in graph.shapes.values() if shape)
    return MemoryEstimate(
        parameters=(params + buffers) * itemsize,
        gradients=params * itemsize,
        optimizer=_optimizer_slots(optimizer) * params * itemsize,
        activations=2 * per_sample * batch_size * itemsize,
        batch_size=batch_size,
        optimizer_name=getattr(optimizer, "type", type(optimizer).__name__),
        largest=largest,
        data=_data_bytes(spec, itemsize),
    )


def _data_bytes(spec: Spec, itemsize: int) -> int:
    """Samples are made or read in float64, then cast to the network's dtype."""
    samples = getattr(spec.data, "known_samples", None)
    return (samples or 0) * (prod(spec.input.shape) or 0) * (8 + itemsize)


def _optimizer_slots(optimizer: Any) -> int:
    """Arrays of a parameter's size the optimizer keeps per parameter (its schema says)."""
    return len(optimizer.state_buffers())

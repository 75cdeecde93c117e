"""What every layer is: a frozen pydantic schema that mirrors a PyTorch constructor, plus a
shape rule, parameter init, forward and backward.

The schema half runs without any array (`netspec check`); the runtime half receives its
parameters, input and a `Context` from the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from netspec.types import LayerName, LayerRef, Schema, Shape


@dataclass(frozen=True)
class Shard:
    """This process's rows [start, stop) of a global batch of `rows` rows, in a
    data-parallel run (training/data_parallel.py): `sum` adds an array (or a number) over
    every process's shard. What mixes samples (BatchNorm's statistics, a mean's divisor)
    asks it for the global value; what draws per sample (Dropout) draws the global batch
    and keeps its own rows."""

    start: int
    stop: int
    rows: int
    sum: Callable[[Any], Any]


class Context:
    """What one call of a layer may keep and use: saved arrays for backward, the mode, the
    array module, a random generator, and side outputs (MaxPool2d's indices).

    `needs_input_grad` is False when no input of the layer leads back to a parameter or to
    an input gradient the caller asked for (the first Conv2d of a network, when training
    calls backward(..., input_grad=False)): backward may skip that work and return None.
    `shard` is set in a data-parallel run (see Shard), None in one process.
    """

    __slots__ = ("xp", "training", "rng", "saved", "outputs", "needs_input_grad", "shard")

    def __init__(self, xp: Any, training: bool, rng: Any = None, shard: Shard | None = None):
        self.xp = xp
        self.training = training
        self.rng = rng
        self.saved: tuple = ()
        self.outputs: dict[str, Any] = {}
        self.needs_input_grad = True
        self.shard = shard

    def save(self, *arrays: Any) -> None:
        self.saved = arrays

    def emit(self, name: str, array: Any) -> None:
        self.outputs[name] = array

    def total(self, value: Any) -> Any:
        """`value` summed over the processes of a data-parallel run (itself in one)."""
        return value if self.shard is None else self.shard.sum(value)


class Layer(Schema):
    """Base of every layer schema. Subclasses add `type: Literal[...]` and PyTorch's arguments."""

    name: LayerName | None = None
    """Name in the graph; defaults to the layer's index, as in torch.nn.Sequential."""
    inputs: list[LayerRef] | None = None
    """Names of the layers (or `input`) this one reads; defaults to the previous layer."""

    # How many inputs the layer takes: 1, or None for "two or more" (Add, Concat).
    arity: ClassVar[int | None] = 1
    # The output has the input's shape whatever the arguments: after an argument error,
    # shape inference goes on through the layer with its input's shape.
    keeps_shape: ClassVar[bool] = False
    # Names of side outputs (reachable as NAME.<side>) when enabled; see side_output_shapes.
    graph_keys: ClassVar[frozenset[str]] = frozenset({"type", "name", "inputs"})

    @property
    def type_name(self) -> str:
        return self.type  # type: ignore[attr-defined]

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k not in self.graph_keys}

    # -- schema side ------------------------------------------------------------------------
    def inferred_arguments(self, *inputs: Shape) -> dict[str, Any]:
        """Arguments left out that the input shapes fix (design.md §1.1, PyTorch's Lazy
        modules): `{"in_channels": 3}` for a Conv2d without one. Empty by default."""
        return {}

    def output_shape(self, *inputs: Shape) -> Shape:
        raise NotImplementedError(f"{type(self).__name__}.output_shape")

    def side_output_shapes(self, *inputs: Shape) -> dict[str, Shape]:
        """Shapes of extra outputs reachable as NAME.<key> (MaxPool2d's `indices`)."""
        return {}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trainable parameters, in PyTorch's registration order."""
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Non-trainable state saved in the state dict (running statistics)."""
        return {}

    def mixes_samples(self, *inputs: Shape) -> bool:
        """Whether one sample's output reads another sample's input through this layer's
        arithmetic (a softmax or a concatenation along dimension 0): such a network cannot
        be split by rows for data-parallel training. BatchNorm is not one: its statistics
        are summed over the processes."""
        return False

    def macs(self, inputs: Sequence[tuple[int, ...]], output: tuple[int, ...]) -> int:
        """Weight multiply-accumulates for concrete shapes (see design.md)."""
        return 0

    # -- runtime side -------------------------------------------------------------------------
    def init(self, rng: Any) -> dict[str, Any]:
        """Parameters and buffers as float64/int64 NumPy arrays, by PyTorch's scheme.

        `rng` is a numpy.random.Generator; the network casts and moves the arrays (its
        generator's `uniform` returns the network's dtype already, to spare a float64 copy).
        """
        return {}

    def forward(self, p: Any, x: Any, ctx: Context) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, p: Any, g: Any, ctx: Context, grads: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.backward")


def kaiming_uniform_bound(fan_in: int) -> float:
    """Bound of PyTorch's default init, kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), +)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


class ParamView:
    """Attribute access to one layer's entries in a flat `name -> array` store.

    `p.weight` reads `store["3.weight"]`; `grads.weight += g` accumulates in place;
    `p.running_mean = new` writes back into the store (how BatchNorm updates its buffers).
    """

    __slots__ = ("_store", "_prefix")

    def __init__(self, store: dict[str, Any], prefix: str):
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._store[self._prefix + key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._store[self._prefix + key] = value

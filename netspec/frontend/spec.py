"""The spec: a validated network description (input, layers, loss, train, data).

`load`/`loads` run the whole front end: parse the YAML with positions, normalise the three
layer forms, validate every layer and section with pydantic, then build the graph and infer
every shape. All problems are collected and raised together as one SpecError.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path as FilePath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    Strict,
    WithJsonSchema,
)

from netspec.data import AnyData
from netspec.errors import ArgError, Diagnostic
from netspec.frontend.diagnostics import Collector
from netspec.frontend.graph import Entry, Graph, build_graph, infer_shapes
from netspec.frontend.normalize import Origin
from netspec.frontend.source import Path, Source
from netspec.layers import AnyLayer
from netspec.losses import AnyLoss
from netspec.optim import Adam, AnyOptimizer
from netspec.optim.lr_scheduler import AnySchedule
from netspec.schema import dispatched
from netspec.types import Bool, Float, LayerRef, NonNegativeInt, PositiveInt, Schema

# Each entry is validated by the class its `type` (data: `source`) names: see schema.Dispatch.
LayerEntry = dispatched(AnyLayer)
LossEntry = dispatched(AnyLoss)
OptimizerEntry = dispatched(AnyOptimizer)
ScheduleEntry = dispatched(AnySchedule)
DataEntry = dispatched(AnyData)

# The model's name labels reports and run folders (`runs/<name>`): a layer name's rule plus '-'.
SPEC_NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"


def _spec_name(value: str) -> str:
    if re.fullmatch(SPEC_NAME_PATTERN, value):
        return value
    raise ArgError(
        None,
        f"name: expected letters, digits, '_' and '-', received {value!r}",
        "the name labels reports and runs/<name>: write e.g. my_model or lenet-5",
    )


Name = Annotated[
    str,
    Strict(),
    AfterValidator(_spec_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SPEC_NAME_PATTERN,
            "patternErrorMessage": "A model name is letters, digits, _ and - (no spaces).",
        }
    ),
]


class _Section(Schema):
    """A section of the spec (input, train, early_stopping, the spec itself)."""


class InputSpec(_Section):
    """One sample's shape, without the batch dimension: [C, H, W] for images, [F] for vectors."""

    shape: Annotated[list[PositiveInt], Field(min_length=1)]
    """Dimensions of one sample, batch left out."""
    dtype: Literal["float32", "float64"] = "float32"
    """Element type of the input and of the network's parameters."""


class EarlyStopping(_Section):
    """Stop when a monitored metric has not improved for `patience` epochs (Keras' rule)."""

    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    """Metric to watch (from the metrics log)."""
    patience: NonNegativeInt = 3
    """Epochs without improvement before stopping."""
    min_delta: Annotated[Float, Field(ge=0)] = 0.0
    """Smallest change that counts as an improvement."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether lower or higher is better; 'auto' takes min for losses, max for accuracies."""


class TrainSpec(_Section):
    """How to train: epochs, batches, optimizer, schedule, early stopping, seed."""

    epochs: PositiveInt = 10
    """Passes over the training data."""
    batch_size: PositiveInt = 64
    """Samples per step; the last partial batch is kept."""
    optimizer: OptimizerEntry = Field(default_factory=Adam)
    """SGD, Adam, AdamW or RMSprop with torch.optim's arguments."""
    lr_schedule: ScheduleEntry | None = None
    """A torch.optim.lr_scheduler, stepped once per epoch."""
    early_stopping: EarlyStopping | None = None
    """Stop early when a metric stalls."""
    seed: NonNegativeInt = 0
    """Seeds initialisation, shuffling and dropout (NumPy's generators take 0 or more)."""
    shuffle: Bool = True
    """Shuffle the training samples every epoch."""


class Spec(_Section):
    """A network: its input, layers (a chain or a graph), loss, training and data."""

    name: Name = "model"
    """Name of the model (used in reports and checkpoints)."""
    input: InputSpec
    """Shape of one input sample."""
    layers: Annotated[list[LayerEntry], Field(min_length=1)]
    """Layers in order; each may name its `inputs` to build a graph."""
    outputs: Annotated[list[LayerRef], Field(min_length=1)] | None = None
    """Layer names whose values the network returns; default: the last layer."""
    loss: LossEntry | None = None
    """Loss for training and evaluation."""
    train: TrainSpec | None = None
    """Training settings."""
    data: DataEntry | None = None
    """Where training and validation data come from."""

    _source: Source | None = PrivateAttr(default=None)
    _origins: dict[Path, Origin] = PrivateAttr(default_factory=dict)  # of sections
    _layer_origins: list[Origin] = PrivateAttr(default_factory=list)  # of each layer
    _modules: dict[str, str] = PrivateAttr(default_factory=dict)
    _warnings: list[Diagnostic] = PrivateAttr(default_factory=list)
    _graph: Graph | None = PrivateAttr(default=None)
    _graph_of: tuple = PrivateAttr(default=())  # what the graph was built from

    @property
    def source_name(self) -> str:
        return self._source.name if self._source else "<spec>"

    @property
    def spec_dir(self) -> FilePath | None:
        """Folder of the spec file: relative data paths resolve against it."""
        if self._source is None or self._source.name.startswith("<"):
            return None
        return FilePath(self._source.name).resolve().parent

    @property
    def modules(self) -> dict[str, str]:
        """The Sequential and block instances nesting made, by module path: their type
        (`{"layer1": "Sequential", "layer1.0": "BasicBlock"}`)."""
        return dict(self._modules)

    @property
    def warnings(self) -> list[Diagnostic]:
        """Warnings found while loading (legal but suspect choices)."""
        return list(self._warnings)

    @property
    def graph(self) -> Graph:
        """The analysed graph: names, order and shapes at a symbolic batch.

        load() builds it once; compile, train and infer reuse it. A Spec made otherwise
        (or copied with other layers, input or outputs) analyses its layers on first use.
        Raises SpecError when they do not form a valid graph.
        """
        key = (id(self.layers), tuple(self.input.shape), tuple(self.outputs or ()))
        if self._graph is None or self._graph_of != key:
            collector = self.collector()
            graph = build_graph(
                [Entry(layer) for layer in self.layers], self.outputs, self.layer_path, collector
            )
            infer_shapes(graph, self.input.shape, None, self.layer_path, collector)
            collector.raise_if_errors()
            self.keep_graph(graph)
        return self._graph  # type: ignore[return-value]

    def keep_graph(self, graph: Graph) -> None:
        """Record the analysed graph of this Spec's layers (load() does, once)."""
        self._graph = graph
        self._graph_of = (id(self.layers), tuple(self.input.shape), tuple(self.outputs or ()))

    def path_of(self, section: Path, field: str | None = None) -> Path:
        """Where an entry of the spec (`("loss",)`, `("layers", 3)`) or one of its arguments
        was written in the source; the YAML path itself when it was not loaded from text."""
        origin = self._origins.get(section)
        if origin is None:
            return section if field is None else (*section, field)
        return origin.path(field)

    def layer_path(self, index: int, field: str | None = None) -> Path:
        """Where layer `index` (or one of its arguments) was written in the source."""
        if index < len(self._layer_origins):
            return self._layer_origins[index].path(field)
        return ("layers", index) if field is None else ("layers", index, field)

    def collector(self) -> Collector:
        return Collector(self._source or Source(name="<spec>", text="", data=None))

    def fingerprint(self) -> str:
        """A hash of the validated spec (not of its formatting): checkpoints record it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

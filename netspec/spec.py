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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from netspec.data import AnyData
from netspec.diagnostics import Collector, Diagnostic
from netspec.layers import LAYER_TYPES, AnyLayer, Identity, Layer
from netspec.layers.base import (
    ArgError,
    Bool,
    Float,
    LayerRef,
    NonNegativeInt,
    PositiveInt,
    name_problem,
)
from netspec.losses import LOSS_TYPES, AnyLoss
from netspec.normalize import GRAPH_KEYS, Origin, normalize_entry
from netspec.optim import OPTIMIZER_TYPES, Adam, AnyOptimizer
from netspec.schedule import SCHEDULE_TYPES, AnySchedule
from netspec.source import Path, Source, parse, read_text
from netspec.validation import report_validation_error

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
    optimizer: AnyOptimizer = Field(default_factory=Adam)
    """SGD, Adam or AdamW with torch.optim's arguments."""
    lr_schedule: AnySchedule | None = None
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
    layers: Annotated[list[AnyLayer], Field(min_length=1)]
    """Layers in order; each may name its `inputs` to build a graph."""
    outputs: Annotated[list[LayerRef], Field(min_length=1)] | None = None
    """Layer names whose values the network returns; default: the last layer."""
    loss: AnyLoss | None = None
    """Loss for training and evaluation."""
    train: TrainSpec | None = None
    """Training settings."""
    data: AnyData | None = None
    """Where training and validation data come from."""

    _source: Source | None = PrivateAttr(default=None)
    _origins: dict[Path, Origin] = PrivateAttr(default_factory=dict)
    _warnings: list[Diagnostic] = PrivateAttr(default_factory=list)
    _raw_names: dict[int, str] = PrivateAttr(default_factory=dict)  # of layers that failed
    _raw_types: dict[int, str] = PrivateAttr(default_factory=dict)  # same, default inputs only

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
    def warnings(self) -> list[Diagnostic]:
        """Warnings found while loading (legal but suspect choices)."""
        return list(self._warnings)

    def layer_path(self, index: int, field: str | None = None) -> Path:
        """Where layer `index` (or one of its arguments) was written in the source."""
        origin = self._origins.get(("layers", index))
        if origin is None:
            return ("layers", index) if field is None else ("layers", index, field)
        return origin.path(field)

    def collector(self) -> Collector:
        return Collector(self._source or Source(name="<spec>", text="", data=None))

    def fingerprint(self) -> str:
        """A hash of the validated spec (not of its formatting): checkpoints record it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Where typed entries live and what they may be: the three-form sections of a spec.
_ENTRY_SECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "loss": (LOSS_TYPES, "loss"),
    "optimizer": (OPTIMIZER_TYPES, "optimizer"),
    "lr_schedule": (SCHEDULE_TYPES, "schedule"),
}
KINDS: dict[str, Any] = {**LAYER_TYPES, **LOSS_TYPES, **OPTIMIZER_TYPES, **SCHEDULE_TYPES}
_layer_adapter: TypeAdapter = TypeAdapter(AnyLayer)
_OPTIONAL_SECTIONS = {"name", "outputs", "loss", "train", "data"}


def load(path: str | FilePath) -> Spec:
    """Read and check a spec file. Raises SpecError listing every problem."""
    text = read_text(path)
    return loads(text, source=str(path))


def loads(text: str, source: str = "<string>") -> Spec:
    """Check a spec given as YAML text. Raises SpecError listing every problem."""
    src = parse(text, source)
    collector = Collector(src)
    collector.diagnostics.extend(src.problems)
    spec = _validate(src, collector)
    if spec is not None:
        from netspec.graph import analyse

        analyse(spec, collector)
    collector.raise_if_errors()
    assert spec is not None  # no errors means every part validated
    spec._warnings = collector.warnings
    return spec


def _validate(src: Source, collector: Collector) -> Spec | None:
    """Validate every part, collecting all errors.

    The result may hold None for layers that failed: shape inference still runs over the
    rest so that their errors are reported too, but such a Spec never leaves `loads`.
    """
    data = src.data
    if not isinstance(data, dict):
        collector.error(
            (),
            "not-a-mapping",
            "a spec must be a mapping with `input:` and `layers:`",
            "see the example in the README",
        )
        return None
    data = dict(data)
    if "loss" in data and data["loss"] is None:
        collector.error(
            ("loss",),
            "bad-loss",
            "expected a loss, received null",
            "leave `loss:` out for a spec without a loss, or name one: loss: MSELoss",
        )
        del data["loss"]
    origins: dict[Path, Origin] = {}
    raw_names: dict[int, str] = {}
    raw_types: dict[int, str] = {}
    layers = _validate_layers(data, origins, collector, raw_names, raw_types)
    for key, (kinds, what) in _ENTRY_SECTIONS.items():
        _normalize_section(data, key, kinds, what, origins, collector)
    if layers is not None:
        data["layers"] = [Identity()]  # stands in while the other sections are validated
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        report_validation_error(exc, data, (), origins, collector, Spec, KINDS)
        # Go on without the broken optional sections, so the graph is still checked.
        broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
        if broken - _OPTIONAL_SECTIONS:
            return None
        spec = Spec.model_validate({k: v for k, v in data.items() if k not in broken})
    if layers is None:
        return None
    spec = spec.model_copy(update={"layers": layers})
    spec._source = src
    spec._origins = origins
    spec._raw_names = raw_names
    spec._raw_types = raw_types
    return spec


def _validate_layers(
    data: dict,
    origins: dict[Path, Origin],
    collector: Collector,
    raw_names: dict[int, str],
    raw_types: dict[int, str],
) -> list | None:
    raw = data.get("layers")
    if not isinstance(raw, list) or not raw:
        return None  # validating the Spec reports a missing, empty or non-list `layers`
    layers: list[Layer | None] = []
    for i, item in enumerate(raw):
        entry, origin = normalize_entry(
            item, ("layers", i), LAYER_TYPES, "layer", collector, GRAPH_KEYS
        )
        origins[("layers", i)] = origin
        layer = None
        if entry is not None:
            _check_name(entry.get("name"), origin, collector)
            try:
                layer = _layer_adapter.validate_python(entry)
            except ValidationError as exc:
                report_validation_error(exc, entry, ("layers", i), origins, collector, None, KINDS)
                if isinstance(entry.get("name"), str):
                    raw_names[i] = entry["name"]  # so that layers reading it are still checked
                if "inputs" not in entry:  # shape inference may go on through it
                    raw_types[i] = entry["type"]
        layers.append(layer)
    return layers


def _check_name(name: Any, origin: Origin, collector: Collector) -> None:
    """Refuse a layer name outside the name rule; the layer itself is still checked."""
    problem = name_problem(name) if isinstance(name, str) else None
    if problem is not None:
        collector.error(origin.path("name"), "name", *problem)


def _normalize_section(
    data: dict, key: str, kinds: dict, what: str, origins: dict[Path, Origin], collector: Collector
) -> None:
    """Normalise `loss` at the top level, `optimizer`/`lr_schedule` inside `train`."""
    holder, prefix = (data, ()) if key == "loss" else (data.get("train"), ("train",))
    if not isinstance(holder, dict) or holder.get(key) is None:
        return
    path = (*prefix, key)
    entry, origin = normalize_entry(holder[key], path, kinds, what, collector)
    origins[path] = origin
    if prefix:  # `train` is the user's mapping: change a copy
        holder = data["train"] = dict(holder)
    if entry is None:
        del holder[key]  # already reported; validating the rest goes on without it
    else:
        holder[key] = entry

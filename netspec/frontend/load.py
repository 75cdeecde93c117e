"""load(): the front end from YAML text to a checked Spec with its analysed Graph.

Parse the YAML with positions, normalise the three layer forms, validate every layer and
section with pydantic, then build the graph, infer every shape and lint. All problems are
collected and raised together as one SpecError.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from pydantic import TypeAdapter, ValidationError

from netspec.frontend.diagnostics import Collector
from netspec.frontend.normalize import GRAPH_KEYS, Origin, normalize_entry
from netspec.frontend.source import Path, Source, parse, read_text
from netspec.frontend.spec import Spec
from netspec.frontend.validate import report_validation_error
from netspec.layers import LAYER_TYPES, AnyLayer, Identity, Layer
from netspec.losses import LOSS_TYPES
from netspec.optim import OPTIMIZER_TYPES
from netspec.optim.lr_scheduler import SCHEDULE_TYPES
from netspec.types import name_problem

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
        from netspec.frontend.graph import analyse

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

"""load(): the front end from YAML text to a checked Spec with its analysed Graph.

Parse the YAML with positions, normalise the three layer forms, validate every layer and
section with pydantic, then build the graph, infer every shape and lint. All problems are
collected and raised together as one SpecError.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any, get_args

from pydantic import ValidationError

from netspec.frontend.blocks import read_blocks
from netspec.frontend.diagnostics import Collector
from netspec.frontend.expand import Expander
from netspec.frontend.graph import Entry, Graph, build_graph, infer_shapes
from netspec.frontend.lint import lint
from netspec.frontend.normalize import Origin, normalize_entry
from netspec.frontend.source import Path, Source, parse, read_text
from netspec.frontend.spec import LayerEntry, Spec
from netspec.frontend.validate import report_validation_error
from netspec.layers import LAYER_TYPES, Identity
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
_LAYER = get_args(LayerEntry)[1]  # validates a layer with its own class (schema.Dispatch)
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
    checked = _validate(src, collector)
    if checked is not None:
        sections, entries = checked
        graph = analyse(sections, entries, collector)
    collector.raise_if_errors()
    assert checked is not None  # no errors means every part validated
    layers = [node.layer for node in sorted(graph.nodes, key=lambda node: node.index)]
    spec = sections.model_copy(update={"layers": layers})  # with the inferred sizes
    spec.keep_graph(graph)
    spec._warnings = collector.warnings
    return spec


def analyse(sections: Spec, entries: list[Entry], collector: Collector) -> Graph:
    """Graph, shapes and lints; problems go to `collector`."""
    graph = build_graph(entries, sections.outputs, sections.layer_path, collector)
    infer_shapes(graph, sections.input.shape, None, sections.layer_path, collector)
    lint(sections, graph, collector)
    return graph


def _validate(src: Source, collector: Collector) -> tuple[Spec, list[Entry]] | None:
    """Validate every part, collecting all errors: the Spec's other sections (its `layers`
    a stand-in) and one Entry per layer, None where nothing can be checked further.

    Entries of layers that failed keep their written name and type: shape inference still
    runs over the rest so that their errors are reported too.
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
    layer_origins: list[Origin] = []
    modules: dict[str, str] = {}
    entries = _validate_layers(data, origins, layer_origins, modules, collector)
    for key, (kinds, what) in _ENTRY_SECTIONS.items():
        _normalize_section(data, key, kinds, what, origins, collector)
    if entries is not None:
        # Stands in while the other sections are validated (constructed: nothing to build).
        data["layers"] = [Identity.model_construct()]
    try:
        sections = Spec.model_validate(data)
    except ValidationError as exc:
        report_validation_error(exc, data, (), origins, collector, Spec, KINDS)
        # Go on without the broken optional sections, so the graph is still checked.
        broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
        if broken - _OPTIONAL_SECTIONS:
            return None
        sections = Spec.model_validate({k: v for k, v in data.items() if k not in broken})
    if not entries:
        return None
    sections._source = src
    sections._origins = origins
    sections._layer_origins = layer_origins
    sections._modules = modules
    return sections, entries


def _validate_layers(
    data: dict,
    origins: dict[Path, Origin],
    layer_origins: list[Origin],
    modules: dict[str, str],
    collector: Collector,
) -> list[Entry] | None:
    """Expand the nesting (blocks, Sequential, repeat) and validate every layer it makes.

    `data` loses `blocks`, and its `outputs` name full paths (`layer1` -> `layer1.1.out`).
    """
    expander = Expander(read_blocks(data.pop("blocks", None), collector), collector)
    raw = data.get("layers")
    if not isinstance(raw, list) or not raw:
        return None  # validating the Spec reports a missing, empty or non-list `layers`
    flat = expander.expand(raw, ("layers",))  # empty when every use failed (said so)
    modules.update(expander.modules)
    if isinstance(data.get("outputs"), list):
        data["outputs"] = [expander.output_ref(ref) for ref in data["outputs"]]
    entries: list[Entry] = []
    for layer in flat:
        entry, origin = layer.entry, layer.origin
        layer_origins.append(origin)
        origins[origin.base] = origin
        if entry is None:
            entries.append(Entry(None, layer.name))
            continue
        _check_name(entry.get("name"), origin, collector)
        try:
            entries.append(Entry(_LAYER.validate(entry)))
        except ValidationError as exc:
            report_validation_error(exc, entry, origin.base, origins, collector, None, KINDS)
            name = entry.get("name")  # so that layers reading it are still checked
            reads_previous = "inputs" not in entry  # shape inference may go on through it
            entries.append(
                Entry(
                    None,
                    name if isinstance(name, str) else None,
                    entry["type"] if reads_previous else None,
                )
            )
    return entries


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

"""The shape report: every layer's shapes, parameter counts and MACs, as torchinfo shows
them, computed from the analysed graph without running anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from netspec.frontend.graph import INPUT, Graph, infer_shapes
from netspec.types import Shape, prod

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec


@dataclass(frozen=True)
class Row:
    """One layer of the shape report, as torchinfo would show it."""

    name: str
    type: str
    inputs: list[str]
    input_shapes: list[Shape]
    output_shape: Shape
    params: int
    trainable_params: int
    macs: int
    # Where a size came from is no part of the row's value: a flat spec that writes the
    # inferred sizes out reports equal rows (design.md §1.2).
    inferred: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    macs: int
    param_bytes: int
    activation_bytes: int


@dataclass(frozen=True)
class ShapeReport:
    """Every layer's shapes, parameter counts and MACs, computed without running anything.

    With a symbolic batch (`batch_size=None`) shapes show `None` for the batch, and MACs and
    activation bytes are per sample.
    """

    name: str
    input_shape: Shape
    outputs: list[str]
    output_shapes: list[Shape]
    batch_size: int | None
    rows: list[Row]
    totals: Totals
    chain: bool  # every layer reads the one before it: the report can hide `inputs`

    def to_dict(self) -> dict[str, Any]:

        return asdict(self)


def infer(spec: Spec, batch_size: int | None = None) -> ShapeReport:
    """Infer every shape of `spec` for a batch size (None: symbolic). Raises SpecError."""
    graph = spec.graph
    if batch_size is not None:  # the same graph, its shapes at this batch size
        collector = spec.collector()
        graph = Graph(list(graph.nodes), graph.outputs)
        infer_shapes(graph, spec.input.shape, batch_size, spec.layer_path, collector)
        collector.raise_if_errors()
    return _report(spec, graph, batch_size)


def _report(spec: Spec, graph: Graph, batch: int | None) -> ShapeReport:
    itemsize = 8 if spec.input.dtype == "float64" else 4
    n = batch or 1
    rows = []
    for node in graph.nodes:
        in_shapes = [graph.shapes[ref] for ref in node.inputs]
        out = graph.shapes[node.name]
        params = sum(prod(s) or 0 for s in node.layer.parameter_shapes().values())
        concrete_in = [_concrete(s, n) for s in in_shapes]
        macs = node.layer.macs(concrete_in, _concrete(out, n))
        rows.append(
            Row(
                node.name,
                node.layer.type_name,
                list(node.inputs),
                in_shapes,
                out,
                params,
                params,
                macs,
                dict(node.inferred),
            )
        )
    params = sum(r.params for r in rows)
    activations = sum(prod(_concrete(r.output_shape, n)) or 0 for r in rows)
    totals = Totals(
        params, params, sum(r.macs for r in rows), params * itemsize, activations * itemsize
    )
    chain = all(
        node.inputs == ((INPUT,) if k == 0 else (graph.nodes[k - 1].name,))
        for k, node in enumerate(graph.nodes)
    )
    outputs = [graph.shapes[ref] for ref in graph.outputs]
    return ShapeReport(
        spec.name, graph.shapes[INPUT], graph.outputs, outputs, batch, rows, totals, chain
    )


def folded_rows(report: ShapeReport, modules: dict[str, str], depth: int) -> list[Row]:
    """The rows with everything below `depth` folded into its module, as torchinfo's depth:
    `layer1.0.conv1` at depth 1 is part of the row `layer1`, whose params and MACs add up
    its layers', whose inputs are what they read from outside it (named at this depth too),
    and whose output is its last layer's. `modules` gives their types (Spec.modules)."""
    groups: dict[str, list[Row]] = {}
    for row in report.rows:
        groups.setdefault(".".join(row.name.split(".")[:depth]), []).append(row)
    shown = {row.name: key for key, members in groups.items() for row in members}

    def seen_as(ref: str) -> str:
        """`ref` at this depth: its module, or itself (`input`, a side output kept whole)."""
        if ref in shown:
            return shown[ref]
        producer = ref.rsplit(".", 1)[0]  # NAME.indices
        return shown[producer] if shown.get(producer, producer) != producer else ref

    folded = []
    for key, members in groups.items():
        reads: dict[str, Shape] = {}
        for member in members:
            for ref, shape in zip(member.inputs, member.input_shapes, strict=True):
                seen = seen_as(ref)
                if seen != key:
                    reads.setdefault(seen, shape)
        if len(members) == 1 and members[0].name == key:  # a layer of its own at this depth
            folded.append(
                replace(members[0], inputs=list(reads), input_shapes=list(reads.values()))
            )
            continue
        folded.append(
            Row(
                key,
                modules.get(key, "Sequential"),
                list(reads),
                list(reads.values()),
                members[-1].output_shape,
                sum(m.params for m in members),
                sum(m.trainable_params for m in members),
                sum(m.macs for m in members),
            )
        )
    return folded


def _concrete(shape: Shape, batch: int) -> tuple[int, ...]:
    return tuple(batch if d is None else d for d in shape)

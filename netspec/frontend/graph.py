"""Names, inputs, topological order and shape inference: the spec's layers as a graph.

`build_graph` resolves every layer's name and inputs, refuses duplicates, dangling
references and cycles, and orders the layers. `infer_shapes` runs each layer's pure shape
rule in that order (no arrays), carrying on past an error with the shape the layer's own
arguments imply so that later problems are reported in the same run.

Both work on `Entry`s, not on a Spec: the front end analyses the layers before a Spec
exists (some may have failed validation), and a Spec keeps the graph that load() built.
`where(index, field)` says where layer `index` was written, to locate problems.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from netspec.frontend.diagnostics import Collector, did_you_mean
from netspec.frontend.source import Path
from netspec.layers import LAYER_TYPES, Flatten, Layer
from netspec.types import Shape, ShapeError

INPUT = "input"
Where = Callable[[int, "str | None"], Path]  # (layer index, argument) -> its YAML path


@dataclass(frozen=True)
class Entry:
    """One entry of `layers`: its layer, or for a layer whose arguments failed validation
    (already reported) the name and type written, so that the layers reading it are still
    checked and shapes go on through it where its type keeps them."""

    layer: Layer | None
    name: str | None = None  # of a failed layer
    type_name: str | None = None  # of a failed layer that reads the previous one


@dataclass(frozen=True)
class Node:
    """One layer in the graph: its index in `layers`, resolved name and input references."""

    index: int
    name: str  # unique in the graph: a second use of a name gets a private suffix
    layer: Layer
    inputs: tuple[str, ...]  # "input", a layer name, or "NAME.indices"
    label: str = ""  # the name as the user wrote it, for messages (default: `name`)
    failed_type: str | None = None  # the type of a layer whose arguments failed
    inferred: dict[str, Any] = field(default_factory=dict)  # arguments the shapes filled in

    @property
    def shown(self) -> str:
        """The layer's name in the user's terms (never the private `name#i`)."""
        return self.label or self.name


@dataclass
class Graph:
    nodes: list[Node]  # topological order
    outputs: list[str]
    shapes: dict[str, Shape] = field(default_factory=dict)  # reference -> shape (None: unknown)

    def producer(self, ref: str) -> str:
        """The layer whose value `ref` is: itself, or for `NAME.indices` the layer NAME."""
        return producer(ref, {node.name for node in self.nodes})

    def consumers(self) -> dict[str, list[str]]:
        used: dict[str, list[str]] = {}
        for node in self.nodes:
            for ref in node.inputs:
                used.setdefault(ref, []).append(node.name)
        return used


def build_graph(
    entries: Sequence[Entry], outputs: Sequence[str] | None, where: Where, collector: Collector
) -> Graph:
    """Resolve names and inputs, check references and order the layers.

    Problems go to `collector`; the graph keeps whatever could be ordered (layers on a cycle
    are left out, unknown references have unknown shapes) so that checking can go on.
    """
    names: dict[str, int] = {}
    labels: dict[str, str] = {}  # private name -> the user's
    pending: list[tuple[int, str, Layer | None, tuple[str, ...] | None]] = []
    for i, entry in enumerate(entries):
        layer = entry.layer
        written = entry.name if layer is None else layer.name
        name = written if written is not None else str(i)
        if name in names or name == INPUT:
            reason = (
                f"duplicate layer name '{name}' (first used by layer {names[name]})"
                if name in names
                else f"'{name}' cannot name a layer: it is the spec's input"
            )
            collector.error(where(i, "name"), "name", reason)
            labels[f"{name}#{i}"] = name
            name = f"{name}#{i}"  # a private name: references keep meaning the first
        names.setdefault(name, i)
        default = (INPUT,) if i == 0 else (pending[-1][1],)
        inputs = tuple(layer.inputs) if layer is not None and layer.inputs is not None else default
        pending.append((i, name, layer, inputs))

    side_outputs = {f"{n}.indices" for _, n, layer, _ in pending if _has_indices(layer)}
    known = set(names) | side_outputs | {INPUT}
    for i, _, layer, inputs in pending:
        if layer is None:
            continue
        _check_inputs(where, i, layer, inputs, known, collector)
    outputs = list(outputs) if outputs else [pending[-1][1]]
    for j, ref in enumerate(outputs):
        if ref not in known:
            hint = did_you_mean(ref, known)
            collector.error(("outputs", j), "unknown-output", f"unknown output '{ref}'", hint)
    order = _topological_order(where, pending, names, labels, collector)
    nodes = [
        Node(i, name, layer, inputs, labels.get(name, ""), entries[i].type_name)
        for i, name, layer, inputs in order
    ]
    return Graph(nodes, outputs)


def producer(ref: str, names: set[str]) -> str:
    """`ref` if a layer has that name, else the layer of a side output (`pool.indices`)."""
    if ref in names or "." not in ref:
        return ref
    return ref.rsplit(".", 1)[0]


def _has_indices(layer: Layer | None) -> bool:
    return bool(getattr(layer, "return_indices", False))


def _arity_ok(layer: Layer, inputs: list) -> bool:
    return len(inputs) == 1 if layer.arity == 1 else len(inputs) >= 2


def _check_inputs(where, i, layer, inputs, known, collector) -> None:
    for j, ref in enumerate(inputs):
        if ref not in known:
            hint = did_you_mean(ref, known) or f"known: {', '.join(sorted(known))}"
            path = where(i, "inputs")
            collector.error((*path, j), "unknown-input", f"unknown input '{ref}'", hint)
    if _arity_ok(layer, list(inputs)):
        return
    if layer.arity == 1:
        collector.error(
            where(i, "inputs"),
            "arity",
            f"{layer.type_name} takes one input, received {len(inputs)}",
            "join branches first with Add or Concat",
        )
    else:
        collector.error(
            where(i, "inputs"),
            "arity",
            f"{layer.type_name} joins two or more inputs, received {len(inputs)}",
            "list them: `inputs: [a, b]`",
        )


def _topological_order(where, pending, names, labels, collector):
    """Kahn's algorithm, taking the lowest index first so chains keep their written order."""
    known = set(names)  # once: a set per layer made this quadratic (40,000 layers: 68 s)
    deps = {p[1]: {producer(ref, known) for ref in p[3] if ref != INPUT} & known for p in pending}
    by_name = {p[1]: p for p in pending}
    users: dict[str, list[str]] = {n: [] for n in deps}
    for n, ds in deps.items():
        for d in ds:
            users[d].append(n)
    waiting = {n: len(ds) for n, ds in deps.items()}
    ready = [(by_name[n][0], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(by_name[n])
        for u in users[n]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (by_name[u][0], u))
    if len(order) < len(pending):
        stuck = {n for n, count in waiting.items() if count > 0}
        index = {n: by_name[n][0] for n in stuck}
        for cycle in _cycles(stuck, users, deps, index):
            shown = " -> ".join(labels.get(n, n) for n in (*cycle, cycle[0]))
            collector.error(
                where(index[cycle[0]], "inputs"),
                "cycle",
                f"layers form a cycle: {shown}",
                "a layer's inputs must not depend on itself",
            )
    return order


def _cycles(stuck: set[str], users: dict, deps: dict, index: dict[str, int]) -> list[list[str]]:
    """One cycle per strongly connected group of the layers Kahn's algorithm could not order,
    each in the order data flows, from its first-written layer. The other stuck layers only
    read a cycle's output: they are not on it, so they are not named."""
    found, placed = [], set()
    for start in sorted(stuck, key=index.get):
        if start in placed:
            continue
        path = _shortest_way_back(start, stuck, users, index)
        if path is None:
            continue  # downstream of a cycle
        found.append(path)
        placed |= _reachable(start, stuck, users) & _reachable(start, stuck, deps)  # its group
    return found


def _shortest_way_back(start, stuck, users, index) -> list[str] | None:
    """The layers on the shortest flow path from `start` back to itself (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for n in frontier:
            for u in sorted((u for u in users[n] if u in stuck), key=index.get):
                if u == start:
                    path = [n]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if u not in came_from:
                    came_from[u] = n
                    following.append(u)
        frontier = following
    return None


def _reachable(start, stuck, edges) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for u in edges[todo.pop()]:
            if u in stuck and u not in seen:
                seen.add(u)
                todo.append(u)
    return seen


# Errors about sizes: after a layer whose output sizes are a guess they would be bogus.
_SIZE_CODES = frozenset({"size", "kernel-size", "features", "merge", "empty", "batch"})


def infer_shapes(
    graph: Graph, sample: Sequence[int], batch: int | None, where: Where, collector: Collector
) -> None:
    """Fill `graph.shapes`; shape errors become diagnostics, unknown shapes propagate quietly.

    After an error, a layer's output is the shape its declared arguments give; where those
    were refused it is a guess (`guessed`), and later errors about sizes are left out.
    """
    graph.shapes[INPUT] = (batch, *sample)
    guessed: set[str] = set()
    for k, node in enumerate(graph.nodes):
        inputs = [graph.shapes.get(ref) for ref in node.inputs]
        on_guess = any(ref in guessed for ref in node.inputs)
        if node.layer is None and _keeps_shape(node.failed_type):
            graph.shapes[node.name] = inputs[0]  # its arguments failed, not its shape
            if on_guess:
                guessed.add(node.name)
            continue
        if node.layer is None or not _arity_ok(node.layer, inputs) or None in inputs:
            graph.shapes[node.name] = None
            continue
        made = [node.name]  # and its side outputs, NAME.indices
        inferred = node.layer.inferred_arguments(*inputs)
        if inferred:  # the layer is the one with the sizes filled in, from here on
            node = replace(node, layer=node.layer.model_copy(update=inferred), inferred=inferred)
            graph.nodes[k] = node
        try:
            out = node.layer.output_shape(*inputs)
            for key, shape in node.layer.side_output_shapes(*inputs).items():
                graph.shapes[f"{node.name}.{key}"] = shape
                made.append(f"{node.name}.{key}")
        except ShapeError as exc:
            for problem in exc.all:
                if on_guess and problem.code in _SIZE_CODES:
                    continue
                hint = _flatten_hint(problem, graph, node)
                path = where(node.index, problem.field)
                collector.error(path, problem.code, problem.message, hint)
            out = exc.recovered
            on_guess = on_guess or exc.guessed
        graph.shapes[node.name] = out
        if on_guess:
            guessed.update(made)


def _keeps_shape(type_name: str | None) -> bool:
    kind = LAYER_TYPES.get(type_name) if type_name is not None else None
    return kind is not None and kind.keeps_shape


def _flatten_hint(exc: ShapeError, graph: Graph, node: Node) -> str | None:
    """Say what a Flatten before a mismatched layer produces: that is the number to write."""
    if not exc.hint or len(node.inputs) != 1:
        return exc.hint
    producer = next((n for n in graph.nodes if n.name == node.inputs[0]), None)
    if producer is None or not isinstance(producer.layer, Flatten):
        return exc.hint
    source = graph.shapes.get(producer.inputs[0])
    if source is None:
        return exc.hint
    what = producer.layer.describe_flattening(source)
    return f"{exc.hint} — Flatten '{producer.shown}' after '{producer.inputs[0]}' yields {what}"

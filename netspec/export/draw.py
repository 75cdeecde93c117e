"""`netspec draw`: the analysed graph as Graphviz DOT, and rendered by Graphviz's `dot`.

Mirrors what Caffe's draw_net.py and Keras' plot_model show: one box per layer (name, type,
output shape at a symbolic batch), an edge per input, and here the blocks and Sequentials
that nesting made as nested clusters, so a ResNet reads as its stages and blocks. The
`graphviz` package (an extra) is imported only inside these functions; `.dot` needs no
Graphviz program, `.svg` and `.png` need `dot` on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from netspec.errors import NetspecError
from netspec.types import format_shape

FORMATS = (".dot", ".svg", ".png")
INPUT = "input"


class DrawError(NetspecError):
    """The picture cannot be made here: a missing package or program, a file not written."""


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError:
        raise DrawError(
            "drawing needs the graphviz Python package: pip install 'netspec[export]'"
        ) from None
    return graphviz


def _shape(graph, ref: str) -> str:
    shape = graph.shapes.get(ref)
    return "?" if shape is None else format_shape(shape)


def _enclosing_modules(name: str, modules: dict[str, str]) -> list[str]:
    """The module paths around layer `name`, outermost first (`b2`, `b2.downsample`)."""
    parts = name.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return [prefix for prefix in prefixes if prefix in modules]


def _cluster_tree(graph, modules: dict[str, str]) -> dict[str | None, list]:
    """Parent module (None: top level) -> its members in graph order: ("module", path) for a
    nested module, the first time one of its layers appears, and ("layer", node)."""
    members: dict[str | None, list] = {None: []}
    for node in graph.nodes:
        parent: str | None = None
        for path in _enclosing_modules(node.name, modules):
            if path not in members:
                members[path] = []
                members[parent].append(("module", path))
            parent = path
        members[parent].append(("layer", node))
    return members


def _layer_label(graph, node) -> str:
    return "\\n".join((node.shown, node.layer.type_name, _shape(graph, node.name)))


def _add_members(target, parent, members, graph, modules, outputs: set[str]) -> None:
    for kind, item in members[parent]:
        if kind == "layer":
            style = {"peripheries": "2"} if item.name in outputs else {}
            target.node(item.name, _layer_label(graph, item), **style)
            continue
        with target.subgraph(name=f"cluster_{item}") as cluster:
            cluster.attr(label=f"{item}: {modules[item]}", style="rounded", color="gray50")
            _add_members(cluster, item, members, graph, modules, outputs)


def _add_edges(dot, graph) -> None:
    names = {node.name for node in graph.nodes}
    for node in graph.nodes:
        for ref in node.inputs:
            source = graph.producer(ref) if ref != INPUT else INPUT
            if ref != INPUT and ref not in names:  # a side output: `pool.indices`
                dot.edge(source, node.name, label=ref.rsplit(".", 1)[1], style="dashed")
            else:
                dot.edge(source, node.name)
    for ref in graph.outputs:
        if ref not in names:  # a side output the network returns
            dot.node(ref, f"{ref}\\n{_shape(graph, ref)}", shape="plaintext")
            dot.edge(graph.producer(ref), ref, label=ref.rsplit(".", 1)[1], style="dashed")


def to_dot(spec) -> Any:
    """The spec's graph as a `graphviz.Digraph` (its `.source` is the DOT text)."""
    graphviz = _graphviz()
    graph = spec.graph
    modules = spec.modules
    dot = graphviz.Digraph(name=spec.name or "netspec")
    dot.attr(rankdir="TB", label=spec.name or "", labelloc="t")
    dot.attr("node", shape="box", style="rounded", fontname="Helvetica")
    dot.attr("edge", fontname="Helvetica", fontsize="10")
    dot.node(INPUT, f"input\\n{_shape(graph, INPUT)}", shape="ellipse")
    members = _cluster_tree(graph, modules)
    _add_members(dot, None, members, graph, modules, set(graph.outputs))
    _add_edges(dot, graph)
    return dot


def dot_source(spec) -> str:
    """The DOT text of the spec's graph (no Graphviz program needed)."""
    return to_dot(spec).source


def draw(spec, path: str | Path) -> Path:
    """Write the graph to `path`: DOT text for `.dot`, a picture for `.svg`/`.png`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DrawError(f"cannot draw to {path.name}: the file must end in .dot, .svg or .png")
    dot = to_dot(spec)
    if suffix == ".dot":
        _write(path, dot.source.encode("utf-8"))
        return path
    if shutil.which("dot") is None:
        raise DrawError(
            f"rendering {suffix[1:]} needs Graphviz's `dot` program, which is not on PATH: "
            "install Graphviz (apt install graphviz, brew install graphviz), or write .dot"
        )
    graphviz = _graphviz()
    try:
        picture = dot.pipe(format=suffix[1:], quiet=True)  # its stderr goes into the line
    except graphviz.ExecutableNotFound:
        raise DrawError(
            f"Graphviz's `dot` program could not be run to render {path.name}"
        ) from None
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        reason = f": {said[-1]}" if said else f" (dot exited {exc.returncode})"
        raise DrawError(f"Graphviz could not render {path.name}{reason}") from None
    _write(path, picture)
    return path


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise DrawError(f"cannot write {path}: {exc.strerror or exc}") from None

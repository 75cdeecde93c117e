"""The body of the exported Net's `forward`: the graph, one statement per module call.

A plain chain (each layer reads the one before, the last is the output, every top-level
module callable) is one call per top-level module. Otherwise each layer the outputs depend
on is a statement in the graph's order, its value in a variable named after the layer
(`b1.conv1` -> `b1_conv1`); a Sequential whose members form a chain that nothing else reads
into is called whole; Add is `+`, Concat `torch.cat`, and a pool with `return_indices`
unpacks its indices, which the outputs may name (`pool.indices`).
"""

from __future__ import annotations

import builtins
import keyword

from netspec.export.torch_modules import Module, access
from netspec.frontend.graph import INPUT

ROOM = 100 - 8  # a line of forward's body, after its indentation
_TAKEN = {"self", "torch", "nn", "x", *dir(builtins)}  # input: forward's argument


def forward_lines(spec, tree: Module) -> list[str]:
    """The statements of `forward(self, input)` for the spec's graph."""
    calls = _module_expressions(tree, "self")
    graph = spec.graph
    if _is_chain(graph, tree):
        paths = tree_paths(tree)
        if all(calls[path].startswith("self.") and "getattr" not in calls[path] for path in paths):
            return _chain_lines([calls[path] for path in paths])
        return ["x = input", "for module in self.children():", "    x = module(x)", "return x"]
    return _graph_lines(graph, tree, calls)


def tree_paths(tree: Module) -> list[str]:
    return [child.path for child in tree.children.values()]


def _module_expressions(module: Module, target: str) -> dict[str, str]:
    """Module path -> the expression that reads it (`self.layer1[0].conv1`)."""
    found = {module.path: target} if module.path else {}
    for name, child in module.children.items():
        found.update(_module_expressions(child, access(target, module.kind, name)))
    return found


def _callable(module: Module) -> bool:
    """A layer, or a Sequential of callable members (a plain container has no forward)."""
    if module.kind == "layer":
        return not module.children
    return module.kind == "sequential" and all(map(_callable, module.children.values()))


def _has_indices(layer) -> bool:
    return bool(getattr(layer, "return_indices", False))


def _is_chain(graph, tree: Module) -> bool:
    previous = INPUT
    for node in graph.nodes:
        if node.inputs != (previous,) or node.layer.arity != 1 or _has_indices(node.layer):
            return False
        previous = node.name
    return graph.outputs == [previous] and all(map(_callable, tree.children.values()))


def _chain_lines(calls: list[str]) -> list[str]:
    if len(calls) == 1:
        return [f"return {calls[0]}(input)"]
    lines = [f"x = {calls[0]}(input)"]
    lines += [f"x = {call}(x)" for call in calls[1:-1]]
    return [*lines, f"return {calls[-1]}(x)"]


def _variable(name: str, used: set[str]) -> str:
    base = name.replace(".", "_")
    if base[0].isdigit():
        base = f"x{base}" if base.replace("_", "").isdigit() else f"x_{base}"
    if keyword.iskeyword(base) or base in _TAKEN:
        base += "_"
    variable, k = base, 2
    while variable in used:
        variable, k = f"{base}_{k}", k + 1
    used.add(variable)
    return variable


def _needed(graph) -> set[str]:
    """The layers whose values the outputs depend on (others are left out of forward)."""
    producers = {node.name: node for node in graph.nodes}
    needed: set[str] = set()
    todo = [graph.producer(ref) for ref in graph.outputs]
    while todo:
        name = todo.pop()
        if name in needed or name == INPUT:
            continue
        needed.add(name)
        todo += [graph.producer(ref) for ref in producers[name].inputs]
    return needed


def _whole_sequentials(graph, tree: Module) -> dict[str, tuple[str, str, str]]:
    """Layer name -> (Sequential path, what it reads, its last member) for each member of a
    Sequential called whole."""
    order = [node.name for node in graph.nodes]
    readers = graph.consumers()
    outputs = set(graph.outputs)
    collapsed: dict[str, tuple[str, str]] = {}
    for module in _sequentials(tree):
        members = [n for n in order if n.startswith(module.path + ".")]
        if not members or not _callable(module) or members[0] in collapsed:
            continue  # (an inner Sequential of one called whole is inside that call)
        nodes = {node.name: node for node in graph.nodes if node.name in members}
        start = order.index(members[0])
        chained = order[start : start + len(members)] == members and all(
            nodes[b].inputs == (a,) and not _has_indices(nodes[a].layer)
            for a, b in zip(members, members[1:], strict=False)
        )
        inner_only = all(
            set(readers.get(m, [])) <= set(members) and m not in outputs for m in members[:-1]
        )
        if chained and inner_only and not _has_indices(nodes[members[-1]].layer):
            call = (module.path, nodes[members[0]].inputs[0], members[-1])
            collapsed.update(dict.fromkeys(members, call))
    return collapsed


def _sequentials(module: Module) -> list[Module]:
    found = [module] if module.kind == "sequential" else []
    for child in module.children.values():
        found += _sequentials(child)
    return found


def _graph_lines(graph, tree: Module, calls: dict[str, str]) -> list[str]:
    needed, whole = _needed(graph), _whole_sequentials(graph, tree)
    used_refs = {ref for node in graph.nodes if node.name in needed for ref in node.inputs}
    used_refs |= set(graph.outputs)
    names: dict[str, str] = {INPUT: "input"}
    taken: set[str] = set()
    lines: list[str] = []
    for node in graph.nodes:
        if node.name not in needed:
            continue
        if node.name in whole:
            path, source, last = whole[node.name]
            if node.name == last:
                names[last] = _variable(path, taken)
                lines += _fitted(f"{names[last]} = {calls[path]}(", names[source], ")")
            continue
        args = [names[ref] for ref in node.inputs]
        target = names[node.name] = _variable(node.name, taken)
        kind = node.layer.type_name
        if kind == "Add":
            lines += _fitted(f"{target} = (", " + ".join(args), ")", parenthesised=False)
        elif kind == "Concat":
            joined = f"[{', '.join(args)}], dim={node.layer.dim}"
            lines += _fitted(f"{target} = torch.cat(", joined, ")")
        elif _has_indices(node.layer):
            indices = f"{node.name}.indices"
            names[indices] = _variable(indices, taken) if indices in used_refs else "_"
            lines += _fitted(f"{target}, {names[indices]} = {calls[node.name]}(", args[0], ")")
        else:
            lines += _fitted(f"{target} = {calls[node.name]}(", args[0], ")")
    returned = [names[ref] for ref in graph.outputs]
    if len(returned) == 1 or len(f"return {', '.join(returned)}") <= ROOM:
        return [*lines, f"return {', '.join(returned)}"]
    return [*lines, "return (", *(f"    {name}," for name in returned), ")"]


def _fitted(head: str, inner: str, tail: str, parenthesised: bool = True) -> list[str]:
    """One statement on one line when it fits, else its bracket's contents on their own
    line, as ruff format lays it out (`parenthesised=False`: the brackets are only there
    to break the line, as around a long sum)."""
    flat = f"{head}{inner}{tail}" if parenthesised else f"{head[:-1]}{inner}"
    if len(flat) <= ROOM:
        return [flat]
    return [head, f"    {inner}", tail]

"""`netspec export --format torch`: the network as a readable PyTorch file.

    source = torch_source(spec)        # the text of a module defining `class Net`
    write_torch_source(spec, "model.py")

`Net(torch.nn.Module)` registers every layer at netspec's module path, so its state dict has
netspec's names (`fc.weight`, `layer1.0.conv1.weight`) and the weights netspec exports as
.safetensors load with `strict=True`. Top-level layers are attributes named after the layer;
a Sequential whose members are numbered 0..k-1 is a `nn.Sequential` (indexed `[0]`); blocks
and other groups are plain `nn.Module` containers with attributes; a name that is not a
Python identifier (`0`) is registered with `add_module` and read with `getattr`. Each layer
is its torch.nn class with its arguments as the spec has them (sizes inference filled in
included, those at PyTorch's default left out; `inplace` only where no other layer reads
the same value, as netspec never changes a value in place). `forward` calls the
modules in the graph's order, with Add as `+` and Concat as `torch.cat`; a plain chain is
one call per top-level module. netspec never imports torch: this only writes text.
"""

from __future__ import annotations

import keyword
import textwrap
from pathlib import Path
from typing import Any

from netspec.export.torch_forward import forward_lines
from netspec.export.torch_modules import Module, access, module_tree
from netspec.export.weights import ExportError
from netspec.frontend.graph import INPUT

LINE = 100


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def written_arguments(layer, shared: bool = False) -> dict[str, Any]:
    """The layer's PyTorch arguments less those at their default (netspec's defaults are
    PyTorch's), so a call reads as the spec was written, sizes inference filled in included.

    `shared`: the layer's input is read elsewhere too (or is the network's input or an
    output), where `inplace=True` would change it in torch but not in netspec, so it is
    written `inplace=False`."""
    fields = type(layer).model_fields
    arguments = {
        name: value
        for name, value in layer.torch_arguments().items()
        if name not in fields or fields[name].is_required() or value != fields[name].default
    }
    if shared and arguments.get("inplace"):
        del arguments["inplace"]
    return arguments


def layer_call(layer, indent: int, room: int, shared: bool = False) -> str:
    """`nn.Conv2d(in_channels=3, ...)`: on one line when it fits in `room` characters,
    else one argument a line."""
    parts = [f"{k}={_value(v)}" for k, v in written_arguments(layer, shared).items()]
    one_line = f"nn.{layer.type_name}({', '.join(parts)})"
    if len(one_line) <= room:
        return one_line
    inner = " " * (indent + 4)
    return (
        f"nn.{layer.type_name}(\n" + "".join(f"{inner}{p},\n" for p in parts) + " " * indent + ")"
    )


def expression(module: Module, indent: int, room: int, shared: set[str]) -> str:
    """What builds `module`: its layer, an nn.Sequential of its members, or nn.Module()."""
    if module.kind == "layer":
        return layer_call(module.layer, indent, room, module.path in shared)
    if module.kind == "container":
        return "nn.Module()"
    inner = indent + 4
    items = "".join(
        f"{' ' * inner}{expression(c, inner, LINE - inner - 1, shared)},\n"
        for c in module.children.values()
    )
    return "nn.Sequential(\n" + items + " " * indent + ")"


def init_lines(module: Module, target: str, shared: set[str], indent: int = 8) -> list[str]:
    """The statements of __init__ that register `module`'s children under `target`."""
    lines: list[str] = []
    for name, child in module.children.items():
        here = access(target, module.kind, name)
        if module.kind != "sequential":  # a Sequential's expression built its members
            lines.append(_registration(target, name, child, indent, shared))
        lines += init_lines(child, here, shared, indent)
    return lines


def _registration(target: str, name: str, child: Module, indent: int, shared: set[str]) -> str:
    """`self.fc = nn.Linear(...)`, or `self.add_module("0", nn.Linear(...))` for a name that
    is no identifier, laid out as ruff format would."""
    if name.isidentifier() and not keyword.iskeyword(name):
        before = f"{target}.{name} = "
        return before + expression(child, indent, LINE - indent - len(before), shared)
    before = f'{target}.add_module("{name}", '
    built = expression(child, indent, LINE - indent - len(before) - 1, shared)
    if "\n" not in built:
        return f"{before}{built})"
    inner = " " * (indent + 4)
    built = expression(child, indent + 4, 0, shared)  # exploded, one level deeper
    return f'{target}.add_module(\n{inner}"{name}",\n{inner}{built},\n{" " * indent})'


def shared_inputs(graph) -> set[str]:
    """The layers whose input is also read elsewhere, is the input, or is an output."""
    readers = graph.consumers()
    outputs = set(graph.outputs)
    return {
        node.name
        for node in graph.nodes
        for ref in node.inputs[:1]
        if ref == INPUT or ref in outputs or len(readers.get(ref, [])) > 1
    }


def torch_source(spec) -> str:
    """The text of a Python module defining `class Net(torch.nn.Module)` for `spec`."""
    tree = module_tree(spec)
    init = "\n".join(
        f"        {line}" for line in init_lines(tree, "self", shared_inputs(spec.graph))
    )
    forward = "\n".join(f"        {line}" for line in forward_lines(spec, tree))
    name = spec.name or "model"
    float64 = spec.input.dtype == "float64"
    about = textwrap.fill(
        f"The spec: {Path(spec.source_name).name}. Net's state dict has netspec's names, "
        "so the weights netspec exports load strictly:",
        width=88,
    )
    return f'''"""{name}, in PyTorch (written by `netspec export --format torch`).

{about}

    model = Net(){".double()" if float64 else ""}
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"), strict=True)
    outputs = model.eval()(inputs)  # inputs: (N, {", ".join(map(str, spec.input.shape))})
"""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{init}

    def forward(self, input: torch.Tensor):
{forward}
'''


def write_torch_source(spec, path: str | Path) -> Path:
    """Write `torch_source(spec)` to `path`; returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(torch_source(spec), encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path

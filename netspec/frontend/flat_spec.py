"""`netspec expand`: a spec written out flat, as YAML: no blocks, every layer one line
`{type: ..., name: full.dotted.name, ...}` with the sizes inferred from shapes written out,
so that checking it gives the same rows as checking the nested spec."""

from __future__ import annotations

from typing import Any

import yaml

from netspec.frontend.graph import INPUT
from netspec.frontend.spec import Spec


def flat_spec_text(spec: Spec) -> str:
    """The YAML text of `spec` with its nesting expanded (design.md §1.2)."""
    lines = [f"name: {_flow(spec.name)}", f"input: {_flow(_written(spec.input))}", "layers:"]
    previous = INPUT
    for node in sorted(spec.graph.nodes, key=lambda node: node.index):  # sizes inferred
        layer, name = node.layer, node.name
        entry = {"type": layer.type_name, "name": name}
        if layer.inputs is not None and list(layer.inputs) != [previous]:
            entry["inputs"] = list(layer.inputs)
        entry.update(_written(layer, exclude={"type", "name", "inputs"}))
        lines.append(f"  - {_flow(entry)}")
        previous = name
    if spec.outputs:
        lines.append(f"outputs: {_flow(list(spec.outputs))}")
    for key in ("loss", "train", "data"):
        section = getattr(spec, key)
        if section is not None:
            lines.append(f"{key}: {_flow(_written(section))}")
    return "\n".join(lines) + "\n"


def _written(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    """What the spec set (or inference filled in), as plain YAML values."""
    return model.model_dump(mode="json", exclude_unset=True, exclude=exclude)


def _flow(value: Any) -> str:
    """One line of flow-style YAML that reads back (YAML 1.2 core) as `value`."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf"))
    return text.removesuffix("...\n").strip()

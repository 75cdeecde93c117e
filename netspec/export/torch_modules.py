"""The exported Net's module tree: netspec's layer names as torch module paths.

Every layer but Add and Concat (expressions in forward) is a module at its name's path;
the groups on the way are containers, and a nesting Sequential numbered 0..k-1 is a torch
`nn.Sequential`. A name torch.nn.Module keeps for itself cannot be a child's.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import Any

from netspec.export.weights import ExportError

# torch.nn.Module's public attributes (test_export_torch checks this against torch): a
# child of one of these names cannot be registered (add_module refuses it), nor one whose
# name starts with "_", torch's own space.
_ATTRIBUTE_NAMES = (
    "T_destination add_module apply bfloat16 buffers call_super_init children compile cpu "
    "cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state "
    "get_parameter get_submodule half ipu load_state_dict modules mtia named_buffers "
    "named_children named_modules named_parameters parameters register_backward_hook "
    "register_buffer register_forward_hook register_forward_pre_hook "
    "register_full_backward_hook register_full_backward_pre_hook "
    "register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module "
    "register_parameter register_state_dict_post_hook register_state_dict_pre_hook "
    "requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train "
    "training type xpu zero_grad"
)
TORCH_MODULE_ATTRIBUTES = frozenset(_ATTRIBUTE_NAMES.split())
EXPRESSIONS = ("Add", "Concat")  # layers that are expressions in forward, not modules


@dataclass
class Module:
    """One torch module of Net: a layer, a `nn.Sequential`, or a plain container."""

    path: str  # "" for Net itself
    kind: str  # "layer", "sequential" or "container"
    layer: Any = None
    children: dict[str, Module] = field(default_factory=dict)


def module_tree(spec) -> Module:
    """Net's modules by path, in the spec's order (so the state dict is too)."""
    root = Module("", "container")
    sequentials = {p for p, kind in spec.modules.items() if kind == "Sequential"}
    for node in sorted(spec.graph.nodes, key=lambda n: n.index):
        if node.layer.type_name in EXPRESSIONS:
            continue
        parent = root
        *parents, leaf = node.name.split(".")
        for part in parents:
            _check_name(part, node.name)
            path = f"{parent.path}.{part}".lstrip(".")
            parent = parent.children.setdefault(part, Module(path, "container"))
        _check_name(leaf, node.name)
        parent.children[leaf] = Module(node.name, "layer", node.layer)
    _mark_sequentials(root, sequentials)
    return root


def _check_name(part: str, name: str) -> None:
    if part.startswith("_") or part in TORCH_MODULE_ATTRIBUTES:
        raise ExportError(
            f"layer '{name}' cannot be a torch module: torch.nn.Module has its own "
            f"attribute '{part}', so no child can be registered under that name",
            hint="rename the layer (or its block) for the torch export",
        )


def _mark_sequentials(module: Module, sequentials: set[str]) -> None:
    """A nesting Sequential numbered 0..k-1 in order is a torch nn.Sequential."""
    numbered = list(module.children) == [str(i) for i in range(len(module.children))]
    if module.kind == "container" and module.path in sequentials and numbered:
        module.kind = "sequential"
    for child in module.children.values():
        _mark_sequentials(child, sequentials)


def access(parent: str, parent_kind: str, name: str) -> str:
    """The expression that reads child `name` of the module `parent` evaluates to."""
    if parent_kind == "sequential":
        return f"{parent}[{name}]"
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{parent}.{name}"
    return f'getattr({parent}, "{name}")'

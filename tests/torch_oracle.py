"""The same network in PyTorch, built from a netspec Spec: the test oracle for whole graphs.

Every layer becomes `torch.nn.<type>(**its arguments)`; Add and Concat become sums and
`torch.cat`. Modules are registered under netspec's layer names, so state dicts agree.
"""

from __future__ import annotations

import numpy as np
import torch

from netspec.frontend.graph import INPUT
from netspec.layers.base import Layer


def torch_layer(layer: Layer) -> torch.nn.Module | None:
    if layer.type_name in ("Add", "Concat"):
        return None
    return getattr(torch.nn, layer.type_name)(**layer.torch_arguments())


def _register(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """`module` at the dotted path `name` (`b1.conv1`), containers made on the way, so that
    its state-dict keys are netspec's (torch refuses dots in one module's name)."""
    *parents, leaf = name.split(".")
    for part in parents:
        if part not in root._modules:
            root.add_module(part, torch.nn.Module())
        root = root._modules[part]
    root.add_module(leaf, module)


class TorchGraph(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        graph = spec.graph
        self.nodes = graph.nodes
        self.outputs = graph.outputs
        # Register in the spec's order so that state_dict keys come in netspec's order.
        self.layers = torch.nn.ModuleDict()
        for node in sorted(self.nodes, key=lambda n: n.index):
            module = torch_layer(node.layer)
            if module is not None:
                _register(self.layers, node.name, module)

    def state_dict_names(self) -> dict[str, str]:
        return {f"layers.{k}": k for k in self.state_dict()}

    def load_netspec_state(self, state: dict) -> None:
        tensors = {f"layers.{k}": torch.from_numpy(np.array(v)) for k, v in state.items()}
        self.load_state_dict(tensors)

    def netspec_grads(self) -> dict[str, np.ndarray]:
        return {
            name.removeprefix("layers."): p.grad.numpy()
            for name, p in self.named_parameters()
            if p.grad is not None
        }

    def forward(self, x):
        values = {INPUT: x}
        for node in self.nodes:
            args = [values[ref] for ref in node.inputs]
            kind = node.layer.type_name
            if kind == "Add":
                y = sum(args[1:], args[0])
            elif kind == "Concat":
                y = torch.cat(args, dim=node.layer.dim)
            else:
                y = self.layers.get_submodule(node.name)(args[0])
            if isinstance(y, tuple):  # return_indices
                values[f"{node.name}.indices"] = y[1]
                y = y[0]
            values[node.name] = y
        out = tuple(values[ref] for ref in self.outputs)
        return out[0] if len(out) == 1 else out


def torch_loss(loss) -> torch.nn.Module:
    args = {k: v for k, v in loss.model_dump().items() if k != "type"}
    if args.get("weight") is not None:
        args["weight"] = torch.tensor(args["weight"], dtype=torch.float64)
    return getattr(torch.nn, loss.type)(**args)

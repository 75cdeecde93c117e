"""Every schema mirrors its PyTorch constructor: the same argument names, the same
defaults, and the same required arguments (inspect.signature is the oracle)."""

from __future__ import annotations

import inspect

import pytest

from netspec.layers import LAYERS
from netspec.losses import LOSSES
from netspec.optim import OPTIMIZERS
from netspec.optim.lr_scheduler import SCHEDULES

torch = pytest.importorskip("torch")

# netspec's own keys, not constructor arguments.
GRAPH_KEYS = {"type", "name", "inputs"}
# PyTorch arguments a spec cannot state, with the reason. Keep this list short and explicit.
TORCH_ONLY = {
    "params": "torch.optim's first argument: netspec passes the network's parameters",
    "optimizer": "lr_scheduler's first argument: netspec passes the optimizer",
}
NOT_IN_TORCH = {"Add", "Concat"}  # written as `x + y` and torch.cat in PyTorch


def _torch_class(cls):
    name = cls.model_fields["type"].default
    for namespace in (torch.nn, torch.optim, torch.optim.lr_scheduler):
        if isinstance(getattr(namespace, name, None), type):
            if cls in OPTIMIZERS and namespace is not torch.optim:
                continue
            if cls in SCHEDULES and namespace is not torch.optim.lr_scheduler:
                continue
            return getattr(namespace, name)
    raise AssertionError(f"no PyTorch class for {name}")


def _torch_parameters(cls) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(_torch_class(cls))
    return {
        name: p
        for name, p in signature.parameters.items()
        if name not in TORCH_ONLY and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _fields(cls):
    return {k: f for k, f in cls.model_fields.items() if k not in GRAPH_KEYS}


def _same(ours, theirs) -> bool:
    if isinstance(theirs, tuple) and isinstance(ours, (tuple, list)):
        return tuple(ours) == theirs
    if isinstance(ours, bool) or isinstance(theirs, bool) or ours is None or theirs is None:
        return type(ours) is type(theirs) and ours == theirs  # True is not 1, None is not 0
    return ours == theirs  # torch writes `lr: float = 0`: 0 and 0.0 are the same default


ENTRIES = [
    c
    for c in (*LAYERS, *LOSSES, *OPTIMIZERS, *SCHEDULES)
    if c.model_fields["type"].default not in NOT_IN_TORCH
]


@pytest.mark.parametrize("cls", ENTRIES, ids=lambda c: c.__name__)
def test_every_torch_argument_is_a_field_and_no_more(cls):
    assert set(_fields(cls)) == set(_torch_parameters(cls))


# Required in PyTorch, optional here: taken from the input shape as the Lazy modules do.
INFERRED = {"in_channels", "in_features", "num_features"}


@pytest.mark.parametrize("cls", ENTRIES, ids=lambda c: c.__name__)
def test_defaults_and_required_arguments_match_torch(cls):
    fields = _fields(cls)
    for name, parameter in _torch_parameters(cls).items():
        field = fields[name]
        if parameter.default is inspect.Parameter.empty and name in INFERRED:
            assert field.default is None, f"{cls.__name__}.{name} is inferred (design.md §1.1)"
            continue
        if parameter.default is inspect.Parameter.empty:
            assert field.is_required(), f"{cls.__name__}.{name} is required in PyTorch"
            continue
        assert not field.is_required(), f"{cls.__name__}.{name} has a default in PyTorch"
        assert _same(field.get_default(call_default_factory=True), parameter.default), (
            f"{cls.__name__}.{name}: {field.default!r} != {parameter.default!r}"
        )


@pytest.mark.parametrize("cls", ENTRIES, ids=lambda c: c.__name__)
def test_every_field_is_described_and_the_class_names_its_torch_twin(cls):
    doc = " ".join((cls.__doc__ or "").split())
    assert "Mirrors torch." in doc, f"{cls.__name__}'s docstring should name its PyTorch class"
    for name, field in _fields(cls).items():
        assert (field.description or "").strip(), f"{cls.__name__}.{name} has no docstring"


def test_add_and_concat_are_the_only_layers_without_a_torch_class():
    missing = {
        c.model_fields["type"].default
        for c in LAYERS
        if not isinstance(getattr(torch.nn, c.model_fields["type"].default, None), type)
    }
    assert missing == NOT_IN_TORCH


@pytest.mark.parametrize("cls", ENTRIES, ids=lambda c: c.__name__)
def test_defaults_build_the_torch_module(cls):
    """The schema's defaults, plus the required arguments, construct the PyTorch class."""
    required = {
        "in_channels": 4,
        "out_channels": 4,
        "kernel_size": 3,
        "output_size": 2,
        "num_features": 4,
        "in_features": 4,
        "out_features": 2,
        "step_size": 2,
        "milestones": [1, 2],
        "gamma": 0.5,
        "T_max": 3,
    }
    fields = _fields(cls)
    args = {k: required[k] for k, f in fields.items() if f.is_required() or k in INFERRED}
    entry = cls(**args)
    kwargs = {
        k: tuple(v) if isinstance(v, list) and k != "milestones" else v
        for k, v in entry.torch_arguments().items()
    }
    torch_cls = _torch_class(cls)
    if cls in OPTIMIZERS:
        torch_cls([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    elif cls in SCHEDULES:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        torch_cls(optimizer, **kwargs)
    else:
        torch_cls(**kwargs)

"""Modules that load on first use, so that `netspec check` never imports array code.

A layer's schema and shape rule run in the front end; its forward and backward need NumPy
and the kernels. Written at the top of a module, `np = lazy_import("numpy")` gives a module
object that the standard library's LazyLoader executes at its first attribute access and
that is the real module from then on: the front end never pays for NumPy, the runtime pays
one load.

Python < 3.13's `inspect.getmodule` asks every module in sys.modules for `__file__` and
`__name__` (pydantic calls it for each model with attribute docstrings): a lazy module
answers those from what the import system already set, without loading.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


class _LazyModule(importlib.util._LazyModule):  # the standard library's, loading at any access
    def __getattribute__(self, attr: str) -> object:
        if attr in ("__file__", "__name__"):
            return object.__getattribute__(self, "__file__")
        return super().__getattribute__(attr)


def lazy_import(name: str) -> ModuleType:
    """The module `name`, imported now if it was already, else loaded at first use."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    module.__class__ = _LazyModule
    return module


def is_loaded(module: ModuleType) -> bool:
    """Whether a module's code has run (False for a lazy module nobody has used yet)."""
    return type(module) is ModuleType

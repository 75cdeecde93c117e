"""Modules that load on first use, so that `netspec check` never imports array code.

A layer's schema and shape rule run in the front end; its forward and backward need NumPy
and the kernels. Written at the top of a module, `np = lazy_import("numpy")` gives a module
object that the standard library's LazyLoader executes at its first attribute access and
that is the real module from then on: the front end never pays for NumPy, the runtime pays
one load.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


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
    return module


def is_loaded(module: ModuleType) -> bool:
    """Whether a module's code has run (False for a lazy module nobody has used yet)."""
    return type(module) is ModuleType

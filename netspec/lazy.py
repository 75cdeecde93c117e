"""Modules that load on first use, so that `netspec check` never imports array code.

A layer's schema and shape rule run in the front end; its forward and backward need NumPy
and the kernels. Written at the top of a module, `np = lazy_import("numpy")` gives a module
object whose code runs at the first attribute it lacks and that is the real module from
then on: the front end never pays for NumPy, the runtime pays one load.

Not the standard library's LazyLoader: that one loads at *any* attribute access, and
inspect.getmodule asks every module in sys.modules for its `__file__` (pydantic calls it
for each model with attribute docstrings, so defining a layer loaded every lazy module).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module `name`, imported now if it was already, else loaded at first use."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _LazyModule
    sys.modules[name] = module
    return module


# What inspect.getmodule reads of every module in sys.modules, and what loading itself reads.
# Anything else loads first: a submodule import reads the package's __path__, which must
# not come before the package's own code has run.
_READ_WITHOUT_LOADING = frozenset({"__name__", "__file__", "__spec__", "__class__", "__dict__"})
_LOADING_LOCK = threading.RLock()  # one thread runs a module's code; others wait for it


class _Loading(threading.local):
    """The modules whose code this thread is running: they may read themselves half-run.
    Per thread: another thread reading such a module must wait for the lock instead."""

    def __init__(self) -> None:
        self.names: set[str] = set()


_loading = _Loading()


class _LazyModule(ModuleType):
    """A module not run yet: its first attribute beyond _READ_WITHOUT_LOADING runs the code
    in this very object, which then is a plain module."""

    def __getattribute__(self, attribute: str) -> object:
        name = ModuleType.__getattribute__(self, "__name__")
        if attribute not in _READ_WITHOUT_LOADING and name not in _loading.names:
            with _LOADING_LOCK:
                if type(self) is _LazyModule and name not in _loading.names:
                    _load(self, name)
        return ModuleType.__getattribute__(self, attribute)


def _load(module: ModuleType, name: str) -> None:
    _loading.names.add(name)
    try:
        module.__spec__.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(name, None)  # as a failed import leaves it
        raise
    finally:
        _loading.names.discard(name)
    module.__class__ = ModuleType


def is_loaded(module: ModuleType) -> bool:
    """Whether a module's code has run (False for a lazy module nobody has used yet)."""
    return type(module) is ModuleType

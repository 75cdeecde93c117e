"""netspec: a declarative network config compiler.

    spec = netspec.load("model.yaml")
    report = netspec.infer(spec)
    net = netspec.compile(spec, device="cpu")
    result = netspec.fit(spec, out="runs/model")       # or netspec.Trainer(spec, ...).fit()
    evaluation = netspec.evaluate(spec, "runs/model/best.npz")

Heavy parts (the NumPy runtime, CuPy) load only when first used, so `netspec check` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netspec.errors import Diagnostic, InputError, NetspecError, SpecError
from netspec.version import __version__

_LAZY = {
    "Spec": "netspec.frontend.load",
    "load": "netspec.frontend.load",
    "loads": "netspec.frontend.load",
    "ShapeReport": "netspec.frontend.shape_report",
    "infer": "netspec.frontend.shape_report",
    "Network": "netspec.network",
    "compile": "netspec.network",
    "compile_loss": "netspec.losses",
    "compile_optimizer": "netspec.optim",
    "DeviceError": "netspec.ops.backend",
    "Trainer": "netspec.training.trainer",
    "fit": "netspec.training.trainer",
    "evaluate": "netspec.training.evaluation",
}

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports lazily
    from netspec.frontend.load import Spec, load, loads  # noqa: F401
    from netspec.frontend.shape_report import ShapeReport, infer  # noqa: F401
    from netspec.losses import compile_loss  # noqa: F401
    from netspec.network import Network, compile  # noqa: F401
    from netspec.ops.backend import DeviceError  # noqa: F401
    from netspec.optim import compile_optimizer  # noqa: F401
    from netspec.training.evaluation import evaluate  # noqa: F401
    from netspec.training.trainer import Trainer, fit  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'netspec' has no attribute '{name}'")


__all__ = [
    "Diagnostic",
    "InputError",
    "NetspecError",
    "SpecError",
    "__version__",
    *_LAZY,
]

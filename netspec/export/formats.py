"""`netspec export`: one entry point over the formats a model leaves netspec in.

    export_model(spec, "onnx", "model.onnx", state)          # ONNX (export/onnx.py)
    export_model(spec, "safetensors", "model.safetensors", state)
    export_model(spec, "torch", "model.py", state)            # and model.safetensors beside

`state` is the network's state dict (training/weights.read_weights). The torch format is code:
without a state only the file is written, with one its weights go beside it as .safetensors,
ready for `Net().load_state_dict(..., strict=True)`. Each format's package is imported only
when that format is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netspec.export.torch_code import write_torch_source
from netspec.export.weights import INSTALL, ExportError, write_safetensors

SUFFIXES = {"onnx": ".onnx", "safetensors": ".safetensors", "torch": ".py"}
NEEDS_WEIGHTS = ("onnx", "safetensors")


def export_model(
    spec, fmt: str, path: str | Path, state: dict[str, Any] | None = None
) -> list[Path]:
    """Write the spec's network in format `fmt` to `path`; the files written, in order."""
    path = Path(path)
    if fmt not in SUFFIXES:
        raise ExportError(f"unknown export format '{fmt}', expected one of: {', '.join(SUFFIXES)}")
    if path.suffix.lower() != SUFFIXES[fmt]:
        raise ExportError(f"a {fmt} export is written to a {SUFFIXES[fmt]} file, not {path.name}")
    if state is None and fmt in NEEDS_WEIGHTS:
        raise ExportError(f"a {fmt} export needs the network's weights")
    if fmt == "safetensors":
        return [write_safetensors(state, path)]
    if fmt == "onnx":
        return [_onnx_writer()(spec, state, path)]
    written = [write_torch_source(spec, path)]
    if state is not None:
        written.append(write_safetensors(state, path.with_suffix(".safetensors")))
    return written


def _onnx_writer() -> Any:
    try:
        from netspec.export.onnx import write_onnx
    except ModuleNotFoundError as exc:
        if exc.name == "netspec.export.onnx":
            raise ExportError("this version of netspec cannot write ONNX yet") from None
        if (exc.name or "").split(".")[0] in ("onnx", "onnxruntime"):
            raise ExportError(f"writing ONNX needs the onnx package: {INSTALL}") from None
        raise
    return write_onnx

"""Weights in: one reader for `--weights` in eval, predict and export.

    state, meta = read_weights("runs/digits/version_0/best.npz", spec)   # a checkpoint
    state, meta = read_weights("resnet18.safetensors", spec)             # meta is None

A netspec checkpoint (.npz) is read by training/checkpoint.py, checksums and all. A
`.safetensors` file (so named, or under another name but starting as one does) is what
`safetensors.torch.save_file(model.state_dict(), path)` writes from PyTorch: its names are
the module paths, as netspec's state dict names them, so a torch model built with the same
module paths loads as is. Its names and shapes are checked against the spec's before any
tensor is read (the header says them), and floating-point tensors are cast to the
network's dtype. safetensors has no checksums, so a flipped bit in a tensor cannot be told
from a weight; a damaged header is one clear line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.frontend.diagnostics import did_you_mean
from netspec.ops.backend import resolve_dtype
from netspec.training.checkpoint import (
    CheckpointError,
    expected_state_shapes,
    load_checkpoint,
    network_fingerprint,
)

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec

SAFETENSORS = ".safetensors"
INSTALL = "pip install 'netspec[export]'"
# safetensors dtypes NumPy holds exactly (BF16 and the float8 kinds it has no dtype for).
_READABLE = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


class WeightsError(CheckpointError):
    """A weights file that cannot be read or does not fit the spec (one line, naming it)."""


def read_weights(path: str | Path, spec: Spec) -> tuple[dict[str, np.ndarray], dict | None]:
    """The state dict in the file at `path` for `spec`'s network, and the checkpoint's meta
    (None for a .safetensors file, which carries no run).

    Raises WeightsError (CheckpointError for checkpoints) when the file is missing, damaged,
    or its names or shapes are not the network's."""
    path = Path(path)
    if path.suffix.lower() != SAFETENSORS and not looks_like_safetensors(path):
        checkpoint = load_checkpoint(path, spec)  # names and shapes checked before any data
        return checkpoint.state, checkpoint.meta
    return read_safetensors(path, spec), None


def looks_like_safetensors(path: Path) -> bool:
    """Whether the file starts as safetensors does (an 8-byte little-endian header size,
    then the JSON header), so that one saved under another suffix is read as what it is."""
    try:
        with path.open("rb") as file:
            head = file.read(9)
            size = path.stat().st_size
    except OSError:
        return False  # the checkpoint reader says what is wrong with it
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size


def description_warning(meta: dict | None, spec: Spec, path: str | Path) -> str | None:
    """A warning when checkpoint weights were saved from another network description
    (their names and shapes fit, read_weights checked); None for safetensors."""
    if meta is None or meta.get("network_fingerprint") == network_fingerprint(spec):
        return None
    return (
        f"checkpoint {path} was saved from a different network description (saved from "
        f"spec '{meta.get('spec_name', '?')}'); its weights fit, so they are used"
    )


def read_safetensors(path: Path, spec: Spec) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file, checked against the spec's state dict first."""
    if not path.is_file():  # the first thing to say, with or without the package
        raise WeightsError(f"weights file not found: {path}")
    safe_open, safetensor_error = _safetensors()
    dtype = resolve_dtype(spec.input.dtype)
    try:
        with safe_open(str(path), framework="np") as file:
            slices = {name: file.get_slice(name) for name in file.keys()}  # noqa: SIM118
            shapes = {name: tuple(s.get_shape()) for name, s in slices.items()}
            expected = expected_state_shapes(spec)
            check_layout(shapes, expected, path, spec.name)
            for name, piece in slices.items():
                if piece.get_dtype() not in _READABLE:
                    raise WeightsError(
                        f"{path}: tensor '{name}' is {piece.get_dtype()}, which NumPy cannot "
                        "hold; save it as float32 (model.float()) and try again"
                    )
            return {name: _cast(file.get_tensor(name), dtype) for name in expected}  # its order
    except (safetensor_error, OSError, ValueError) as exc:
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        raise WeightsError(f"cannot read {path} as safetensors: {reason}") from None


def _safetensors() -> tuple[Any, type[BaseException]]:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise WeightsError(
            f"reading .safetensors weights needs the safetensors package: {INSTALL}"
        ) from None
    return safe_open, SafetensorError


def _cast(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Floating-point tensors in the network's dtype; counters (num_batches_tracked) as is."""
    return array.astype(dtype, copy=False) if array.dtype.kind == "f" else array


def check_layout(
    found: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    path: Path,
    spec_name: str,
) -> None:
    """Refuse a file whose names or shapes are not the network's: the first unknown name
    with the closest expected one, the missing names, or the first wrong shape."""
    unexpected = [k for k in found if k not in expected]
    missing = [k for k in expected if k not in found]
    if unexpected:
        raise WeightsError(
            f"{path} does not fit spec '{spec_name}': it has {_counted(unexpected, 'tensor')} "
            f"the network lacks, the first '{unexpected[0]}'",
            hint=_prefix_hint(found, expected) or did_you_mean(unexpected[0], missing or expected),
        )
    if missing:
        raise WeightsError(
            f"{path} does not fit spec '{spec_name}': it lacks {_counted(missing, 'tensor')} "
            f"of the network: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
            hint="pass the spec whose network the weights were saved from",
        )
    for name, shape in expected.items():
        if found[name] != shape:
            raise WeightsError(
                f"{path} does not fit spec '{spec_name}': '{name}' has shape {found[name]}, "
                f"the network expects {shape}",
                hint="pass the spec whose network the weights were saved from",
            )


def _counted(names: list[str], what: str) -> str:
    return f"1 {what}" if len(names) == 1 else f"{len(names)} {what}s"


def _prefix_hint(found: dict, expected: dict) -> str | None:
    """Say so when every name carries one extra leading path (`module.` from DataParallel,
    `model.` from a wrapper): the module paths are the network's one level down."""
    first = next(iter(found), "")
    if "." not in first:
        return None
    prefix = first.split(".", 1)[0] + "."
    if all(k.startswith(prefix) for k in found) and {k[len(prefix) :] for k in found} == set(
        expected
    ):
        return f"its names carry the prefix '{prefix}': save the inner module's state_dict()"
    return None

"""Checkpoints: one `.npz` file that holds everything a run needs to go on exactly.

Layout (read with `allow_pickle=False`, NumPy arrays whatever the device they came from):

    "0.weight", "1.running_mean", ...   the network's state dict under PyTorch's names
    "optimizer/lr", "optimizer/step", "optimizer/0.weight/exp_avg", ...
    "schedule/last_epoch", ...          only when the spec has an lr_schedule
    "__meta__"                          a JSON string: netspec version, spec name and
                                        fingerprints, epoch, step, RNG state, history, ...

Files are written atomically: a temporary file in the target's folder, flushed to disk,
then `os.replace`d over the target, so a crash or Ctrl-C never leaves half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from netspec.backend import to_numpy
from netspec.diagnostics import NetspecError

if TYPE_CHECKING:
    from netspec.network import Network
    from netspec.spec import Spec

FORMAT = "netspec-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__meta__"
_ZIP_MAGIC = b"PK\x03\x04"  # every .npz starts with a zip local-file header
_NPY_MAGIC = b"\x93NUMPY"
_ANOTHER = "use another checkpoint (best.npz or last.npz) or train again"
OPTIMIZER_PREFIX = "optimizer/"
SCHEDULE_PREFIX = "schedule/"


class CheckpointError(NetspecError):
    """A checkpoint that cannot be read, is damaged, or does not fit the spec; `hint` helps."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Checkpoint:
    """The parts of a checkpoint file, all NumPy on the host."""

    state: dict[str, np.ndarray]  # the network's parameters and buffers
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    schedule: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Epochs completed when it was written."""
        return int(self.meta.get("epoch", 0))

    @property
    def step(self) -> int:
        """Optimizer steps taken when it was written."""
        return int(self.meta.get("step", 0))


def network_fingerprint(spec: Spec) -> str:
    """A hash of what fixes the weights' meaning: the input, the layers and the outputs.

    Unlike `spec.fingerprint()` it ignores the loss, training and data sections, so
    weights stay usable when only the training settings change.
    """
    parts = spec.model_dump(mode="json", include={"input", "layers", "outputs"})
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_meta(spec: Spec) -> dict[str, Any]:
    """The spec's identity as recorded in `__meta__`."""
    from netspec import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "netspec_version": __version__,
        "spec_name": spec.name,
        "spec_fingerprint": spec.fingerprint(),
        "network_fingerprint": network_fingerprint(spec),
    }


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path. Raises CheckpointError."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {k: to_numpy(v) for k, v in checkpoint.state.items()}
    arrays.update({OPTIMIZER_PREFIX + k: to_numpy(v) for k, v in checkpoint.optimizer.items()})
    arrays.update({SCHEDULE_PREFIX + k: to_numpy(v) for k, v in checkpoint.schedule.items()})
    bad = [k for k in arrays if k == META_KEY]
    if bad:
        raise CheckpointError(f"state dict entry name '{META_KEY}' is reserved")
    arrays[META_KEY] = np.asarray(json.dumps(checkpoint.meta, sort_keys=True))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: np.savez(file, **arrays))
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(file)` on a temporary file beside `path`, sync it, then rename it over
    `path`: a reader sees the old file or the new one, never half of one."""
    # Beside the target: os.replace is atomic only within one file system. Opened with
    # "xb" rather than mkstemp, so the file gets the usual permissions (umask), not 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C while writing too: never leave the temporary behind
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`. Raises CheckpointError, never more."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}", hint="runs write last.npz and best.npz under --out"
        )
    _check_magic(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(
            f"checkpoint {path} is damaged ({_reason(exc)})",
            hint=_ANOTHER,
        ) from None
    meta = _read_meta(path, arrays.pop(META_KEY, None))
    checkpoint = Checkpoint(state={}, meta=meta)
    for key, value in arrays.items():
        if key.startswith(OPTIMIZER_PREFIX):
            checkpoint.optimizer[key[len(OPTIMIZER_PREFIX) :]] = value
        elif key.startswith(SCHEDULE_PREFIX):
            checkpoint.schedule[key[len(SCHEDULE_PREFIX) :]] = value
        else:
            checkpoint.state[key] = value
    return checkpoint


def _check_magic(path: Path) -> None:
    """Refuse what is not a zip archive before NumPy guesses (it would try pickle)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC):
        return
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty", hint=_ANOTHER)
    what = "a single .npy array" if head.startswith(_NPY_MAGIC) else "not a .npz archive"
    raise CheckpointError(f"{path} is not a netspec checkpoint ({what})", hint=_ANOTHER)


def _read_meta(path: Path, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None:
        raise CheckpointError(
            f"{path} is not a netspec checkpoint: it has no '{META_KEY}' entry",
            hint="netspec writes checkpoints with `netspec train`",
        )
    try:
        if raw.ndim != 0 or raw.dtype.kind != "U":
            raise ValueError(f"'{META_KEY}' is a {raw.dtype} array of shape {raw.shape}")
        meta = json.loads(str(raw[()]))
        if not isinstance(meta, dict):
            raise ValueError(f"'{META_KEY}' is not a JSON object")
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a netspec checkpoint (no format tag in its meta)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {meta['format_version']}, newer than this "
            f"netspec reads ({FORMAT_VERSION})",
            hint="upgrade netspec",
        )
    return meta


def check_fits(checkpoint: Checkpoint, net: Network, path: str | Path) -> str | None:
    """Raise CheckpointError when the weights' names or shapes do not fit `net`.

    Returns a warning when they fit but the checkpoint was saved from another network
    description (e.g. a Dropout rate changed), else None.
    """
    spec = net.spec
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint.state.items()}
    origin = f"(saved from spec '{checkpoint.meta.get('spec_name', '?')}')"
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = [f"missing {_listed(missing)}"] if missing else []
        parts += [f"unexpected {_listed(unexpected)}"] if unexpected else []
        raise CheckpointError(
            f"checkpoint {path} does not fit spec '{spec.name}' {origin}: " + "; ".join(parts),
            hint="pass the spec the checkpoint was trained with",
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(
                f"checkpoint {path} does not fit spec '{spec.name}' {origin}: '{key}' has "
                f"shape {found[key]}, the network expects {shape}",
                hint="pass the spec the checkpoint was trained with",
            )
    if checkpoint.meta.get("network_fingerprint") != network_fingerprint(spec):
        return (
            f"checkpoint {path} was saved from a different network description {origin}; "
            "its weights fit, so they are used"
        )
    return None


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.data.npz_reader import MemberHeader, NpzDamage, NpzReader, sha256_of
from netspec.errors import NetspecError
from netspec.memory import available_memory, format_bytes
from netspec.ops.backend import to_numpy
from netspec.training.atomic import write_atomically
from netspec.training.checkpoint_meta import canonical_json, meta_checksum, validate_meta
from netspec.version import __version__

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec
    from netspec.network import Network

FORMAT = "netspec-checkpoint"
FORMAT_VERSION = 2  # 2: __meta__ records each array's dtype, shape and sha256
META_KEY = "__meta__"
_ZIP_MAGIC = b"PK\x03\x04"  # every .npz starts with a zip local-file header
_NPY_MAGIC = b"\x93NUMPY"
_ANOTHER = "use another checkpoint (best.npz or last.npz) or train again"
_OWN = ("arrays", "checksum")  # meta entries the file format itself writes
_NUMERIC_KINDS = "iuf"
_NUMERIC_SIZES = ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")
OPTIMIZER_PREFIX = "optimizer/"
SCHEDULE_PREFIX = "schedule/"


class CheckpointError(NetspecError):
    """A checkpoint that cannot be read, is damaged, or does not fit the spec; `hint` helps."""


class CheckpointNotFoundError(CheckpointError):
    """No file at `path` (the CLI words the hint in its own flags)."""

    def __init__(self, path: Path):
        super().__init__(
            f"checkpoint not found: {path}",
            hint="a run writes last.npz and best.npz into its run folder",
        )
        self.path = path


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
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "netspec_version": __version__,
        "spec_name": spec.name,
        "spec_fingerprint": spec.fingerprint(),
        "network_fingerprint": network_fingerprint(spec),
    }


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path. Raises CheckpointError.

    The meta must be a whole run's (checkpoint_meta.CheckpointMeta less `arrays`): a file
    the loader would refuse is never written.
    """
    path = Path(path)
    arrays = {k: _host(v) for k, v in checkpoint.state.items()}
    arrays.update({OPTIMIZER_PREFIX + k: _host(v) for k, v in checkpoint.optimizer.items()})
    arrays.update({SCHEDULE_PREFIX + k: _host(v) for k, v in checkpoint.schedule.items()})
    reserved = [k for k in (META_KEY,) if k in arrays] + [k for k in _OWN if k in checkpoint.meta]
    if reserved:
        raise CheckpointError(f"checkpoint entry name '{reserved[0]}' is reserved")
    records = {k: _record(k, v) for k, v in arrays.items()}
    document = {**checkpoint.meta, "arrays": records}
    problem = validate_meta(document)
    if problem is not None:
        raise CheckpointError(f"cannot write checkpoint {path}: {problem}")
    document["checksum"] = meta_checksum(document)
    arrays[META_KEY] = np.asarray(canonical_json(document))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: np.savez(file, **arrays))
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def _host(value: Any) -> np.ndarray:
    # C order, so that the bytes np.save writes are those the checksum was taken of
    array = np.asarray(to_numpy(value))
    return array if array.flags.c_contiguous else array.copy(order="C")  # 0-d stays 0-d


def _record(name: str, array: np.ndarray) -> dict[str, Any]:
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.str[1:] not in _NUMERIC_SIZES:
        raise CheckpointError(f"cannot write checkpoint entry '{name}' of dtype {array.dtype}")
    return {"dtype": array.dtype.str, "shape": list(array.shape), "sha256": sha256_of(array)}


def load_checkpoint(path: str | Path, spec: Spec | None = None) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`. Raises CheckpointError, never more.

    Nothing is decompressed or allocated before the zip directory, the npy headers and the
    meta agree with each other and with the file's size; given `spec`, the weights' names
    and shapes must also be the network's before any is read. Every array's sha256 is
    checked against the meta's record.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(path)
    _check_magic(path)
    try:
        with NpzReader(path, stored_only=True) as archive:
            # Every npy header first (a pickled member is refused before anything is read),
            # then the meta, then the headers against the meta's records.
            headers = {name: archive.header(name) for name in sorted(archive.members)}
            meta = _read_meta(archive, headers, path)
            _check_records(headers, meta["arrays"])
            if spec is not None:
                state = {k: h.shape for k, h in headers.items() if not _is_run_state(k)}
                _check_layout(state, expected_state_shapes(spec), path, spec.name, meta)
            _check_memory(headers, path)
            arrays = {
                name: _read_array(archive, h, meta["arrays"][name]) for name, h in headers.items()
            }
    except NpzDamage as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}", hint=_ANOTHER) from None
    del meta["arrays"]
    checkpoint = Checkpoint(state={}, meta=meta)
    for key, value in arrays.items():
        if key.startswith(OPTIMIZER_PREFIX):
            checkpoint.optimizer[key[len(OPTIMIZER_PREFIX) :]] = value
        elif key.startswith(SCHEDULE_PREFIX):
            checkpoint.schedule[key[len(SCHEDULE_PREFIX) :]] = value
        else:
            checkpoint.state[key] = value
    return checkpoint


def _is_run_state(name: str) -> bool:
    return name.startswith((OPTIMIZER_PREFIX, SCHEDULE_PREFIX))


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


def _read_meta(archive: NpzReader, headers: dict[str, MemberHeader], path: Path) -> dict[str, Any]:
    """The meta document, its checksum, format and schema checked (format_version 2);
    its member leaves `headers`."""
    if META_KEY not in headers:
        raise CheckpointError(
            f"{path} is not a netspec checkpoint: it has no '{META_KEY}' entry",
            hint="netspec writes checkpoints when it trains",
        )
    header = headers.pop(META_KEY)
    if header.shape != () or header.descr[1:2] != "U" or header.dtype.byteorder == ">":
        raise NpzDamage(f"'{META_KEY}' is a {header.descr} array of shape {header.shape}")
    try:
        raw = archive.read(header).reshape(-1).view(np.uint8)
        document = json.loads(bytes(raw).decode("utf-32-le").rstrip("\x00"), parse_constant=_no_nan)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NpzDamage(f"'{META_KEY}' is not JSON ({_reason(exc)[:120]})") from None
    if not isinstance(document, dict):
        raise NpzDamage(f"'{META_KEY}' is not a JSON object")
    _check_own_checksum(document)
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a netspec checkpoint (no format tag in its meta)")
    _check_version(document.get("format_version"), path)
    problem = validate_meta(document)
    if problem is not None:
        raise NpzDamage(problem)
    return document


def _no_nan(constant: str) -> None:
    raise ValueError(f"{constant} is not a number JSON allows")


def _check_own_checksum(document: dict[str, Any]) -> None:
    if "checksum" not in document:
        return  # a format-1 file, or damaged: the version check and the schema say which
    claimed = document.pop("checksum")
    try:
        actual = meta_checksum(document)
    except (ValueError, RecursionError, TypeError):
        actual = None
    if claimed != actual:
        raise NpzDamage(f"'{META_KEY}' does not match its checksum")


def _check_version(version: Any, path: Path) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version == FORMAT_VERSION:
        return  # a non-int version is the schema's to refuse
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this netspec reads "
            f"({FORMAT_VERSION})",
            hint="upgrade netspec",
        )
    raise CheckpointError(
        f"{path} uses checkpoint format {version}, which has no checksums and which this "
        f"netspec no longer reads (it reads format {FORMAT_VERSION})",
        hint="train again to write a checkpoint of the current format",
    )


def _check_records(headers: dict[str, MemberHeader], records: dict[str, dict]) -> None:
    """Each member is the dtype and shape its record in the meta says, and each record's
    member is there."""
    if headers.keys() != records.keys():
        extra = sorted(headers.keys() - records.keys())
        missing = sorted(records.keys() - headers.keys())
        what = f"no record of '{extra[0]}'" if extra else f"no member '{missing[0]}'"
        raise NpzDamage(f"the members and the meta's records differ ({what})")
    for name, header in headers.items():
        record = records[name]
        found = (header.descr, list(header.shape), header.fortran_order)
        if found != (record["dtype"], record["shape"], False):
            raise NpzDamage(
                f"member '{name}' is a {header.descr} array of shape {header.shape}, its record "
                f"says {record['dtype']} of shape {tuple(record['shape'])}"
            )


def _check_memory(headers: dict[str, MemberHeader], path: Path) -> None:
    total = sum(h.nbytes for h in headers.values())
    available = available_memory()
    if available is not None and total > available:
        raise CheckpointError(
            f"checkpoint {path} holds {format_bytes(total)} of arrays, more than the "
            f"{format_bytes(available)} of memory available"
        )


def _read_array(archive: NpzReader, header: MemberHeader, record: dict) -> np.ndarray:
    digest = hashlib.sha256()
    array = archive.read(header, digest)
    if digest.hexdigest() != record["sha256"]:
        raise NpzDamage(f"array '{header.name}' does not match its checksum")
    return array


def expected_state_shapes(spec: Spec) -> dict[str, tuple[int, ...]]:
    """The state dict's names and shapes of the spec's network, without building it."""
    graph = spec.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for node in sorted(graph.nodes, key=lambda n: n.index):
        layer = node.layer
        for key, shape in {**layer.parameter_shapes(), **layer.buffer_shapes()}.items():
            shapes[f"{node.name}.{key}"] = tuple(shape)
    return shapes


def check_fits(checkpoint: Checkpoint, net: Network, path: str | Path) -> str | None:
    """Raise CheckpointError when the weights' names or shapes do not fit `net`.

    Returns a warning when they fit but the checkpoint was saved from another network
    description (e.g. a Dropout rate changed), else None.
    """
    spec = net.spec
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint.state.items()}
    _check_layout(found, expected, path, spec.name, checkpoint.meta)
    if checkpoint.meta.get("network_fingerprint") != network_fingerprint(spec):
        origin = f"(saved from spec '{checkpoint.meta.get('spec_name', '?')}')"
        return (
            f"checkpoint {path} was saved from a different network description {origin}; "
            "its weights fit, so they are used"
        )
    return None


def _check_layout(
    found: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    path: str | Path,
    spec_name: str,
    meta: dict[str, Any],
) -> None:
    origin = f"(saved from spec '{meta.get('spec_name', '?')}')"
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = [f"missing {_listed(missing)}"] if missing else []
        parts += [f"unexpected {_listed(unexpected)}"] if unexpected else []
        raise CheckpointError(
            f"checkpoint {path} does not fit spec '{spec_name}' {origin}: " + "; ".join(parts),
            hint="pass the spec the checkpoint was trained with",
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(
                f"checkpoint {path} does not fit spec '{spec_name}' {origin}: '{key}' has "
                f"shape {found[key]}, the network expects {shape}",
                hint="pass the spec the checkpoint was trained with",
            )


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

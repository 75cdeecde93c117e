"""A run's folder: versioned defaults, one trainer at a time, and what crashes leave behind.

    folder = new_version_folder(Path("runs/digits"))     # runs/digits/version_K, K free
    lock, notes = claim_run_folder(folder, resume=None, overwrite=False)
    ...                                                # train, write checkpoints
    lock.release()

A folder "holds a run" when it has a checkpoint or a non-empty metrics log: a new run there
would overwrite it, so the trainer refuses (RunExistsError) unless it resumes that run or
is told to overwrite it. One trainer at a time: run_lock.py. Temporaries that dead writers
left half-written (`.last.npz.<pid>.<hex>.tmp`, see atomic.write_atomically) are removed
when a run claims the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from netspec.training.events import TrainingError
from netspec.training.run_lock import LOCK_NAME, RunLock, RunLockedError, pid_alive

RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "metrics.png")
_VERSION = re.compile(r"version_(\d+)")
_TEMPORARY = re.compile(r"\.(.+)\.(\d+)\.([0-9a-f]+)\.tmp")  # .<name>.<pid>.<hex>.tmp


class RunExistsError(TrainingError):
    """The folder holds another run, which a new run would overwrite."""

    def __init__(self, folder: Path, files: list[str]):
        super().__init__(
            f"{folder} already holds a run ({', '.join(files)}); a new run would overwrite it",
            hint="resume that run from its last.npz, allow overwriting it, or choose another "
            "folder",
        )
        self.folder, self.files = folder, files


def run_files(folder: Path) -> list[str]:
    """The names of the run files in `folder` that a new run would overwrite."""
    found = [name for name in ("last.npz", "best.npz") if (folder / name).exists()]
    log = folder / "metrics.jsonl"
    if log.is_symlink() or (log.is_file() and log.stat().st_size > 0):
        found.append("metrics.jsonl")
    return found


def new_version_folder(root: Path) -> Path:
    """Create and return `root/version_K` for the next free K (0 first, as Lightning).

    mkdir is the claim: two runs started at once get two folders.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in root.iterdir() if (m := _VERSION.fullmatch(p.name))]
        version = max(taken, default=-1) + 1
        while True:
            folder = root / f"version_{version}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                version += 1
    except OSError as exc:
        reason = exc.strerror or exc
        raise TrainingError(f"cannot create a run folder in {root}: {reason}") from None


def remove_if_empty(folder: Path) -> None:
    """Remove `folder` if nothing is in it: a run that stopped before writing anything
    leaves no empty folder behind."""
    with contextlib.suppress(OSError):  # not empty, or gone: keep it
        folder.rmdir()


def clear_run(folder: Path) -> list[str]:
    """Remove the files of the run in `folder` (overwriting it); returns their names."""
    removed = []
    for name in RUN_FILES:
        path = folder / name
        if path.is_symlink() or path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise TrainingError(f"cannot remove {path}: {exc.strerror or exc}") from None
            removed.append(name)
    return removed


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries of writers that are no longer running; returns them."""
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        pid = int(match.group(2))
        if pid != os.getpid() and not pid_alive(pid):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass  # gone already, or not ours to remove: harmless either way
    return removed


def claim_run_folder(
    out: Path | None, resume: str | Path | None, overwrite: bool
) -> tuple[RunLock | None, list[str]]:
    """Lock the run folder, refuse to overwrite another run in it (unless `overwrite`), and
    clear what dead writers left there. Returns the lock (None when the run writes no
    files) and notes for the run's warnings."""
    notes: list[str] = []
    if out is None:
        return None, notes
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create {out}: {exc.strerror or exc}") from None
    lock = RunLock.acquire(out)
    try:
        takeover = lock.describe_takeover()
        if takeover is not None:
            notes.append(takeover)
        continues = resume is not None and _same_folder(Path(resume).parent, out)
        found = run_files(out)
        if found and not continues:
            if not overwrite:
                raise RunExistsError(out, found)
            notes.append(f"overwrote the run in {out} ({', '.join(clear_run(out))})")
        stale = remove_stale_temporaries(out)
        if stale:
            names = ", ".join(p.name for p in stale)
            notes.append(f"removed what interrupted writes left: {names}")
    except BaseException:
        lock.release()
        raise
    return lock, notes


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


__all__ = [
    "LOCK_NAME",
    "RunExistsError",
    "RunLock",
    "RunLockedError",
    "claim_run_folder",
    "clear_run",
    "new_version_folder",
    "remove_if_empty",
    "remove_stale_temporaries",
    "run_files",
]

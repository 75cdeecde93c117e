"""One trainer at a time in a run folder: `.netspec.lock`.

    lock = RunLock.acquire(folder)                     # RunLockedError when held
    ...                                                # train, write checkpoints
    lock.release()

The lock holds the owner's pid, host and start time as JSON; it is created with O_EXCL and
held with flock where the platform has it. A lock whose process is gone from this host is
taken over (`describe_takeover` says whose).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from netspec.training.events import TrainingError

try:
    import fcntl
except ImportError:  # Windows: the pid check alone decides whether a lock is stale
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".netspec.lock"
_EMPTY_LOCK_RETRIES = 20  # x 25 ms: a lock file is empty only while its owner writes it


class RunLockedError(TrainingError):
    """Another live trainer writes the folder."""

    def __init__(self, folder: Path, owner: dict):
        pid, host = owner.get("pid", "?"), owner.get("host", "?")
        since = owner.get("started")
        when = f" since {since}" if since else ""
        super().__init__(
            f"{folder} is in use by another trainer (pid {pid} on {host}{when})",
            hint=f"wait for it to finish, stop it, or choose another folder (the lock is "
            f"{folder / LOCK_NAME})",
        )
        self.folder, self.pid, self.host = folder, pid, host


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (True when it cannot be told)."""
    if pid <= 0:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass
class RunLock:
    """The lock of one run folder, held by this process until `release()`."""

    path: Path
    fd: int
    took_over: dict | None = None  # the owner of a stale lock this one replaced

    @classmethod
    def acquire(cls, folder: Path) -> RunLock:
        """Lock `folder` (which exists); RunLockedError when a live trainer holds it."""
        path = folder / LOCK_NAME
        took_over = None
        for _ in range(_EMPTY_LOCK_RETRIES + 2):
            fd = _create(path)
            if fd is not None:
                return cls(path, fd, took_over)
            owner, stale = _inspect(path)
            if owner is None:  # its owner is writing it, or it just went away
                time.sleep(0.025)
                continue
            if not stale:
                raise RunLockedError(folder, owner)
            if _remove_stale(path):
                took_over = owner
        raise RunLockedError(folder, {"pid": "?", "host": "?"})

    def release(self) -> None:
        """Remove the lock file and let go of it."""
        try:
            self.path.unlink()
        except OSError:
            pass  # removed by hand: nothing left to release
        finally:
            os.close(self.fd)

    def describe_takeover(self) -> str | None:
        """One line about the stale lock this one replaced, if any."""
        owner = self.took_over
        if owner is None:
            return None
        return (
            f"took over the lock of {self.path.parent}: its trainer (pid {owner.get('pid')} "
            f"on {owner.get('host')}) is no longer running"
        )


def _create(path: Path) -> int | None:
    """Create the lock file with O_EXCL, flock it, then write who holds it; None if it
    exists. The flock comes before the content, so a readable owner always holds it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        return None
    except OSError as exc:
        raise TrainingError(f"cannot lock {path.parent}: {exc.strerror or exc}") from None
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new file: nobody else has it
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.write(fd, json.dumps(owner).encode())
    os.fsync(fd)
    return fd


def _inspect(path: Path) -> tuple[dict | None, bool]:
    """(owner, stale) of an existing lock file; owner None while it is empty or gone."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, False
    except OSError as exc:
        raise TrainingError(f"cannot read the lock {path}: {exc.strerror or exc}") from None
    if not text:
        return None, False
    try:
        owner = json.loads(text)
        pid = int(owner["pid"])
    except (ValueError, KeyError, TypeError):
        return {"pid": "?", "host": "?"}, True  # not a lock netspec wrote whole
    if owner.get("host") != socket.gethostname():
        return owner, False  # another machine's process: cannot tell, so it is live
    return owner, not pid_alive(pid) or _flock_free(path)


def _flock_free(path: Path) -> bool:
    """Whether nobody holds the flock of `path` (its owner's pid was reused)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _remove_stale(path: Path) -> bool:
    """Remove a stale lock file unless another process is taking it over at the same time
    (it holds the file's flock, or has replaced the file already)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False
                raise
        if os.fstat(fd).st_nlink == 0:
            return False  # another process took it over since we opened it
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)

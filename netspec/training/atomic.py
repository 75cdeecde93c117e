"""Files that appear whole or not at all: a crash or Ctrl-C never leaves half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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

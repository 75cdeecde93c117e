"""The CLI's one error-to-exit handler: every command runs inside `errors_exit`.

A NetspecError is its line and hint on stderr and exit 1 (worded in the CLI's flags where
the library speaks of folders and checkpoints), as is a MemoryError; Ctrl-C where a
command says what it means is that line and exit 130 (SIGTERM: 143).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from netspec.errors import NetspecError
from netspec.training.interrupts import Terminated

err = Console(stderr=True)

# The estimate behind warning[memory] errs low; an allocation it missed still ends in a line.
OUT_OF_MEMORY = "out of memory: the network, its batch or its data do not fit on this machine"


class CommandError(NetspecError):
    """A command's own failure (a file it cannot write, a stale schema): one error line."""


def in_cli_words(exc: NetspecError) -> tuple[str, str | None]:
    """The error line and hint of `exc` as the user reads them: the library speaks of
    folders and checkpoints, the user typed flags."""
    # Here, not at the top: `netspec check` never loads the trainer (nor NumPy).
    from netspec.training.checkpoint import CheckpointNotFoundError
    from netspec.training.run_folder import RunExistsError

    if isinstance(exc, RunExistsError):
        return (
            f"--out {exc.folder} already holds a run ({', '.join(exc.files)}): continue it "
            f"with --resume {exc.folder / 'last.npz'}, or replace it with --overwrite"
        ), None
    if isinstance(exc, CheckpointNotFoundError):
        return exc.message, "runs write last.npz and best.npz under --out"
    return exc.message or str(exc), exc.hint


def print_error(message: str, hint: str | None = None) -> None:
    """One error line (`message` is plain text, never markup) and a hint line."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(f"  hint: {escape(hint)}", style="cyan", highlight=False, soft_wrap=True)


@contextmanager
def errors_exit(interrupted: str | None = None) -> Iterator[None]:
    """The one place errors become exits: a NetspecError is its line (and hint) and exit 1,
    as is a MemoryError. Given `interrupted` (what Ctrl-C means there), Ctrl-C is that line
    and exit 130 (SIGTERM: 143, as a shell reports a process it ended); otherwise it is
    left to click."""
    try:
        yield
    except NetspecError as exc:
        print_error(*in_cli_words(exc))
        raise typer.Exit(1) from None
    except MemoryError:
        print_error(OUT_OF_MEMORY)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        if interrupted is None:
            raise
        terminated = isinstance(exc, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        err.print(f"{what} {interrupted}".rstrip(), highlight=False)
        raise typer.Exit(143 if terminated else 130) from None


def ignore_signals() -> dict:
    """Let SIGINT and SIGTERM do nothing (main thread only); the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.signal(number, signal.SIG_IGN) for number in _STOPPING}


_STOPPING = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM do nothing inside the block: for the summary of a run that is
    over and saved, which a signal could only cut short."""
    previous = ignore_signals()
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

"""`netspec train` under an MPI launcher (design.md §6): rank 0 speaks for the run, and a
process that cannot go on ends the others rather than leave them waiting.

Errors every process meets alike (a spec or data error, a NaN loss, a peer that failed to
start) end each of them normally, rank 0 saying why. A lost peer (a collective's timeout)
is said by the process that noticed, which then aborts the world: the launcher ends every
process, the silent one included. So does an error of one process alone.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from netspec.cli.exits import err, in_cli_words, print_error
from netspec.errors import NetspecError

if TYPE_CHECKING:
    from netspec.training.distributed import MpiWorld


@contextmanager
def launched(*consoles: Console) -> Iterator[MpiWorld | None]:
    """The launcher's world (None for a plain run); `consoles` print on rank 0 only."""
    from netspec.training.distributed import PeerFailedError, RankLostError, launched_world

    world = launched_world()
    if world is None:
        yield None
        return
    for console in (err, *consoles):
        console.quiet = world.rank != 0
    try:
        yield world
    except PeerFailedError:
        raise typer.Exit(1) from None  # the failed process said why
    except RankLostError as exc:
        err.quiet = False
        print_error(*in_cli_words(exc))
        world.abort(1)
    except (NetspecError, KeyboardInterrupt, typer.Exit):
        raise  # met by every process alike: each ends as one process would
    except BaseException as exc:  # this process's own failure: the others would wait
        err.quiet = False
        if isinstance(exc, MemoryError):
            print_error(f"rank {world.rank}: out of memory")
        else:
            traceback.print_exc()
        world.abort(1)

"""Ctrl-C during training: stop at the next batch boundary, where the state is whole.

    interrupts = DeferredInterrupts()
    with interrupts.installed():
        for batch in batches:
            step(batch)
            interrupts.check()      # raises KeyboardInterrupt once Ctrl-C was pressed

A second Ctrl-C stops at once. The handler is installed only where Python's default one is
set, in the main thread: elsewhere (a host application's own handler, a worker thread)
KeyboardInterrupt keeps its usual meaning.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class DeferredInterrupts:
    """Turns the first SIGINT into a request that `check()` acts on."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the handler was installed."""
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The deferring handler in force inside the block (when it can be installed)."""
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

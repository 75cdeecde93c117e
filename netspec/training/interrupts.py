"""Ctrl-C and SIGTERM during training: stop at the next batch boundary, where the state is
whole.

    interrupts = DeferredInterrupts()
    with interrupts.installed():      # SIGINT, SIGTERM: KeyboardInterrupt (Terminated) at once
        build()
        with interrupts.deferring():
            for batch in batches:
                step(batch)
                interrupts.check()    # raises KeyboardInterrupt once a signal came

SIGTERM (what a scheduler or Kubernetes sends before SIGKILL) is treated like Ctrl-C;
`signal` says which one came. A second signal stops at once. A handler is installed only
where Python's default one is set, in the main thread: elsewhere (a host application's own
handler, a worker thread) the signal keeps its usual meaning.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """A SIGTERM that could not wait for a batch boundary (a second one, or before training
    started)."""


_DEFAULTS = {"SIGINT": signal.default_int_handler, "SIGTERM": signal.SIG_DFL}


class DeferredInterrupts:
    """Turns the first SIGINT or SIGTERM inside `deferring()` into a request that `check()`
    acts on."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None  # "SIGINT" or "SIGTERM": the first one that came
        self._deferring = False

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came since the handler was installed."""
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Inside the block, the first signal waits for `check()`."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def hold(self) -> None:
        """From now until the handlers go, a signal only waits: the run is over (saved, or
        failed and said so), and what is left (releasing the lock) must not be cut."""
        self._deferring = True

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        first = not self.requested
        if first:
            self.signal = name
        if first and self._deferring:
            self.requested = True
            return
        raise Terminated if name == "SIGTERM" else KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers in force inside the block (where they can be installed)."""
        with ExitStack() as stack:
            if threading.current_thread() is threading.main_thread():
                for name, default in _DEFAULTS.items():
                    number = getattr(signal, name, None)
                    if number is not None and signal.getsignal(number) is default:
                        previous = signal.signal(number, self._handle)
                        stack.callback(signal.signal, number, previous)
            yield

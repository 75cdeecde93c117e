"""Collecting diagnostics while a spec is checked: each problem is resolved from its YAML path
to a line and column, duplicates are dropped, and all of them are raised as one SpecError.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from netspec.errors import Diagnostic, SpecError

if TYPE_CHECKING:
    from netspec.frontend.source import Path, Source


@dataclass
class Collector:
    """Gathers diagnostics for one source, resolving YAML paths to line:col."""

    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _seen: set[Diagnostic] = field(default_factory=set, repr=False)

    def error(self, path: Path, code: str, message: str, hint: str | None = None) -> None:
        self._add(path, code, message, hint, "error")

    def warning(self, path: Path, code: str, message: str, hint: str | None = None) -> None:
        self._add(path, code, message, hint, "warning")

    def _add(self, path: Path, code: str, message: str, hint: str | None, severity: str) -> None:
        line, col = self.source.position(path)
        diagnostic = Diagnostic(self.source.name, line, col, code, message, hint, severity)
        if diagnostic in self._seen:  # the same problem of another instance of one definition
            return
        self._seen.add(diagnostic)
        note = self.source.note(path)
        if note is not None:
            diagnostic = replace(diagnostic, message=f"{message}, {note}")
        self.diagnostics.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise SpecError(sorted(self.diagnostics, key=lambda d: (d.line, d.col)))

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None

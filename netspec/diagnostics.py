"""Diagnostics: located, coded messages about a spec, and the one exception that carries them.

Every problem netspec finds in a spec becomes a `Diagnostic`; the library collects them
all and raises one `SpecError`. Nothing here prints: the CLI renders them.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netspec.source import Path, Source


@dataclass(frozen=True)
class Diagnostic:
    """One located message: `FILE:LINE:COL: error[CODE]: message`, with an optional hint."""

    file: str
    line: int
    col: int
    code: str
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    def __post_init__(self) -> None:
        # Text from a spec reaches a terminal: its ESC sequences and bidi overrides must not.
        for name in ("file", "message", "hint"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, printable(value))

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self, source_text: str | None = None) -> str:
        """The one-line form, plus the hint, plus a source excerpt with a caret if given text."""
        lines = [
            f"{self.file}:{self.line}:{self.col}: {self.severity}[{self.code}]: {self.message}"
        ]
        if source_text is not None:
            lines.extend(_excerpt(source_text, self.line, self.col))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def printable(text: str) -> str:
    """`text` with control and format characters (ESC, NUL, U+202E, zero-width spaces) written
    as escapes, as repr() writes them; line breaks stay."""
    if text.isprintable():
        return text
    return "".join(
        c if c == "\n" or unicodedata.category(c) not in _UNPRINTABLE else repr(c)[1:-1]
        for c in text
    )


_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp"}


def _excerpt(text: str, line: int, col: int) -> list[str]:
    source_lines = text.splitlines()
    if not 1 <= line <= len(source_lines):
        return []
    gutter, source = f"{line:>4} | ", source_lines[line - 1]
    before = printable(source[: col - 1])  # escapes widen the line: the caret follows them
    return [gutter + printable(source), " " * (len(gutter) + len(before)) + "^"]


class NetspecError(Exception):
    """Base of every error netspec raises on purpose; anything else escaping is a bug."""


class InputError(NetspecError, ValueError):
    """An array given at run time does not fit: wrong shape, dtype or value range."""


class SpecError(NetspecError):
    """A spec has errors. `.diagnostics` lists all of them (warnings found alongside included)."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s) in spec"
        super().__init__(f"{summary}; first: {first}" if first else summary)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


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
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
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

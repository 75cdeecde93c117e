"""netspec's errors: every one it raises on purpose derives from NetspecError, which carries
a message and an optional hint; a spec's problems are located Diagnostics in one SpecError.
The rule errors of argument and shape checks (ArgError, ShapeError) are caught by the
front end and become Diagnostics. Anything else escaping netspec is a bug.

Nothing here prints: the CLI renders them. Imports nothing of netspec's.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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
    """Base of every error netspec raises on purpose; anything else escaping is a bug.

    `hint` says what to do about it, when there is something to say (the CLI prints it).
    """

    def __init__(self, message: str = "", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


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


# -- the rule errors of argument and shape checks ------------------------------------------
class ArgError(ValueError):
    """A constructor-time error (PyTorch's message) about one argument of a layer.

    Raised from a schema's model validator; the diagnostics point at `field`.
    """

    def __init__(self, field: str | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.field = field
        self.message = message
        self.hint = hint


class ArgErrors(ArgError):
    """Every constructor-time rule a layer breaks, so that all of them are reported at once.

    It reads as the first of them (PyTorch's error); `errors` holds them all.
    """

    def __init__(self, errors: Sequence[ArgError]):
        first = errors[0]
        super().__init__(first.field, first.message, first.hint)
        self.errors = list(errors)


def raise_arg_errors(errors: Sequence[ArgError]) -> None:
    """Raise the one error, or all of them together; nothing when there is none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ArgErrors(errors)


class ShapeError(Exception):
    """An input shape this layer cannot take.

    `field` names the argument to point at (else the layer itself); `recovered` is the
    output shape to carry on with (from the declared arguments) so that later layers are
    still checked, or None when nothing sensible follows. `guessed` says the recovered
    sizes are a guess (after a refused stride, say): later errors that depend on sizes are
    then not reported, those about channels or ranks still are. `more` holds further
    problems found in the same call, reported with this one.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        recovered: tuple[int | None, ...] | None = None,
        code: str = "shape",
        guessed: bool = False,
        more: Sequence[ShapeError] = (),
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint
        self.recovered = recovered
        self.code = code
        self.guessed = guessed
        self.more = tuple(more)

    @property
    def all(self) -> tuple[ShapeError, ...]:
        """This problem and the others found with it, in order."""
        return (self, *self.more)


def raise_shape_errors(
    errors: Sequence[ShapeError], recovered: tuple[int | None, ...] | None, *, guessed: bool = True
) -> None:
    """Raise every problem in `errors` as one ShapeError carrying on with `recovered`."""
    if errors:
        first = errors[0]
        first.more, first.recovered, first.guessed = tuple(errors[1:]), recovered, guessed
        raise first

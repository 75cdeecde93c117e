"""YAML text -> plain data, plus a map from each value's path to its line and column.

The YAML is read as YAML 1.2 with its core schema, as the YAML language server in an editor
reads it (PyYAML alone reads YAML 1.1, where `1e-3` is a string, `yes` is true and `010` is
8). PyYAML's safe loader does the parsing (no Python tags); the node tree is walked by hand
so that every key and item keeps its position, duplicate keys are caught (PyYAML silently
keeps the last), and alias expansion is bounded (a "billion laughs" document is refused
instead of eating the memory).
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from netspec.errors import Diagnostic, SpecError

Path = tuple[str | int, ...]

MAX_TEXT_BYTES = 2_000_000  # a spec is a page of YAML; megabytes mean something is wrong
MAX_NODES = 100_000  # after alias expansion; far above any real spec, far below a bomb

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class CoreSchemaLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's implicit types (spec §10.3).

    null: `null Null NULL ~` and empty; bool: `true True TRUE false False FALSE` only;
    int: decimal `[-+]?[0-9]+` (leading zeros are decimal), `0o` octal, `0x` hex;
    float: decimal with a point or an exponent, `.inf`, `.nan`. Every other plain scalar is a
    string: `yes`, `on`, `1_000`, `2024-01-01`. Merge keys (`<<`) are kept, as editors do.
    """

    yaml_implicit_resolvers: dict = {}  # PyYAML's class-level registry; starts empty here

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        """An alias becomes a copy of its anchor's node that sits where the alias is written,
        so a diagnostic about what it brings in points at the use, not at the anchor."""
        if not self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        use = copy.copy(super().compose_node(parent, index))
        use.start_mark = use.end_mark = mark
        if isinstance(use, yaml.CollectionNode):  # merge keys are flattened in place, per use
            use.value = list(use.value)
        return use


_CORE_TYPES = {
    "null": (r"~|null|Null|NULL|", "~nN"),
    "bool": (r"true|True|TRUE|false|False|FALSE", "tTfF"),
    "int": (r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    "float": (
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+.0123456789",
    ),
}
for _name, (_pattern, _first) in _CORE_TYPES.items():
    _starts = [*_first, ""] if _name == "null" else list(_first)  # "" = the empty scalar
    CoreSchemaLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_name}", re.compile(f"^(?:{_pattern})$"), _starts
    )
CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class InvalidScalar(yaml.constructor.ConstructorError):
    """A scalar its tag cannot read: `!!int yes`, or an integer of 5,000 digits."""

    hint: str | None = None


def _core_scalar(parse):
    """A constructor for one core type; a value its tag cannot read is a located error."""

    def construct(loader: CoreSchemaLoader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        try:
            return parse(text)
        except (ValueError, KeyError) as exc:
            shown = (
                repr(text) if len(text) <= 40 else f"'{text[:20]}...' ({len(text):,} characters)"
            )
            too_long = isinstance(exc, TooLong)
            reason = f": {exc.args[0]}" if too_long else ""
            error = InvalidScalar(
                None,
                None,
                f"{shown} is not a valid {node.tag.rsplit(':', 1)[-1]}{reason}",
                node.start_mark,
            )
            error.hint = None if too_long else "write the value without a tag, or one it can read"
            raise error from None

    return construct


class TooLong(ValueError):
    """A number written with more digits than any spec value can need."""


MAX_DIGITS = 100  # far beyond int64; Python itself refuses int() of 4,300+ digits


def _int(text: str) -> int:
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    if len(digits) > MAX_DIGITS:
        raise TooLong(f"more than {MAX_DIGITS} digits")
    base = {"0o": 8, "0x": 16}.get(digits[:2], 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _float(text: str) -> float:
    special = {".inf": math.inf, ".nan": math.nan}.get(text.lstrip("+-").lower())
    if special is not None:
        return -special if text.startswith("-") else special
    return float(text)


_BOOLS = {"true": True, "false": False}
for _name, _parse in {
    "null": lambda text: {"": None, "~": None, "null": None}[text.lower()],
    "bool": lambda text: _BOOLS[text.lower()],
    "int": _int,
    "float": _float,
}.items():
    CoreSchemaLoader.add_constructor(f"tag:yaml.org,2002:{_name}", _core_scalar(_parse))


@dataclass
class Source:
    """A parsed spec file: its name, text, plain data, and where each path sits in the text."""

    name: str
    text: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    # Paths of layers that nesting made (`("#", 3)`, see expand.py): where each was written,
    # and the instance it belongs to (`in layer1.0 (BasicBlock, used at ...)`).
    aliases: dict[Path, Path] = field(default_factory=dict)
    notes: dict[Path, str] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int, int]:
        """Line and column (1-based) of `path`, or of its nearest ancestor that has one."""
        path = self.written(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def alias(self, path: Path, written: Path, note: str | None = None) -> None:
        """Let `path` (and everything under it) stand for `written`, noted with `note`."""
        self.aliases[path] = written
        if note is not None:
            self.notes[path] = note

    def written(self, path: Path) -> Path:
        """Where `path` was written: itself, or what its longest aliased prefix stands for."""
        path = tuple(path)
        while path and path[0] == "#":
            for cut in range(len(path), 0, -1):
                if path[:cut] in self.aliases:
                    path = (*self.aliases[path[:cut]], *path[cut:])
                    break
            else:
                return path
        return path

    def note(self, path: Path) -> str | None:
        """The instance a diagnostic at `path` is about, for a layer that nesting made."""
        path = tuple(path)
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.notes:
                return self.notes[path[:cut]]
        return None


def read_text(path: str | os.PathLike) -> str:
    """A spec file's text, read no further than the size limit (`/dev/zero` is refused, not
    read until memory runs out). Raises SpecError for a file that cannot be read."""
    name = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        _fail(name, 1, 1, "io", f"cannot read spec: {exc.strerror or exc}")
    if len(data) > MAX_TEXT_BYTES:
        _fail(name, 1, 1, "too-large", f"spec is larger than {MAX_TEXT_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(name, 1, 1, "io", f"cannot read spec: {exc}")


def parse(text: str, name: str = "<string>") -> Source:
    """Parse YAML text safely. Raises SpecError for text that is not a usable YAML document."""
    source = Source(name=name, text=text, data=None)
    if len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
        _fail(name, 1, 1, "too-large", f"spec is larger than {MAX_TEXT_BYTES:,} bytes")
    if not text.strip() or all(_is_comment(line) for line in text.splitlines()):
        _fail(name, 1, 1, "empty", "spec is empty", "start with `name:`, `input:` and `layers:`")
    loader = None
    try:
        loader = CoreSchemaLoader(text)  # reads the text: control characters fail here
        node = loader.get_single_node()
        if node is None:
            _fail(
                name, 1, 1, "empty", "spec is empty", "start with `name:`, `input:` and `layers:`"
            )
        walker = _Walker(loader, source)
        source.data = walker.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        _fail(name, line, col, *_describe(exc, _line(text, line)[: max(col, 1)]))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line, col = _line_col(text, exc.position)
        message = f"control character U+{exc.character:04X} is not allowed in YAML"
        _fail(
            name, line, col, "yaml-char", message, "remove it, or write it as an escape in quotes"
        )
    except yaml.YAMLError as exc:  # errors without a mark (rare): still located at the top
        _fail(name, 1, 1, "yaml-syntax", str(exc))
    except RecursionError:
        _fail(name, 1, 1, "too-deep", "spec nests too deeply")
    finally:
        if loader is not None:
            loader.dispose()
    return source


_FOUND = {"<block mapping start>": "a key", "?": "a key", "<block sequence start>": "a list item"}


def _describe(exc: yaml.MarkedYAMLError, line_start: str) -> tuple[str, str, str | None]:
    """Code, message and hint for a YAML error, in the words of someone writing YAML."""
    problem = str(exc.problem or "")
    if isinstance(exc, InvalidScalar):
        return "yaml-value", problem, exc.hint
    if isinstance(exc, yaml.constructor.ConstructorError):
        tag = problem.split("tag ")[-1] if "tag" in problem else ""
        hint = "specs are read safely: only plain YAML values are allowed"
        return "yaml-tag", "unsupported tag" + (f": {tag}" if tag else ""), hint
    if "\t" in problem or "\t" in line_start:
        hint = "YAML indents with spaces only; replace the tabs with spaces"
        return "yaml-syntax", "tab character in indentation", hint
    if problem.startswith("expected <block end>") and exc.context_mark and exc.problem_mark:
        found = _FOUND.get(problem.rsplit("found ", 1)[-1].strip("'"), "this")
        block = "list" if "collection" in str(exc.context) else "mapping"
        start = exc.context_mark
        message = (
            f"bad indentation: {found} at column {exc.problem_mark.column + 1} does not fit the"
            f" {block} that starts at line {start.line + 1}, column {start.column + 1}"
        )
        hint = "keys of one mapping, and items of one list, start in the same column"
        return "yaml-syntax", message, hint
    if problem == "mapping values are not allowed here":
        message = "unexpected ':' inside a plain value"
        hint = "put a space after the key's ':' and the value on the same line, or quote the value"
        return "yaml-syntax", message, hint
    message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
    return "yaml-syntax", message or "invalid YAML", None


def _is_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped in ("---", "...")


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def _fail(name: str, line: int, col: int, code: str, message: str, hint: str | None = None):
    raise SpecError([Diagnostic(name, line, col, code, message, hint)])


class _Walker:
    """Builds plain Python data from a composed node tree, recording positions."""

    def __init__(self, loader: CoreSchemaLoader, source: Source):
        self.loader = loader
        self.source = source
        self.nodes = 0
        self.duplicates: set[tuple[int, int]] = set()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            mark = node.start_mark
            _fail(
                self.source.name,
                mark.line + 1,
                mark.column + 1,
                "too-large",
                f"spec expands to more than {MAX_NODES:,} values (YAML aliases?)",
            )
        self.source.positions.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, _MAP_TAG)
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, _SEQ_TAG)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise yaml.constructor.ConstructorError(
                None, None, f"tag {node.tag!r}", node.start_mark
            )

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        own = sum(key.tag != "tag:yaml.org,2002:merge" for key, _ in node.value)
        self.loader.flatten_mapping(node)  # resolves `<<:` merge keys, placing them first
        merged = len(node.value) - own  # written keys may override merged ones
        result: dict = {}
        written: set = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node, deep=True)
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                _fail(
                    self.source.name, line, col, "yaml-key", "a mapping key must be a plain value"
                )
            if index >= merged and key in written and (line, col) not in self.duplicates:
                self.duplicates.add((line, col))  # an aliased mapping is walked once per use
                self.source.problems.append(
                    Diagnostic(
                        self.source.name,
                        line,
                        col,
                        "duplicate-key",
                        f"duplicate key '{key}'",
                        "YAML keeps only the last; remove one",
                    )
                )
            if index >= merged:
                written.add(key)
            self.source.positions[(*path, key)] = (line, col)
            result[key] = self.build(value_node, (*path, key))
        return result

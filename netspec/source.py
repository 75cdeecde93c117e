"""YAML text -> plain data, plus a map from each value's path to its line and column.

The YAML is read with PyYAML's safe loader (no Python tags), and the node tree is walked by
hand so that every key and item keeps its position, duplicate keys are caught (PyYAML
silently keeps the last), and alias expansion is bounded (a "billion laughs" document is
refused instead of eating the memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from netspec.diagnostics import Diagnostic, SpecError

Path = tuple[str | int, ...]

MAX_TEXT_BYTES = 2_000_000  # a spec is a page of YAML; megabytes mean something is wrong
MAX_NODES = 100_000  # after alias expansion; far above any real spec, far below a bomb

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass
class Source:
    """A parsed spec file: its name, text, plain data, and where each path sits in the text."""

    name: str
    text: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)

    def position(self, path: Path) -> tuple[int, int]:
        """Line and column (1-based) of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


def parse(text: str, name: str = "<string>") -> Source:
    """Parse YAML text safely. Raises SpecError for text that is not a usable YAML document."""
    source = Source(name=name, text=text, data=None)
    if len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
        _fail(name, 1, 1, "too-large", f"spec is larger than {MAX_TEXT_BYTES:,} bytes")
    if not text.strip() or all(_is_comment(line) for line in text.splitlines()):
        _fail(name, 1, 1, "empty", "spec is empty", "start with `name:`, `input:` and `layers:`")
    loader = yaml.SafeLoader(text)
    try:
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
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        hint = None
        code = "yaml-syntax"
        if isinstance(exc, yaml.constructor.ConstructorError):
            code, hint = "yaml-tag", "specs are read safely: only plain YAML values are allowed"
            tag = getattr(exc, "problem", "") or ""
            message = "unsupported tag" + (f": {tag.split('tag ')[-1]}" if "tag" in tag else "")
        elif "\\t" in message or "\t" in _line(text, line)[: max(col, 1)]:
            message = "tab character in indentation"
            hint = "YAML indents with spaces only; replace the tabs with spaces"
        _fail(name, line, col, code, message or "invalid YAML", hint)
    except yaml.YAMLError as exc:  # errors without a mark (rare): still located at the top
        _fail(name, 1, 1, "yaml-syntax", str(exc))
    except RecursionError:
        _fail(name, 1, 1, "too-deep", "spec nests too deeply")
    finally:
        loader.dispose()
    return source


def _is_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped in ("---", "...")


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def _fail(name: str, line: int, col: int, code: str, message: str, hint: str | None = None):
    raise SpecError([Diagnostic(name, line, col, code, message, hint)])


class _Walker:
    """Builds plain Python data from a composed node tree, recording positions."""

    def __init__(self, loader: yaml.SafeLoader, source: Source):
        self.loader = loader
        self.source = source
        self.nodes = 0

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
            if index >= merged and key in written:
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

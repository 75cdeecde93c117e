"""The three equal ways to write a layer (or a loss, optimizer, schedule), reduced to one.

    - ReLU                               # a bare name: no arguments
    - Conv2d: {kernel_size: 5, ...}      # a one-key mapping (graph keys may sit beside it)
    - {type: Conv2d, kernel_size: 5}     # a mapping with `type`

Each becomes `{"type": "Conv2d", ...}` plus an `Origin`: where each argument came from in
the source, so that a diagnostic about `kernel_size` points at the text the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netspec.frontend.diagnostics import Collector, did_you_mean
from netspec.frontend.source import Path

GRAPH_KEYS = ("name", "inputs")


@dataclass
class Origin:
    """Where a normalised entry and each of its keys sit in the source."""

    base: Path
    keys: dict[str, Path] = field(default_factory=dict)

    def path(self, key: str | None = None) -> Path:
        if key is None:
            return self.base
        return self.keys.get(key, (*self.base, key))


def normalize_entry(
    value: Any,
    path: Path,
    kinds: dict[str, Any],
    what: str,
    collector: Collector,
    graph_keys: tuple[str, ...] = (),
) -> tuple[dict | None, Origin]:
    """Reduce one entry to `{"type": ..., **args}`; None (with a diagnostic) if impossible.

    `kinds` maps the known type names to their classes (for the unknown-name hint);
    `graph_keys` may sit beside a one-key mapping (`name`, `inputs` for layers).
    """
    origin = Origin(path)
    if isinstance(value, str):
        entry: dict = {"type": value}
        origin.keys["type"] = path
    elif isinstance(value, dict) and "type" in value:
        entry = dict(value)
        origin.keys.update({k: (*path, k) for k in value})
    elif isinstance(value, dict):
        type_keys = [k for k in value if k not in graph_keys]
        if len(type_keys) != 1:
            collector.error(path, f"bad-{what}", _form_message(what, value), _form_hint(what))
            return None, origin
        (type_name,) = type_keys
        args = value[type_name]
        if args is None:
            args = {}
        if not isinstance(args, dict):
            collector.error(
                (*path, type_name),
                f"bad-{what}",
                f"arguments of {type_name} must be a mapping, received {_kind(args)}",
                f"write `{type_name}: {{arg: value, ...}}`",
            )
            return None, origin
        entry = {"type": type_name, **args}
        origin.keys["type"] = (*path, type_name)
        origin.keys.update({k: (*path, type_name, k) for k in args})
        origin.keys.update({k: (*path, k) for k in value if k in graph_keys})
        entry.update({k: value[k] for k in value if k in graph_keys})
        origin.base = (*path, type_name)
    else:
        collector.error(path, f"bad-{what}", _form_message(what, value), _form_hint(what))
        return None, origin

    type_name = entry["type"]
    if not isinstance(type_name, str) or type_name not in kinds:
        known = ", ".join(kinds)
        hint = did_you_mean(str(type_name), kinds) if isinstance(type_name, str) else None
        collector.error(
            origin.path("type"),
            f"unknown-{what}",
            f"unknown {what} '{type_name}'",
            hint or f"known {what}s: {known}",
        )
        return None, origin
    return entry, origin


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _form_message(what: str, value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(map(str, value)) or "nothing"
        return f"{_a(what)} mapping needs `type:` or exactly one name as key, received keys {keys}"
    return f"expected {_a(what)}, received {_kind(value)}"


def _form_hint(what: str) -> str:
    return f"write `Name`, `Name: {{arg: value}}` or `{{type: Name, arg: value}}` for {_a(what)}"

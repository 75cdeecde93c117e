"""Nesting: Sequential, blocks, `$param` and `repeat`, expanded into the flat list of layers
that the rest of the front end checks (design.md §1.2).

    blocks:
      BasicBlock:
        params: [planes, stride: 1]       # required, and defaulted
        layers: [...]                     # `input` is the block's input
    layers:
      - {type: BasicBlock, name: layer1, planes: 64, repeat: 2}   # layer1.0, layer1.1

Every layer of an instance is named by its module path (`layer1.0.conv1`), and `inputs`
inside a block or Sequential name its own layers: they are rewritten to full names. A flat
spec passes through unchanged.

Locations. A layer written once in a block definition becomes one layer per instance, so
its diagnostics must point at the definition and say which instance they are about. Each
such layer gets a path of its own, `("#", k)`, which the Source resolves to where it was
written (`Source.alias`) and notes with the instance (`in layer2.0 (BasicBlock, used at
model.yaml:31:5)`); a `$param`'s value resolves to the argument at the use site. The
collector reports an error that is the same in every instance once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from netspec.frontend.blocks import (
    MAX_LAYERS,
    REQUIRED,
    SEQUENTIAL,
    USE_KEYS,
    Block,
    one_name,
)
from netspec.frontend.diagnostics import Collector, did_you_mean
from netspec.frontend.normalize import Origin, normalize_entry
from netspec.frontend.source import Path
from netspec.layers import LAYER_TYPES

_PARAM = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class FlatLayer:
    """One layer of the expanded list: its entry (`{"type": ..., **args}`, full name and
    inputs written out where they differ from the defaults), and where it was written."""

    entry: dict | None  # None: it could not be read (already reported)
    origin: Origin
    name: str  # full name, also when `entry` is None
    index: int  # in the expanded list


@dataclass
class _Scope:
    """A list of layers being expanded: the top level, a Sequential or a block instance."""

    prefix: str  # "" at the top, "layer1.0." inside
    input_ref: str  # full name of what `input` means here
    params: dict[str, tuple[Any, Path]] | None = None  # inside a block: param -> (value, where)
    note: str | None = None  # the instance, for diagnostics of its layers
    stack: tuple[str, ...] = ()  # the blocks being expanded, for cycles
    local: dict[str, str] = field(default_factory=dict)  # name here -> full output reference


class Expander:
    """Expands `layers` (with `blocks`) into FlatLayers; problems go to the collector."""

    def __init__(self, blocks: dict[str, Block], collector: Collector):
        self.blocks = blocks
        self.collector = collector
        self.source = collector.source
        self.kinds: dict[str, Any] = {**LAYER_TYPES, SEQUENTIAL: None, **blocks}
        self.flat: list[FlatLayer] = []
        self.modules: dict[str, str] = {}  # full name of a Sequential or block instance -> type
        self.names: set[str] = set()  # every full name made so far
        self.virtual = 0
        self.top = _Scope("", "input")

    def expand(self, items: list, path: Path) -> list[FlatLayer]:
        self.list(items, path, self.top)
        return self.flat

    def output_ref(self, ref: Any) -> str:
        """A top-level `outputs` entry as a full name (`layer1` -> `layer1.1.relu`)."""
        return self._resolve(ref, self.top)

    # -- a list of layers ---------------------------------------------------------------------
    def list(
        self, items: list, path: Path, scope: _Scope, outputs: tuple[list, Path] | None = None
    ) -> str:
        """Expand `items` into `scope`; the full reference of the list's output."""
        pending: list[tuple[FlatLayer, Any, str]] = []  # (layer, inputs, previous): resolved
        # once every sibling is named, since `inputs` may name a later one
        previous, index = scope.input_ref, 0
        for i, raw in enumerate(items):
            made, index = self._entry(raw, (*path, i), scope, previous, index, pending)
            previous = made or previous
        for layer, refs, before in pending:
            self._write_inputs(layer, refs, before, scope)
        if outputs is not None:
            return self._output(outputs[0][0], outputs[1], scope, previous)
        return previous

    def _entry(self, raw, path, scope, previous, index, pending) -> tuple[str | None, int]:
        """Expand one entry; (its output reference, the next default index)."""
        raw, substituted = self._substitute(raw, path, scope)
        item_path = self._own_path(path, scope, substituted)
        entry, origin = normalize_entry(
            raw, item_path, self.kinds, "layer", self.collector, USE_KEYS
        )
        if None in substituted.values():  # a `$param` it could not replace: said already
            entry = None
        if entry is None:
            name = raw.get("name") if isinstance(raw, dict) else None
            full = scope.prefix + (name if isinstance(name, str) else str(index))
            self.flat.append(FlatLayer(None, origin, full, len(self.flat)))
            return full, index + 1
        repeat = self._repeat(entry.pop("repeat", None), origin)
        name = entry.get("name")
        if repeat is not None and name is None:  # the copies join this list
            made = None
            for _ in range(repeat):
                copy = {**entry, "name": str(index)}
                if made is not None:
                    copy["inputs"] = [str(index - 1)]  # the copy before, by its name here
                made = self._one(copy, origin, scope, previous if made is None else made, pending)
                index += 1
            return made, index
        if name is None:
            name = str(index)
        if repeat is not None:
            made = self._repeated(entry, origin, scope, previous, str(name), repeat, pending)
        else:
            made = self._one({**entry, "name": name}, origin, scope, previous, pending)
        return made, index + 1

    def _one(self, entry, origin, scope, previous, pending) -> str | None:
        """One layer, Sequential or block use; its output reference."""
        name = entry["name"]
        full = scope.prefix + str(name)
        refs = entry.pop("inputs", None)
        kind = entry["type"]
        if kind == SEQUENTIAL or kind in self.blocks:
            input_ref = previous if refs is None else self._resolve_inputs(refs, scope, origin)
            out = self._nested(entry, origin, scope, full, input_ref)
        else:
            layer = FlatLayer(entry, origin, full, len(self.flat))
            if not isinstance(name, str):
                pass  # validation says what is wrong with it
            elif full != str(layer.index) or "name" in origin.keys:  # as written, or made
                entry["name"] = full
            else:
                del entry["name"]  # the default: a flat spec stays exactly as written
            self.flat.append(layer)
            self.names.add(full)
            pending.append((layer, refs, previous))
            out = full
        if isinstance(name, str):
            scope.local[name] = out
        return out

    def _repeated(self, entry, origin, scope, previous, name, repeat, pending) -> str | None:
        """`repeat: N` with a name: a Sequential of N copies named name.0 .. name.N-1."""
        full = scope.prefix + name
        self.modules[full] = SEQUENTIAL
        refs = entry.pop("inputs", None)
        made = previous if refs is None else self._resolve_inputs(refs, scope, origin)
        inner = _Scope(f"{full}.", made, scope.params, scope.note, scope.stack)
        for k in range(repeat):
            note = f"in {full}.{k} (copy {k + 1} of repeat: {repeat})"
            copy_origin = self._copy_origin(origin, note if repeat > 1 else scope.note)
            made = self._one({**entry, "name": str(k)}, copy_origin, inner, made, pending)
        scope.local[name] = made or full
        return made

    def _nested(self, entry, origin, scope, full, input_ref) -> str | None:
        kind = entry["type"]
        self.modules[full] = kind
        if kind == SEQUENTIAL:
            layers, outputs = entry.get("layers"), entry.get("outputs")
            extra = sorted(set(entry) - {"type", "name", "layers", "outputs"})
            for key in extra:
                self.collector.error(
                    origin.path(key),
                    "unknown-arg",
                    f"Sequential takes `layers` and `outputs`, received `{key}`",
                    did_you_mean(key, ["layers", "outputs"]),
                )
            if not self._is_layer_list(layers, origin.path("layers"), "Sequential"):
                return None
            if outputs is not None and not one_name(outputs):
                self.collector.error(
                    origin.path("outputs"),
                    "bad-outputs",
                    "Sequential: outputs names the one layer whose value it returns",
                    "write outputs: [name], or leave it out for the last layer",
                )
                outputs = None
            inner = _Scope(f"{full}.", input_ref, scope.params, scope.note, scope.stack)
            out = None if outputs is None else (outputs, origin.path("outputs"))
            return self.list(layers, origin.path("layers"), inner, out)
        block = self.blocks[kind]
        if kind in scope.stack:
            cycle = " -> ".join((*scope.stack[scope.stack.index(kind) :], kind))
            self.collector.error(
                origin.path("type"),
                "block-cycle",
                f"blocks use each other in a cycle: {cycle}",
                "a block cannot contain itself",
            )
            return None
        params = self._arguments(block, entry, origin)
        if params is None or len(self.flat) > MAX_LAYERS:
            return None
        line, col = self.source.position(origin.base)
        note = f"in {full} ({kind}, used at {self.source.name}:{line}:{col})"
        inner = _Scope(f"{full}.", input_ref, params, note, (*scope.stack, kind))
        out = None if block.outputs is None else (block.outputs, (*block.path, "outputs"))
        return self.list(block.layers, (*block.path, "layers"), inner, out)

    # -- block uses ---------------------------------------------------------------------------
    def _arguments(self, block: Block, entry: dict, origin: Origin) -> dict | None:
        """The params of one use (given, else defaults); None after an error."""
        given = {k: v for k, v in entry.items() if k not in ("type", "name")}
        ok = True
        for key in given:
            if key not in block.params:
                known = ", ".join(block.params) or "none"
                self.collector.error(
                    origin.path(key),
                    "unknown-param",
                    f"block {block.name} has no param '{key}'",
                    did_you_mean(str(key), block.params) or f"its params: {known}",
                )
                ok = False
        params: dict[str, tuple[Any, Path]] = {}
        for key, (default, where) in block.params.items():
            if key in given:
                params[key] = (given[key], origin.path(key))
            elif default is REQUIRED:
                self.collector.error(
                    origin.base,
                    "missing-param",
                    f"block {block.name} needs param '{key}'",
                    f"write {key}: VALUE in this use",
                )
                ok = False
            else:
                params[key] = (default, where)
        return params if ok else None

    def _substitute(self, raw: Any, path: Path, scope: _Scope) -> tuple[Any, dict]:
        """`raw` with every `$param` replaced; {relative path: use site} of what was, None
        for one that names no param."""
        substituted: dict[Path, Path | None] = {}

        def walk(value: Any, rel: Path) -> Any:
            if isinstance(value, dict):
                return {k: walk(v, (*rel, k)) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, (*rel, i)) for i, v in enumerate(value)]
            match = _PARAM.match(value) if isinstance(value, str) else None
            if match is None:
                return value
            param = match.group(1)
            if scope.params is None:
                self.collector.error(
                    (*path, *rel),
                    "param-outside-block",
                    f"'{value}' names a block param, but this layer is not in a block",
                    "declare the block under `blocks:` with `params:`, or write a value",
                )
                substituted[rel] = None
                return value
            if param not in scope.params:
                known = ", ".join(scope.params) or "none"
                self.collector.error(
                    (*path, *rel),
                    "unknown-param",
                    f"'{value}' is not a param of this block",
                    did_you_mean(param, scope.params) or f"its params: {known}",
                )
                substituted[rel] = None
                return value
            argument, where = scope.params[param]
            substituted[rel] = where
            return argument

        return walk(raw, ()), substituted

    # -- paths --------------------------------------------------------------------------------
    def _own_path(self, path: Path, scope: _Scope, substituted: dict[Path, Path]) -> Path:
        """Where the entry's diagnostics point: its own path, or inside a block instance a
        virtual one that resolves to the definition, noted with the instance."""
        if scope.note is None and not substituted:
            return path
        self.virtual += 1
        own: Path = ("#", self.virtual)
        self.source.alias(own, path, scope.note)
        for rel, where in substituted.items():
            if where is not None:
                self.source.alias((*own, *rel), where, scope.note)
        return own

    def _copy_origin(self, origin: Origin, note: str | None) -> Origin:
        """The origin of one copy of a repeated entry, with a note of its own."""
        if note is None:
            return origin
        self.virtual += 1
        own: Path = ("#", self.virtual)
        self.source.alias(own, origin.base, note)
        keys = {}
        for key, where in origin.keys.items():
            keys[key] = (*own, "@", key)
            self.source.alias(keys[key], where, note)
        return Origin(own, keys)

    # -- references ---------------------------------------------------------------------------
    def _write_inputs(self, layer: FlatLayer, refs: Any, previous: str, scope: _Scope) -> None:
        """Full names in `inputs`; left out where the flat list's default says the same."""
        entry = layer.entry
        assert entry is not None
        if refs is not None:
            resolved = (
                [self._resolve(ref, scope) for ref in refs] if isinstance(refs, list) else refs
            )
            same = isinstance(refs, list) and all(
                r == (str(w) if isinstance(w, int) and not isinstance(w, bool) else w)
                for r, w in zip(resolved, refs, strict=True)
            )
            entry["inputs"] = refs if same else resolved  # as written where nothing changed
            return
        default = "input" if layer.index == 0 else self.flat[layer.index - 1].name
        if previous != default:
            entry["inputs"] = [previous]

    def _output(self, ref: Any, path: Path, scope: _Scope, last: str) -> str:
        """The full name of what `outputs: [ref]` names inside `scope`; an error (at
        `outputs`) when no layer of it has that name."""
        full = self._resolve(ref, scope)
        if full in self.names or full.rsplit(".", 1)[0] in self.names:
            return full
        here = sorted(scope.local)
        self.collector.error(
            (*path, 0),
            "unknown-output",
            f"unknown output '{ref}'",
            did_you_mean(str(ref), here) or f"known here: {', '.join(here)}",
        )
        return last

    def _resolve_inputs(self, refs: Any, scope: _Scope, origin: Origin) -> str:
        if isinstance(refs, list) and len(refs) == 1:
            return self._resolve(refs[0], scope)
        self.collector.error(
            origin.path("inputs"),
            "arity",
            "a Sequential or block use takes one input",
            "join branches first with Add or Concat",
        )
        return scope.input_ref

    def _resolve(self, ref: Any, scope: _Scope) -> Any:
        """A reference written in `scope` as a full name: `input`, a sibling (its output),
        or a path into a sibling (`b.x`, `b.x.indices`)."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            ref = str(ref)
        if not isinstance(ref, str):
            return ref
        if ref == "input":
            return scope.input_ref
        if ref in scope.local:
            return scope.local[ref]
        return scope.prefix + ref

    def _is_layer_list(self, layers: Any, path: Path, owner: str) -> bool:
        if isinstance(layers, list) and layers:
            return True
        self.collector.error(
            path,
            "bad-layers",
            f"{owner} needs `layers`: a non-empty list of layers",
            "write layers: [Conv2d: {...}, ReLU]",
        )
        return False

    def _repeat(self, value: Any, origin: Origin) -> int | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LAYERS:
            return value
        self.collector.error(
            origin.path("repeat"),
            "bad-repeat",
            f"repeat: expected a whole number from 1 to {MAX_LAYERS:,}, received {value!r}",
            "write repeat: 2 for two copies",
        )
        return None

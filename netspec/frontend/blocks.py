"""Block definitions: the `blocks:` section of a spec (design.md §1.2), read and checked.

blocks:
  BasicBlock:
    params: [planes, stride: 1]   # a bare name is required; `name: value` a default
    layers: [...]
    outputs: [out]                # optional: the one layer whose value the block returns
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from netspec.frontend.diagnostics import Collector, did_you_mean
from netspec.frontend.normalize import GRAPH_KEYS
from netspec.frontend.source import Path
from netspec.layers import LAYER_TYPES

SEQUENTIAL = "Sequential"
USE_KEYS = (*GRAPH_KEYS, "repeat")  # may sit beside a one-key entry, and are no block params
BLOCK_KEYS = ("params", "layers", "outputs")
MAX_LAYERS = 100_000  # a `repeat` or a block used inside itself must not run away
REQUIRED = object()  # a param without a default


@dataclass
class Block:
    """A block definition: its params (default or REQUIRED, and where each is declared)."""

    name: str
    path: Path
    params: dict[str, tuple[Any, Path]]
    layers: list
    outputs: list | None


def one_name(outputs: Any) -> bool:
    return isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], (str, int))


def read_blocks(raw: Any, collector: Collector) -> dict[str, Block]:
    """The `blocks:` section; a broken definition is reported and left out."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        collector.error(
            ("blocks",),
            "bad-blocks",
            "blocks: expected a mapping of block names to definitions",
            "write blocks: {MyBlock: {params: [...], layers: [...]}}",
        )
        return {}
    blocks = {}
    for name, body in raw.items():
        block = _read_block(name, body, ("blocks", name), collector)
        if block is not None:
            blocks[name] = block
    return blocks


def _read_block(name: Any, body: Any, path: Path, collector: Collector) -> Block | None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        collector.error(path, "bad-block", f"a block name is an identifier, received {name!r}")
        return None
    if name in LAYER_TYPES or name == SEQUENTIAL:
        collector.error(
            path,
            "bad-block",
            f"'{name}' is a layer type: a block cannot take its name",
            f"call it e.g. My{name}",
        )
        return None
    if not isinstance(body, dict):
        collector.error(path, "bad-block", f"block {name}: expected a mapping with `layers:`")
        return None
    ok = True
    for key in body:
        if key not in BLOCK_KEYS:
            collector.error(
                (*path, key),
                "unknown-key",
                f"block {name} takes params, layers and outputs, received `{key}`",
                did_you_mean(str(key), BLOCK_KEYS),
            )
            ok = False
    params = _read_params(body.get("params"), (*path, "params"), collector)
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        collector.error(
            (*path, "layers") if "layers" in body else path,
            "bad-layers",
            f"block {name} needs `layers`: a non-empty list of layers",
        )
        ok = False
    outputs = body.get("outputs")
    if outputs is not None and not one_name(outputs):
        collector.error(
            (*path, "outputs"),
            "bad-outputs",
            f"block {name}: outputs names the one layer whose value the block returns",
            "write outputs: [name], or leave it out for the last layer",
        )
        ok = False
    if params is None or not ok:
        return None
    return Block(name, path, params, layers, outputs)


def _read_params(raw: Any, path: Path, collector: Collector) -> dict | None:
    """`[planes, stride: 1]` -> {planes: required, stride: (1, where)}."""
    if raw is None:
        return {}
    hint = "write params: [planes, stride: 1] (a bare name is required)"
    if not isinstance(raw, list):
        collector.error(path, "bad-params", "params: expected a list of names", hint)
        return None
    params: dict[str, tuple[Any, Path]] = {}
    for i, item in enumerate(raw):
        if isinstance(item, dict) and len(item) == 1:
            ((key, default),) = item.items()
            where: Path = (*path, i, key)
        else:
            key, default, where = item, REQUIRED, (*path, i)
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            collector.error((*path, i), "bad-params", f"a param is a name, received {key!r}", hint)
            return None
        if key in params or key in USE_KEYS or key == "type":
            collector.error((*path, i), "bad-params", f"param '{key}' cannot be declared here")
            return None
        params[key] = (default, where)
    return params

"""Layers in the JSON Schema, nesting included (design.md §1.2): Sequential, `blocks:`,
block uses, `$param` and `repeat`.

A schema cannot know the names a document gives its blocks, so the document decides how
strict its layers are read (`if` on the root):
- without `blocks`, `layers` holds `Layer`s: a layer type or Sequential, and any other name
  is one error listing the known ones, exactly as before nesting;
- with `blocks`, `layers` holds `LayerOrBlock`s: any other name is taken for a block use
  (its params untyped; `name`, `inputs`, `repeat` typed);
- a block definition's `layers` hold `BlockLayer`s: as `LayerOrBlock`, and every value may
  also be a `$param` of the block (`kernel_size: $k`, `[$k, 1]`), still typed otherwise.
A Sequential's `layers` are read as the list it sits in.
"""

from __future__ import annotations

import copy

from pydantic import BaseModel

from netspec.frontend.blocks import BLOCK_KEYS, MAX_LAYERS, SEQUENTIAL, USE_KEYS
from netspec.frontend.json_schema_entries import Kind, OtherNames, entry, prepare_kind

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"  # a block's name and a param's (expand.py's rule)
PARAM = r"^\$[A-Za-z_][A-Za-z0-9_]*$"  # `$planes`, as expand.py substitutes it
_IN_BLOCK = "InBlock"
_STRING_RULES = ("pattern", "patternErrorMessage", "enum", "minLength", "maxLength")

SEQUENTIAL_DOC = """A block written in place: its `layers` run in order, named by their index
("0", "1", ...) unless named, under the Sequential's own name (`features.0`). Its value is
that of its last layer, or of the one `outputs` names. Mirrors torch.nn.Sequential."""
BLOCKS_DOC = """Reusable sub-networks, used like layer types: `- BasicBlock: {planes: 64}` or
`{type: BasicBlock, planes: 64}`. A block's name is an identifier and not a layer type's."""
BLOCK_DOC = """A block definition: its `params` (a bare name is required, `name: value` has a
default), its `layers` (as at the top level; `input` is the block's input, `$param` a
param's value) and optionally `outputs`."""
USE_DOC = """A use of a block defined under `blocks:`: its params as arguments, plus `name`,
`inputs` and `repeat`."""
REPEAT_DOC = """Copies of this entry, each fed by the previous one. With a `name`, a
Sequential of the copies named NAME.0 .. NAME.N-1; without one, the copies join this list,
taking the next indices."""


def layer_schemas(schema: dict, classes: tuple[type[BaseModel], ...]) -> None:
    """Add the three layer families, Sequential, blocks and block uses to `schema`."""
    defs, props = schema["$defs"], schema["properties"]
    names = [cls.__name__ for cls in classes]
    graph = _graph_keys(defs[names[0]]["properties"])
    for name in names:
        defs[name]["properties"]["repeat"] = graph["repeat"]
    defs["Sequential"] = _sequential(graph, "Layer")
    defs["SequentialWithBlocks"] = _sequential(graph, "LayerOrBlock")
    for name in names:
        defs[name + _IN_BLOCK] = _with_params(copy.deepcopy(defs[name]))
    defs["Sequential" + _IN_BLOCK] = _with_params(_sequential(graph, "BlockLayer"))
    strict = [prepare_kind(defs, ref, USE_KEYS) for ref in names]
    families: dict[str, tuple[list[Kind], OtherNames | None]] = {
        "Layer": ([*strict, prepare_kind(defs, "Sequential", USE_KEYS)], None),
        "LayerOrBlock": (
            [*strict, prepare_kind(defs, "SequentialWithBlocks", USE_KEYS)],
            _block_uses(defs, graph, ""),
        ),
        "BlockLayer": (
            [prepare_kind(defs, ref + _IN_BLOCK, USE_KEYS) for ref in [*names, SEQUENTIAL]],
            _block_uses(defs, {k: _param_or(v) for k, v in graph.items()}, _IN_BLOCK),
        ),
    }
    for family, (kinds, others) in families.items():
        defs[family] = entry(kinds, "layer", USE_KEYS, others)
    defs["Block"] = _block(graph)
    known = [kind.name for kind in families["Layer"][0]]
    _blocks_choose_the_layers(schema, props, known)


def _blocks_choose_the_layers(schema: dict, props: dict, known: list[str]) -> None:
    """`blocks:` beside `layers:`, and the root's `if`: which family `layers` holds."""
    layers = props.pop("layers")
    layers.pop("items", None)
    rest = {k: props.pop(k) for k in list(props) if k not in ("name", "input")}
    props["blocks"] = {
        "description": BLOCKS_DOC,
        "type": ["object", "null"],
        "propertyNames": {
            "pattern": IDENTIFIER,
            "patternErrorMessage": "A block's name is letters, digits and _, not starting "
            "with a digit.",
            "if": {"enum": known},
            "then": {
                "enum": [],
                "errorMessage": "A block cannot take a layer type's name: call it e.g. MyBlock.",
            },
        },
        "additionalProperties": {"$ref": "#/$defs/Block"},
    }
    props.update({"layers": layers, **rest})
    schema["if"] = {
        "required": ["blocks"],
        "properties": {"blocks": {"type": "object", "minProperties": 1}},
    }
    schema["then"] = {"properties": {"layers": {"items": {"$ref": "#/$defs/LayerOrBlock"}}}}
    schema["else"] = {"properties": {"layers": {"items": {"$ref": "#/$defs/Layer"}}}}


# -- the pieces ---------------------------------------------------------------------------------
def _graph_keys(layer: dict) -> dict:
    """`name`, `inputs` and `repeat` as beside a layer, and the one input of a nested entry."""
    one_input = copy.deepcopy(layer["inputs"])
    one_input.update(minItems=1, maxItems=1)
    one_input["description"] = "The one layer (or `input`) it reads; defaults to the previous."
    return {
        "name": copy.deepcopy(layer["name"]),
        "inputs": copy.deepcopy(layer["inputs"]),
        "repeat": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LAYERS,
            "description": REPEAT_DOC,
        },
        "one_input": one_input,
    }


def _one_output(graph: dict, what: str) -> dict:
    item = copy.deepcopy(graph["inputs"]["items"])
    return {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": 1,
        "items": item,
        "description": f"The one layer whose value the {what} returns; default: its last.",
    }


def _layer_list(family: str, what: str) -> dict:
    return {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": f"#/$defs/{family}"},
        "description": f"The {what}'s layers, in order; `inputs` name these or `input`.",
    }


def _sequential(graph: dict, family: str) -> dict:
    """The `{type: Sequential, ...}` form, whose `layers` hold `family`."""
    graph = copy.deepcopy(graph)
    return {
        "type": "object",
        "description": SEQUENTIAL_DOC,
        "properties": {
            "type": {"const": SEQUENTIAL, "type": "string"},
            "layers": _layer_list(family, "Sequential"),
            "outputs": _one_output(graph, "Sequential"),
            "name": graph["name"],
            "inputs": graph["one_input"],
            "repeat": graph["repeat"],
        },
        "required": ["type", "layers"],
        "additionalProperties": False,
    }


def _block_uses(defs: dict, graph: dict, suffix: str) -> OtherNames:
    """An entry of a name no layer type has: a block use (`BlockUse`, `BlockUseOneKey`)."""
    keys = copy.deepcopy(
        {"name": graph["name"], "inputs": graph["one_input"], "repeat": graph["repeat"]}
    )
    typed, one_key = f"BlockUse{suffix}", f"BlockUse{suffix}OneKey"
    name = {
        "type": "string",
        "pattern": IDENTIFIER,
        "patternErrorMessage": "A layer type, Sequential, or a block defined under `blocks:`.",
    }
    defs[typed] = {
        "type": "object",
        "description": USE_DOC,
        "properties": {"type": {**name, "description": USE_DOC}, **keys},
        "required": ["type"],
    }
    defs[one_key] = {
        "type": "object",
        "properties": keys,
        "additionalProperties": {
            "type": ["object", "null"],
            "description": USE_DOC,
        },
    }
    return OtherNames(name, typed, one_key)


def _block(graph: dict) -> dict:
    name = {
        "type": ["string", "object"],
        "pattern": IDENTIFIER,
        "patternErrorMessage": "A param is a name: letters, digits and _.",
        "if": {"enum": [*USE_KEYS, "type"]},
        "then": {"enum": [], "errorMessage": "name, inputs, repeat and type are no params."},
    }
    param = {
        **copy.deepcopy(name),
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": {**name, "type": "string"},
    }
    properties = {
        "params": {
            "type": ["array", "null"],
            "uniqueItems": True,
            "items": param,
            "description": "The block's params: `[planes, stride: 1]`; a bare name is "
            "required, `name: value` gives a default. A use writes `planes: 64`.",
        },
        "layers": _layer_list("BlockLayer", "block"),
        "outputs": _one_output(graph, "block"),
    }
    assert tuple(properties) == BLOCK_KEYS
    return {
        "type": "object",
        "description": BLOCK_DOC,
        "properties": properties,
        "required": ["layers"],
        "additionalProperties": False,
    }


# -- `$param` --------------------------------------------------------------------------------
def _with_params(model: dict) -> dict:
    """`model` where every argument (not `type`) may also be a `$param` string, list items
    included; its other rules stay."""
    for key, prop in model["properties"].items():
        if key != "type":
            _accept_param(prop)
    return model


def _param_or(node: dict) -> dict:
    """A copy of `node` that also takes a `$param`."""
    node = copy.deepcopy(node)
    _accept_param(node)
    return node


def _accept_param(node: dict) -> None:
    for child in (*node.get("prefixItems", ()), node.get("items")):
        if isinstance(child, dict):
            _accept_param(child)
    if "type" not in node:
        return
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    if "string" not in types:
        node["type"] = [*types, "string"]
        node["pattern"] = PARAM
        node["patternErrorMessage"] = (
            "A value of this argument's type, or a $param of the block ($name)."
        )
        return
    rules = {k: node.pop(k) for k in _STRING_RULES if k in node}
    if node.get("if") == {"type": "string"}:
        del node["if"]
        rules.update(node.pop("then"))
    if rules:
        assert "if" not in node, "one condition per node"
        node["if"] = {"type": "string"}
        node["then"] = {"if": {"pattern": PARAM}, "else": rules}

"""The JSON Schema of the spec format, for editors (yaml-language-server) and other tools.

Pydantic generates the `{type: Name, ...}` form of every entry; this module makes the schema
say what netspec says, in the editor's terms:
- every layer, loss, optimizer and schedule may be written three ways (`Name`,
  `Name: {...}`, `{type: Name, ...}`); an entry dispatches on its name with `if`/`then`, so
  an unknown name is one message that lists every known one, and a known name is checked
  against its own arguments only (json_schema_entries.py);
- layers nest (json_schema_nesting.py): Sequential, `blocks:`, block uses, `$param` inside a
  block and `repeat`; a document without `blocks` reads its layers as strictly as ever;
- the bounds that validators enforce in PyTorch's words (`Bounds(...)` on a field) become
  `minimum`, `not`, ... on every number of the field;
- `int | (int, int)` becomes one node with two types (no `anyOf` to muddle hovers),
  pydantic's generated titles go, and each description is whole paragraphs with a
  `markdownDescription` that ends in the default.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from netspec.frontend import json_schema_entries as entries
from netspec.frontend.json_schema_entries import prepare_kind

SCHEMA_PATH = "schemas/netspec.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "if", "then")
_ARRAY_KEYWORDS = ("minItems", "maxItems")


def spec_schema() -> dict[str, Any]:
    # Here, not at the top: the CLI reads SCHEMA_PATH, and `netspec --help` loads no schema.
    from netspec.frontend.json_schema_nesting import layer_schemas
    from netspec.frontend.spec import Spec
    from netspec.layers import LAYERS
    from netspec.losses import LOSSES
    from netspec.optim import OPTIMIZERS
    from netspec.optim.lr_scheduler import SCHEDULES

    schema = Spec.model_json_schema()
    _merge_alternatives(schema)
    _apply_bounds(schema)
    _walk(schema, _valid_completion)
    defs = schema["$defs"]
    props = schema["properties"]
    train = defs["TrainSpec"]["properties"]
    layer_schemas(schema, LAYERS)
    for key, holder, classes, what in (
        ("loss", props, LOSSES, "loss"),
        ("optimizer", train, OPTIMIZERS, "optimizer"),
        ("lr_schedule", train, SCHEDULES, "schedule"),
    ):
        kinds = [prepare_kind(defs, cls.__name__, ()) for cls in classes]
        defs[what.capitalize()] = entry = entries.entry(kinds, what, ())
        ref = {"$ref": f"#/$defs/{what.capitalize()}"}
        if key == "lr_schedule":  # null: no schedule (in the entry, so completion still offers)
            entry["type"].append("null")
            holder[key] = {**ref, **_docs(holder[key])}
        else:  # `loss: null` is an error (leave the key out): no null, no null default
            holder[key] = {**ref, "description": holder[key]["description"]}
    _dispatch_data(props, defs)
    _describe(schema)
    return {"$schema": _DIALECT, "$id": "netspec.schema.json", **schema}


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"


def _dispatch_data(props: dict, defs: dict) -> None:
    """`data:` keyed on `source`, with the same one-message-for-an-unknown-name shape."""
    data = props["data"]
    union = next(alt for alt in data["anyOf"] if "oneOf" in alt)
    sources = dict(union["discriminator"]["mapping"])  # tag -> "#/$defs/..."
    names = list(sources)
    props["data"] = {
        **_docs(data),
        "type": ["object", "null"],
        "required": ["source"],
        "properties": {
            "source": {
                "enum": names,
                "errorMessage": f"Unknown data source. Known sources: {', '.join(names)}.",
            }
        },
        "allOf": [
            {
                "if": {"properties": {"source": {"const": tag}}, "required": ["source"]},
                "then": {"$ref": ref},
            }
            for tag, ref in sources.items()
        ],
    }
    props["data"]["if"] = {"type": "null"}
    props["data"]["else"] = {"required": props["data"].pop("required")}


def _docs(node: dict) -> dict:
    return {k: node[k] for k in ("description", "default") if k in node}


# -- bounds and alternatives ------------------------------------------------------------------
def _walk(node: Any, visit) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in list(node.values()):
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _apply_bounds(schema: dict) -> None:
    """`Bounds(...)` on a field: its keywords go onto every number / list inside the field."""
    from netspec.types import SCHEMA_BOUNDS

    def visit(node: dict) -> None:
        bounds = node.pop(SCHEMA_BOUNDS, None)
        if bounds:
            _walk(node, lambda sub: _bound(sub, bounds))

    _walk(schema, visit)


def _integer_minimum(node: dict) -> None:
    """`exclusiveMinimum: 0` on an integer reads better as the editor's `minimum of 1`."""
    low = node.get("exclusiveMinimum")
    if node.get("type") == "integer" and isinstance(low, int) and "minimum" not in node:
        node["minimum"] = low + 1
        del node["exclusiveMinimum"]


def _bound(node: dict, bounds: dict) -> None:
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    for key, value in bounds.items():
        if key in _NUMBER_KEYWORDS and {"integer", "number"} & set(types):
            assert key not in ("if", "then") or key not in node, "one condition per node"
            node[key] = value
        elif key in _ARRAY_KEYWORDS and "array" in types:
            node[key] = value


def _valid_completion(node: dict) -> None:
    """Completing a required number inserts 0 unless told otherwise; offer 1 (or the bound)."""
    props = node.get("properties")
    if not isinstance(props, dict):
        return
    for key in node.get("required", []):
        prop = props.get(key)
        if not isinstance(prop, dict) or "default" in prop or "defaultSnippets" in prop:
            continue
        types = prop.get("type")
        types = types if isinstance(types, list) else [types]
        if types[0] in ("integer", "number"):
            prop["defaultSnippets"] = [{"body": max(1, prop.get("minimum", 1))}]


def _merge_alternatives(schema: dict) -> None:
    """`anyOf: [{type: integer}, {type: array, ...}, {type: null}]` -> one node, `type: [...]`.

    The keywords of each alternative concern its own type only (`minimum` numbers,
    `prefixItems` arrays), so they can sit side by side; a string enum becomes an if/then
    on strings. Alternatives that are references or share a type stay as they are.
    """

    def visit(node: dict) -> None:
        alternatives = node.get("anyOf")
        if not alternatives or not all(_simple(a) for a in alternatives):
            return
        types = [a["type"] for a in alternatives]
        if len(set(types)) != len(types):
            return
        merged: dict = {"type": types}
        for alt in alternatives:
            rest = {k: v for k, v in alt.items() if k != "type"}
            if alt["type"] == "string" and "enum" in rest:
                merged["if"] = {"type": "string"}
                merged["then"] = {"enum": rest.pop("enum")}
            merged.update(rest)
        del node["anyOf"]
        node.update(merged)

    _walk(schema, visit)


def _simple(alternative: Any) -> bool:
    return (
        isinstance(alternative, dict)
        and isinstance(alternative.get("type"), str)
        and not {"$ref", "anyOf", "oneOf", "allOf", "const", "if"} & set(alternative)
        and (alternative["type"] == "string" or "enum" not in alternative)
    )


# -- descriptions -------------------------------------------------------------------------------
def _describe(schema: dict) -> None:
    """Whole paragraphs, no generated titles, and markdown that states the default."""

    def visit(node: dict) -> None:
        if isinstance(node.get("title"), str):
            del node["title"]
        if isinstance(node.get("description"), str):
            text = _paragraphs(node["description"])
            node["description"] = text
            markdown = text
            if "default" in node and not (node["default"] is None and "default" in text):
                markdown += f"\n\nDefault: `{_yaml(node['default'])}`."
            node["markdownDescription"] = markdown

    _walk(schema, visit)


def _paragraphs(text: str) -> str:
    """A docstring's hard-wrapped lines joined into paragraphs (blank lines kept)."""
    blocks = textwrap.dedent(text).strip().split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in b.splitlines()) for b in blocks)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)

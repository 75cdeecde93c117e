"""The JSON Schema of the spec format, for editors (yaml-language-server) and other tools.

Pydantic generates the `{type: Name, ...}` form of every entry; this module makes the schema
say what netspec says, in the editor's terms:
- every layer, loss, optimizer and schedule may be written three ways (`Name`,
  `Name: {...}`, `{type: Name, ...}`); an entry dispatches on its name with `if`/`then`, so
  an unknown name is one message that lists every known one, and a known name is checked
  against its own arguments only;
- the bounds that validators enforce in PyTorch's words (`Bounds(...)` on a field) become
  `minimum`, `not`, ... on every number of the field;
- `int | (int, int)` becomes one node with two types (no `anyOf` to muddle hovers),
  pydantic's generated titles go, and each description is whole paragraphs with a
  `markdownDescription` that ends in the default.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from typing import Any

from pydantic import BaseModel

from netspec.types import SCHEMA_BOUNDS

SCHEMA_PATH = "schemas/netspec.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_GRAPH_KEYS = ("name", "inputs")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "if", "then")
_ARRAY_KEYWORDS = ("minItems", "maxItems")


def spec_schema() -> dict[str, Any]:
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
    for key, holder, classes, what, extra in (
        ("layers", None, LAYERS, "layer", _GRAPH_KEYS),
        ("loss", props, LOSSES, "loss", ()),
        ("optimizer", train, OPTIMIZERS, "optimizer", ()),
        ("lr_schedule", train, SCHEDULES, "schedule", ()),
    ):
        defs[what.capitalize()] = entry = _entry(classes, defs, what, extra)
        ref = {"$ref": f"#/$defs/{what.capitalize()}"}
        if holder is None:
            props["layers"]["items"] = ref
        elif key == "lr_schedule":  # null: no schedule (in the entry, so completion still offers)
            entry["type"].append("null")
            holder[key] = {**ref, **_docs(holder[key])}
        else:  # `loss: null` is an error (leave the key out): no null, no null default
            holder[key] = {**ref, "description": holder[key]["description"]}
    _dispatch_data(props, defs)
    _describe(schema)
    return {"$schema": _DIALECT, "$id": "netspec.schema.json", **schema}


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"


# -- entries: `Name`, `Name: {...}` or `{type: Name, ...}` ------------------------------------
def _entry(classes: tuple[type[BaseModel], ...], defs: dict, what: str, extra: tuple) -> dict:
    names = [cls.model_fields["type"].default for cls in classes]
    unknown = {
        "enum": names,
        "errorMessage": f"Unknown {what}. Known {_plural(what)}: {', '.join(names)}.",
    }
    known = {"pattern": "^(" + "|".join(map(re.escape, names)) + ")$"}
    bare, typed, one_key, snippets = [], [], [], []
    for cls, name in zip(classes, names, strict=True):
        model = defs[cls.__name__]
        doc = model.get("description", "")
        required = [r for r in model.get("required", []) if r != "type"]
        model["required"] = ["type", *required]
        model["properties"]["type"].pop("default", None)
        model["properties"]["type"]["description"] = doc
        args = copy.deepcopy(model)
        del args["properties"]["type"]
        args["required"] = required
        if not required:
            del args["required"]
            args["type"] = ["object", "null"]  # `- ReLU:` with nothing after it
        defs[f"{cls.__name__}Args"] = args
        defs[f"{cls.__name__}OneKey"] = {
            "type": "object",
            "properties": {
                name: {"$ref": f"#/$defs/{cls.__name__}Args"},
                **{k: model["properties"][k] for k in extra},
            },
            "required": [name],
            "additionalProperties": False,
        }
        bare.append({"if": {"const": name}, "then": _bare(name, doc, required)})
        typed.append(_when({"properties": {"type": {"const": name}}}, cls.__name__))
        one_key.append(_when({"required": [name]}, f"{cls.__name__}OneKey"))
        snippets.append(_snippet(name, doc, required, flow=what != "layer"))
    return {
        "description": f"{_a(what).capitalize()}: `Name`, `Name: {{arg: value}}` or "
        f"`{{type: Name, arg: value}}`.",
        "type": ["string", "object"],
        "if": {"type": "string"},
        "then": {"if": known, "then": {"allOf": bare}, "else": unknown},
        "else": {  # a mapping; any other value fails `type` above, once
            "if": {"type": "object"},
            "then": {
                "if": {"required": ["type"]},
                "then": {
                    "properties": {"type": {"type": "string", "if": known, "else": unknown}},
                    "allOf": typed,
                },
                "else": {
                    "propertyNames": {"if": {"not": {"enum": list(extra)}}, "then": unknown},
                    "allOf": [*one_key, _needs_a_name(what, extra)],
                },
            },
        },
        "defaultSnippets": snippets,
    }


def _when(condition: dict, definition: str) -> dict:
    return {"if": condition, "then": {"$ref": f"#/$defs/{definition}"}}


def _bare(name: str, doc: str, required: list[str]) -> dict:
    """What `- Name` means: the entry's description, or an error naming its arguments."""
    if not required:
        return {"description": doc}
    args = ", ".join(f"{r}: ..." for r in required)
    return {"enum": [], "errorMessage": f"{name} needs arguments: write {name}: {{{args}}}."}


def _needs_a_name(what: str, extra: tuple) -> dict:
    """A mapping holding only graph keys (or nothing) says which type it is nowhere."""
    return {
        "if": {"propertyNames": {"enum": list(extra)}},
        "then": {
            "enum": [],
            "errorMessage": f"Which {what}? Write `Name`, `Name: {{arg: value}}` or "
            f"`{{type: Name, arg: value}}`.",
        },
    }


def _snippet(name: str, doc: str, required: list[str], flow: bool) -> dict:
    """Completion: the bare name, or the one-key form with the required arguments (in braces
    where it is a mapping's value: `lr_schedule: {StepLR: {step_size: 1}}`)."""
    first = doc.split("\n\n")[0].replace("\n", " ")
    if not required:
        return {"label": name, "description": first, "body": name}
    args = ", ".join(f"{r}: ${{{i}}}" for i, r in enumerate(required, 1))
    text = f"{name}: {{{args}}}"
    return {"label": name, "description": first, "bodyText": f"{{{text}}}" if flow else text}


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


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


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

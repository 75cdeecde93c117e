"""Entries written three ways (`Name`, `Name: {...}`, `{type: Name, ...}`), in the JSON Schema.

An entry dispatches on its name with `if`/`then`, so that a known name is checked against
its own arguments only, and an unknown one is either one message listing every known name
or, where the document may define names of its own (blocks), a use of one of those.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass


@dataclass
class Kind:
    """One known name and the definition of its `{type: Name, ...}` form."""

    name: str  # as written: Conv2d
    ref: str  # the definition: Conv2d, Conv2dInBlock
    doc: str
    required: list[str]


@dataclass
class OtherNames:
    """What an entry of an unknown name is where the document defines names of its own:
    the schema of the name itself, and the definitions of the typed and one-key forms."""

    name: dict
    typed: str
    one_key: str


def prepare_kind(defs: dict, ref: str, extra: tuple) -> Kind:
    """Complete the typed model `defs[ref]` and add `{ref}Args` (what follows `Name:`) and
    `{ref}OneKey` (`{Name: {...}}` with `extra` keys beside it)."""
    model = defs[ref]
    name = model["properties"]["type"]["const"]
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
    defs[f"{ref}Args"] = args
    defs[f"{ref}OneKey"] = {
        "type": "object",
        "properties": {
            name: {"$ref": f"#/$defs/{ref}Args"},
            **{k: model["properties"][k] for k in extra},
        },
        "required": [name],
        "additionalProperties": False,
    }
    return Kind(name, ref, doc, required)


def entry(kinds: list[Kind], what: str, extra: tuple, others: OtherNames | None = None) -> dict:
    """The schema of one entry; `others`: what an unknown name is (None: an error)."""
    names = [kind.name for kind in kinds]
    unknown = {
        "enum": names,
        "errorMessage": f"Unknown {what}. Known {_plural(what)}: {', '.join(names)}.",
    }
    other = unknown if others is None else others.name
    known = {"pattern": "^(" + "|".join(map(re.escape, names)) + ")$"}
    bare = [{"if": {"const": k.name}, "then": _bare(k.name, k.doc, k.required)} for k in kinds]
    typed = [_when({"properties": {"type": {"const": k.name}}}, k.ref) for k in kinds]
    one_key = [_when({"required": [k.name]}, f"{k.ref}OneKey") for k in kinds]
    one_key.append(_needs_a_name(what, extra))
    if others is not None:
        typed.append(_when({"properties": {"type": {"not": {"enum": names}}}}, others.typed))
        one_key.append(_when({"propertyNames": {"not": {"enum": names}}}, others.one_key))
    return {
        "description": f"{_a(what).capitalize()}: `Name`, `Name: {{arg: value}}` or "
        f"`{{type: Name, arg: value}}`.",
        "type": ["string", "object"],
        "if": {"type": "string"},
        "then": {"if": known, "then": {"allOf": bare}, "else": other},
        "else": {  # a mapping; any other value fails `type` above, once
            "if": {"type": "object"},
            "then": {
                "if": {"required": ["type"]},
                "then": {
                    "properties": {"type": {"type": "string", "if": known, "else": other}},
                    "allOf": typed,
                },
                "else": {
                    "propertyNames": {"if": {"not": {"enum": list(extra)}}, "then": other},
                    "allOf": one_key,
                },
            },
        },
        "defaultSnippets": [
            _snippet(k.name, k.doc, k.required, flow=what != "layer") for k in kinds
        ],
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
    args = ", ".join(
        f"{r}: [${{{i}:ReLU}}]" if r == "layers" else f"{r}: ${{{i}}}"
        for i, r in enumerate(required, 1)
    )
    text = f"{name}: {{{args}}}"
    return {"label": name, "description": first, "bodyText": f"{{{text}}}" if flow else text}


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"

"""The JSON Schema of the spec format, for editors (yaml-language-server) and other tools.

Pydantic generates the `{type: Name, ...}` form of every entry; this module adds the other
two equal forms (`Name` and `Name: {...}`) wherever a layer, loss, optimizer or schedule
may be written. Descriptions come from the models' docstrings.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel

SCHEMA_PATH = "schemas/netspec.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict[str, Any]:
    from netspec.layers import LAYERS
    from netspec.losses import LOSSES
    from netspec.optim import OPTIMIZERS
    from netspec.schedule import SCHEDULES
    from netspec.spec import Spec

    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    props = schema["properties"]
    props["layers"]["items"] = _entry_forms(LAYERS, defs, "layer")
    props["loss"] = _nullable(_entry_forms(LOSSES, defs, "loss"), props["loss"])
    train = defs["TrainSpec"]["properties"]
    train["optimizer"] = {
        **_entry_forms(OPTIMIZERS, defs, "optimizer"),
        "description": train["optimizer"].get("description", ""),
    }
    train["lr_schedule"] = _nullable(
        _entry_forms(SCHEDULES, defs, "schedule"), train["lr_schedule"]
    )
    return {"$schema": _DIALECT, "$id": "netspec.schema.json", "title": "netspec spec", **schema}


def _nullable(forms: dict, original: dict) -> dict:
    return {
        "anyOf": [forms, {"type": "null"}],
        "default": None,
        "description": original.get("description", ""),
    }


def _entry_forms(classes: tuple[type[BaseModel], ...], defs: dict, what: str) -> dict:
    """`Name` | `Name: {args}` | `{type: Name, args}` for each class."""
    bare: list[str] = []
    forms: list[dict] = []
    for cls in classes:
        name = cls.model_fields["type"].default
        model = defs[cls.__name__]
        model.setdefault("required", [])
        if "type" not in model["required"]:
            model["required"].insert(0, "type")
        args = copy.deepcopy(model)
        del args["properties"]["type"]
        args["required"] = [r for r in args["required"] if r != "type"]
        if not args["required"]:
            del args["required"]
            bare.append(name)
        defs[f"{cls.__name__}Args"] = args
        args_ref: dict = {"$ref": f"#/$defs/{cls.__name__}Args"}
        if bare[-1:] == [name]:  # `- ReLU:` with nothing after it is allowed too
            args_ref = {"anyOf": [args_ref, {"type": "null"}]}
        one_key = {
            "type": "object",
            "description": model.get("description", ""),
            "properties": {name: args_ref},
            "required": [name],
            "additionalProperties": False,
        }
        if what == "layer":  # graph keys may sit beside the one-key form
            for key in ("name", "inputs"):
                one_key["properties"][key] = model["properties"][key]
        forms += [{"$ref": f"#/$defs/{cls.__name__}"}, one_key]
    if bare:
        forms.insert(0, {"enum": bare, "description": f"a {what} with default arguments"})
    return {"anyOf": forms}


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"

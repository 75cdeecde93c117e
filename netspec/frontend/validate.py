"""Pydantic validation errors -> located diagnostics in the user's words.

Pydantic reports a location inside the *normalised* data (with union branch labels mixed
in); this module walks that location through the data to find the real path, maps it back
to where the user wrote it (`Origin`), and merges the per-branch errors of a union
(`int | (int, int)`) into one message: "expected an int or a list, received 'abc'".
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ValidationError

from netspec.errors import ArgError, ArgErrors
from netspec.frontend.diagnostics import Collector, did_you_mean
from netspec.frontend.normalize import Origin
from netspec.frontend.source import Path

_EXPECTED = {
    "int_type": "an int",
    "int_parsing": "an int",
    "int_from_float": "an int",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}


def yaml_repr(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (int, float)):
        return repr(value)
    return str(value)  # dates and other YAML scalars, as written


def report_validation_error(
    error: ValidationError,
    data: Any,
    prefix: Path,
    origins: dict[Path, Origin],
    collector: Collector,
    model: type[BaseModel] | None = None,
    kinds: dict[str, type[BaseModel]] | None = None,
) -> None:
    """Turn each problem in `error` into one diagnostic.

    `data` is what was validated, found at `prefix` in the normalised spec; `origins` maps
    normalised paths of normalised entries to where their keys were written.
    """
    groups: dict[Path, list[dict]] = defaultdict(list)
    for item in _each_arg_error(error.errors(include_url=False)):
        keeps_key = item["type"] in ("missing", "extra_forbidden")
        real = _real_path(data, tuple(item["loc"]), keeps_key)
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ArgError) and ctx_error.field:
            real = (*real, ctx_error.field)
        if item["type"] == "union_tag_invalid":  # point at `source:` itself
            real = (*real, item["ctx"]["discriminator"].strip("'"))
        groups[real].append(item)
    for real, items in _deepest_branches(groups).items():
        path = _source_path((*prefix, *real), origins)
        code, message, hint = _describe(items, real, data, model, kinds or {})
        collector.error(path, code, message, hint)


def _deepest_branches(groups: dict[Path, list[dict]]) -> dict[Path, list[dict]]:
    """Drop a union branch's plain type mismatch at a path when another branch reached inside
    the value: `dilation: [1, 2**63]` is about item 1 (the pair branch), not "expected an int"."""
    return {
        real: items
        for real, items in groups.items()
        if not (
            all(i["type"] in _EXPECTED for i in items)
            and any(len(other) > len(real) and other[: len(real)] == real for other in groups)
        )
    }


def _each_arg_error(items: list[dict]) -> list[dict]:
    """A model validator that found several broken rules (ArgErrors): one item for each."""
    flat = []
    for item in items:
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ArgErrors):
            flat.extend({**item, "ctx": {**item["ctx"], "error": e}} for e in ctx_error.errors)
        else:
            flat.append(item)
    return flat


def _real_path(data: Any, loc: tuple, keeps_key: bool) -> Path:
    """Walk `loc` through `data`, dropping union branch labels that are not real keys.

    A key that is not in the data survives only as the last element of a missing or an
    unknown argument (`keeps_key`): still a real place to point at.
    """
    real: list = []
    current = data
    for i, part in enumerate(loc):
        if _contains(current, part):
            current = current[part]
            real.append(part)
        elif keeps_key and i == len(loc) - 1 and isinstance(current, dict):
            real.append(part)
    return tuple(real)


def _contains(container: Any, part: Any) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _source_path(path: Path, origins: dict[Path, Origin]) -> Path:
    for cut in range(len(path), -1, -1):
        origin = origins.get(path[:cut])
        if origin is not None:
            rest = path[cut:]
            if not rest:
                return origin.base
            return (*origin.path(str(rest[0])), *rest[1:])
    return path


def _subject(real: Path) -> str:
    """`padding`, or `inputs[0]` for a list item: the argument in the user's terms."""
    if len(real) >= 2 and isinstance(real[-1], int):
        return f"{real[-2]}[{real[-1]}]"
    return str(real[-1])


def _describe(
    items: list[dict], real: Path, data: Any, model: Any, kinds: dict[str, Any]
) -> tuple[str, str, str | None]:
    field = str(real[-1]) if real else None
    types = {item["type"] for item in items}
    first = items[0]
    positions = [
        i["loc"][-1] for i in items if i["type"] == "missing" and isinstance(i["loc"][-1], int)
    ]
    if positions and isinstance(_lookup(data, real), list):  # a tuple given too few items
        value = _lookup(data, real)
        wanted = max(positions) + 1
        message = f"{_subject(real)} must have {wanted} items, received {yaml_repr(value)}"
        return "invalid-arg", message, None
    if "missing" in types:
        owner = _owner_name(data, real)
        return "missing-arg", f"{owner}needs '{field}'", None
    if "extra_forbidden" in types:
        owner = _owner_name(data, real)
        choices = _allowed_keys(data, real, model, kinds)
        return (
            "unknown-arg",
            f"unknown argument '{field}'" + (f" for {owner.strip()}" if owner else ""),
            did_you_mean(str(field), choices)
            or (f"allowed: {', '.join(choices)}" if choices else None),
        )
    if first["type"] == "union_tag_invalid":  # an unknown data `source`
        tag, expected = first["ctx"]["tag"], first["ctx"]["expected_tags"]
        choices = [t.strip(" '") for t in expected.split(",")]
        key = first["ctx"]["discriminator"].strip("'")
        return (
            "invalid-arg",
            f"unknown {key} '{tag}', expected one of {expected}",
            did_you_mean(str(tag), choices),
        )
    length = next((i for i in items if i["type"] in ("too_short", "too_long")), None)
    if length is not None:  # of a list, or of a tuple (a union's tuple branch)
        short = length["type"] == "too_short"
        limit = length["ctx"]["min_length" if short else "max_length"]
        bound = "at least" if short else "at most"
        noun = "item" if limit == 1 else "items"
        return (
            "invalid-arg",
            f"{_subject(real)} must have {bound} {limit} {noun}, "
            f"received {yaml_repr(length['input'])}",
            None,
        )
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ArgError):
        return "invalid-arg", ctx_error.message, ctx_error.hint
    constraint = [i for i in items if i["type"] not in _EXPECTED and i["type"] != "literal_error"]
    if constraint:
        item = constraint[0]
        message = item["msg"].replace("Value error, ", "").replace("Input should be", "must be")
        if item["type"] == "value_error":
            return "invalid-arg", message, None
        subject = f"{_subject(real)} " if real else ""
        return "invalid-arg", f"{subject}{message}, received {yaml_repr(item['input'])}", None
    expected = []
    for item in items:
        if item["type"] == "literal_error":
            expected.append("one of " + item["ctx"]["expected"].replace(" or ", ", "))
        else:
            expected.append(_EXPECTED[item["type"]])
    expected = list(dict.fromkeys(expected))
    subject = f"{_subject(real)}: " if real else ""
    return (
        "type",
        f"{subject}expected {' or '.join(expected)}, received {yaml_repr(first['input'])}",
        None,
    )


def _lookup(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _owner_name(data: Any, real: Path) -> str:
    owner = _lookup(data, real[:-1])
    if isinstance(owner, dict) and isinstance(owner.get("type"), str):
        return f"{owner['type']} "
    return ""


def _allowed_keys(data: Any, real: Path, model: Any, kinds: dict[str, Any]) -> list[str]:
    owner = _lookup(data, real[:-1])
    cls = None
    if isinstance(owner, dict):
        type_name = owner.get("type")
        cls = kinds.get(type_name) if isinstance(type_name, str) else None
        cls = cls or _find_model(model, real[:-1])
    if cls is None:
        return []
    return [k for k in cls.model_fields if k != "type"]


def _find_model(model: Any, path: Path) -> Any:
    """The pydantic model class that validates the mapping at `path` (best effort)."""
    current = model
    for part in path:
        if isinstance(part, int) or current is None:
            continue
        info = getattr(current, "model_fields", {}).get(part)
        current = _model_in(info.annotation) if info else None
    return current


def _model_in(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

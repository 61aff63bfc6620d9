"""How a record looks: JSON:API resources flattened into rows, and a fast check of rows against a schema."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tap_klaviyo.times import parse_or_none, rfc3339

Resource = dict[str, Any]

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def flatten(resource: Resource) -> dict[str, Any]:
    """A resource as a flat record: `id`, the attributes at the top level, each to-one relationship as
    `<name>_id`."""
    record = {"id": resource.get("id"), **(resource.get("attributes") or {})}
    for name, relationship in (resource.get("relationships") or {}).items():
        data = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(data, dict):
            record[f"{name.replace('-', '_')}_id"] = data.get("id")
    return record


def related_resources(
    resource: Resource, relationship: str, included: dict[tuple[Any, Any], Resource]
) -> tuple[list[Resource], list[dict[str, Any]]]:
    """The resources a document's `included` (indexed by type and id) holds for one of `resource`'s relationships,
    in the order it lists them, and the references it lists that `included` lacks."""
    data = ((resource.get("relationships") or {}).get(relationship) or {}).get("data")
    found, missing = [], []
    for ref in data if isinstance(data, list) else [data] if isinstance(data, dict) else []:
        related = included.get((ref.get("type"), ref.get("id")))
        if related is None:
            missing.append(ref)
        else:
            found.append(related)
    return found, missing


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path into nested objects (None where one is missing)."""
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


Check = Callable[[Any], "str | None"]
Rewrite = Callable[[dict[str, Any]], None]


def compile_times(schema: dict[str, Any]) -> Rewrite:
    """A function that rewrites, in place, every value of a record that the schema declares `format: date-time`
    into RFC 3339 (Klaviyo writes some with a space instead of the "T"): only those fields are visited."""
    paths = _datetime_fields(schema)

    def rewrite(value: Any, fields: _Fields) -> None:
        if isinstance(value, list):
            for item in value:
                rewrite(item, fields)
            return
        if not isinstance(value, dict):
            return
        for name, sub in fields.items():
            found = value.get(name)
            if found is None:
                continue
            if sub is None:
                if found.__class__ is str:
                    if found[10:11] != "T":
                        value[name] = rfc3339(found)
                elif isinstance(found, list):
                    found[:] = [rfc3339(item) if isinstance(item, str) else item for item in found]
            else:
                rewrite(found, sub)

    def rewrite_record(record: dict[str, Any]) -> None:
        rewrite(record, paths)

    return rewrite_record


# The date-time fields under an object (None: the field itself holds the date-time).
_Fields = dict[str, "_Fields | None"]


def _datetime_fields(schema: dict[str, Any]) -> _Fields:
    fields: _Fields = {}
    for name, sub in schema.get("properties", {}).items():
        node = sub.get("items", sub) if isinstance(sub, dict) else {}
        if node.get("format") == "date-time":
            fields[name] = None
        elif nested := _datetime_fields(node):
            fields[name] = nested
    return fields


def compile_schema(schema: dict[str, Any], path: str = "") -> Check:
    """A function that names the first way a value breaks `schema` (types, date-time format), or None.

    Much cheaper than a full JSON Schema validator, so it can look at every record of a large sync: an object's
    fields are checked in one loop, and only fields with nested properties or items recurse.
    """
    own = _scalar_check(schema, path.rstrip(".") or "record")
    fields = [
        (name, compile_schema(sub, f"{path}{name}.") if _nested(sub) else _scalar_check(sub, f"{path}{name}"))
        for name, sub in schema.get("properties", {}).items()
    ]
    items = compile_schema(schema["items"], f"{path}[].") if "items" in schema else None
    if not fields and items is None:
        return own

    def check(value: Any) -> str | None:
        if problem := own(value):
            return problem
        if fields and isinstance(value, dict):
            for name, check_field in fields:
                if name in value and (problem := check_field(value[name])):
                    return problem
        if items and isinstance(value, (list, tuple)):
            for item in value:
                if problem := items(item):
                    return problem
        return None

    return check


def _nested(schema: dict[str, Any]) -> bool:
    return bool(schema.get("properties")) or "items" in schema


def _scalar_check(schema: dict[str, Any], field: str) -> Check:
    """The check of a field without nested properties: its type and date-time format only."""
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    allowed = tuple(t for name in names for t in JSON_TYPES.get(name, ()))
    bool_ok = "boolean" in names
    is_datetime = schema.get("format") == "date-time"

    def check(value: Any) -> str | None:
        kind = value.__class__
        if allowed and (not issubclass(kind, allowed) or (kind is bool and not bool_ok)):
            return f"field `{field}` should be {' or '.join(names)}, not {kind.__name__}"
        if is_datetime and value.__class__ is str and parse_or_none(value) is None:
            # Never the value: records of people hold personal data.
            return f"field `{field}` is not a date-time"
        return None

    return check

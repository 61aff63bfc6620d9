"""How a record looks: JSON:API resources flattened into rows, and a fast check of rows against a schema."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

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
    record = {"id": resource["id"], **(resource.get("attributes") or {})}
    for name, relationship in (resource.get("relationships") or {}).items():
        data = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(data, dict):
            record[f"{name.replace('-', '_')}_id"] = data.get("id")
    return record


def parse_datetime(value: str) -> datetime.datetime:
    """An ISO 8601 date-time (or date) as an aware datetime; naive values are taken as UTC."""
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


Check = Callable[[Any], "str | None"]


def compile_schema(schema: dict[str, Any], path: str = "") -> Check:
    """A function that names the first way a value breaks `schema` (types, date-time format), or None.

    Much cheaper than a full JSON Schema validator, so it can look at every record of a large sync.
    """
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    allowed = tuple(t for name in names for t in JSON_TYPES.get(name, ()))
    is_datetime = schema.get("format") == "date-time"
    properties = {name: compile_schema(sub, f"{path}{name}.") for name, sub in schema.get("properties", {}).items()}
    items = compile_schema(schema["items"], f"{path}[].") if "items" in schema else None
    field = path.rstrip(".") or "record"

    def check(value: Any) -> str | None:
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            return f"field `{field}` should be {' or '.join(names)}, not {type(value).__name__}"
        if is_datetime and isinstance(value, str):
            try:
                parse_datetime(value)
            except ValueError:
                return f"field `{field}` is not a date-time: {value[:40]!r}"
        if properties and isinstance(value, dict):
            for name, check_property in properties.items():
                if name in value and (problem := check_property(value[name])):
                    return problem
        if items and isinstance(value, (list, tuple)):
            for item in value:
                if problem := items(item):
                    return problem
        return None

    return check

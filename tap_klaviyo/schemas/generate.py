"""Regenerate the stream schemas in this folder from Klaviyo's OpenAPI spec.

    python -m tap_klaviyo.schemas.generate [path/to/stable.json]

Records are flat (see `tap_klaviyo.records`): `id`, the resource's attributes at the top level, and each
to-one relationship as `<name>_id`. OpenAPI 3.0 is turned into the JSON Schema Singer expects: `nullable`
becomes a `null` type, an attribute the spec does not mark required may be missing and so is nullable too,
`oneOf` branches that are all objects merge into one object, and enums are dropped so a value Klaviyo adds
later does not break a sync.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tap_klaviyo.streams.table import STREAMS

HERE = Path(__file__).parent
DEFAULT_SPEC = HERE.parents[1] / "openapi" / "klaviyo-stable-trimmed.json"
# Deeper than this, nested objects stay open: their inner shape is Klaviyo's business, not a column's.
MAX_DEPTH = 4

Schema = dict[str, Any]
# Fields whose spec description promises ISO 8601 but whose schema omits `format: date-time`: without it, typed
# targets load them as text.
DATE_TIME_BY_DESCRIPTION = {"metrics": ("created", "updated")}


class Converter:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def resolve(self, node: Schema) -> Schema:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def item_schema(self, operation_path: str) -> Schema:
        """The schema of one resource in a list endpoint's `data`."""
        op = self.spec["paths"][operation_path]["get"]
        doc = op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"]
        return self.resolve(self.resolve(self.resolve(doc)["properties"]["data"])["items"])

    def convert(self, node: Schema, *, nullable: bool, depth: int) -> Schema:
        node = self.resolve(node)
        nullable = nullable or bool(node.get("nullable"))
        out: Schema
        if "oneOf" in node or "anyOf" in node:
            out = self.merge_branches(node.get("oneOf") or node["anyOf"], depth)
        elif node.get("type") == "object" or "properties" in node:
            out = {"type": "object"}
            if depth < MAX_DEPTH and node.get("properties"):
                required = set(node.get("required", []))
                out["properties"] = {
                    name: self.convert(prop, nullable=name not in required, depth=depth + 1)
                    for name, prop in node["properties"].items()
                }
        elif node.get("type") == "array":
            out = {"type": "array"}
            if depth < MAX_DEPTH and "items" in node:
                out["items"] = self.convert(node["items"], nullable=False, depth=depth + 1)
        elif "type" in node:
            out = {"type": node["type"]}
            if node.get("format") in ("date-time", "date"):
                out["format"] = node["format"]
        else:
            out = {}
        if "description" in node and depth <= 1:
            out["description"] = node["description"]
        if nullable and "type" in out:
            out["type"] = [out["type"], "null"]
        return out

    def merge_branches(self, branches: list[Schema], depth: int) -> Schema:
        converted = [self.convert(b, nullable=False, depth=depth) for b in branches]
        if not all(b.get("type") == "object" for b in converted):
            return {}
        properties: dict[str, Schema] = {}
        for branch in converted:
            for name, prop in branch.get("properties", {}).items():
                # A property only some branches have may be missing, hence nullable.
                properties.setdefault(name, _nullable(prop))
        out: Schema = {"type": "object"}
        if properties:
            out["properties"] = properties
        return out

    def record_schema(self, *operation_paths: str, extra: dict[str, Schema] | None = None) -> Schema:
        """The flat record schema for one or more endpoints (several endpoints: union, all nullable)."""
        properties: dict[str, Schema] = {"id": {"type": "string"}}
        properties.update(extra or {})
        several = len(operation_paths) > 1
        for path in operation_paths:
            item = self.item_schema(path)
            attributes = self.resolve(item["properties"]["attributes"])
            required = set(attributes.get("required", []))
            for name, prop in attributes["properties"].items():
                converted = self.convert(prop, nullable=several or name not in required, depth=1)
                properties.setdefault(name, converted)
            for name, rel in self.resolve(item["properties"].get("relationships", {})).get("properties", {}).items():
                data = self.resolve(self.resolve(rel)["properties"]["data"])
                if data.get("type") == "object":
                    properties[f"{name.replace('-', '_')}_id"] = {"type": ["string", "null"]}
        return {"type": "object", "properties": properties}


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is None or (isinstance(kind, list) and "null" in kind):
        return schema
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def build(spec: dict[str, Any]) -> dict[str, Schema]:
    """File name -> schema, for every schema file this folder holds: one per stream table row, from the endpoints it
    reads (a row read from several carries their resource `type`); a derived row's columns are its key."""
    c = Converter(spec)
    schemas = {}
    for row in STREAMS:
        paths = [source.endpoint.path for source in row.sources]
        if paths:
            schemas[row.schema] = c.record_schema(
                *paths, extra={"type": {"type": "string"}} if len(paths) > 1 else None
            )
        else:
            schemas[row.schema] = {
                "type": "object",
                "properties": {key: {"type": "string"} for key in row.primary_keys},
            }
    for name, fields in DATE_TIME_BY_DESCRIPTION.items():
        for field in fields:
            assert "ISO 8601" in schemas[name]["properties"][field].get("description", ""), (name, field)
            schemas[name]["properties"][field]["format"] = "date-time"
    return schemas


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    for name, schema in build(spec).items():
        (HERE / f"{name}.json").write_text(render(schema), encoding="utf-8")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()

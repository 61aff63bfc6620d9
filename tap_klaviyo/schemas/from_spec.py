"""The stream schemas, built from Klaviyo's OpenAPI spec (the trimmed copy in this folder) as a run starts.

Records are flat (see `tap_klaviyo.records`): `id`, the resource's attributes at the top level, and each
to-one relationship as `<name>_id`. OpenAPI 3.0 is turned into the JSON Schema Singer expects: `nullable`
becomes a `null` type, an attribute the spec does not mark required may be missing and so is nullable too,
`oneOf` branches that are all objects merge into one object (a property of several branches takes the union of
their schemas, objects merged alike: every channel's message content, every flow action's data), and enums are
dropped so a value Klaviyo adds later does not break a sync. Building them takes a few milliseconds, so no copy
of them is kept beside the spec: a new stream's schema follows from its row.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tap_klaviyo.streams.attributions import AttributionsStream
from tap_klaviyo.streams.base import StreamRow
from tap_klaviyo.streams.derived import SEND, FlowMessagesStream, IncludedStream, LinkStream
from tap_klaviyo.streams.profiles import MembersStream
from tap_klaviyo.streams.reports import ReportStream
from tap_klaviyo.streams.table import STREAMS

HERE = Path(__file__).parent
SPEC = HERE / "klaviyo-stable-trimmed.json"
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
        return self.merge_all_of(self.resolve(self.resolve(doc)["properties"]["data"])["items"])

    def merge_all_of(self, node: Schema) -> Schema:
        """An object schema whose `allOf` parts are merged into one: their properties (objects merged alike, the
        last part's first, as it is the resource the others add fields to) and their required fields."""
        node = self.resolve(node)
        if "allOf" not in node:
            return node
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for part in reversed([self.merge_all_of(part) for part in node["allOf"]]):
            for name, prop in part.get("properties", {}).items():
                prop = self.resolve(prop)
                if name in properties and "properties" in prop and "properties" in properties[name]:
                    prop = self.merge_all_of({"allOf": [prop, properties[name]]})
                properties[name] = prop
            required += part.get("required", [])
        return {"type": "object", "properties": properties, "required": required}

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
            items = self.convert(node["items"], nullable=False, depth=depth + 1) if "items" in node else {}
            # Items that are objects of no declared properties would stop the SDK's type conformance: leave the
            # array's items open instead.
            if depth < MAX_DEPTH and items and (items.get("type") != "object" or "properties" in items):
                out["items"] = items
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
        return functools.reduce(_merge_objects, converted)

    def record_schema(self, *operation_paths: str, extra: dict[str, Schema] | None = None) -> Schema:
        """The flat record schema for one or more endpoints (several endpoints: union, all nullable)."""
        return self.flat_schema([self.item_schema(path) for path in operation_paths], extra)

    def included_schema(self, operation_path: str, relationship: str) -> Schema:
        """The flat record schema of the resources an endpoint's response includes for one of its resources'
        relationships, with the id of the resource they belong to as `<type>_id`."""
        owner, branch = self.included_item(operation_path, relationship)
        return self.flat_schema([branch], {f"{owner.replace('-', '_')}_id": {"type": "string"}})

    def included_item(self, operation_path: str, relationship: str) -> tuple[str, Schema]:
        """The type of an endpoint's resources, and the schema of what its response includes for a relationship."""
        item = self.item_schema(operation_path)
        owner = self.resolve(item["properties"]["type"])["enum"][0]
        related = self.resolve(self.resolve(item["properties"]["relationships"])["properties"][relationship])
        kind = self.resolve(self.resolve(self.resolve(related["properties"]["data"])["items"])["properties"]["type"])
        op = self.spec["paths"][operation_path]["get"]
        doc = self.resolve(op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"])
        branches = self.resolve(doc["properties"]["included"])["items"]["oneOf"]
        (branch,) = [
            b for b in branches if self.resolve(self.resolve(b)["properties"]["type"]).get("enum") == kind["enum"]
        ]
        return owner, self.resolve(branch)

    def message_schema(self, operation_path: str, relationship: str) -> Schema:
        """The flat record schema of the messages the included flow actions send: the id, where it is sent from,
        its channel, and the fields of every send action's message (each channel's, so nullable)."""
        owner, action = self.included_item(operation_path, relationship)
        definition = self.resolve(self.resolve(action["properties"]["attributes"])["properties"]["definition"])
        messages = []
        for branch in map(self.resolve, definition["oneOf"]):
            if self.resolve(branch["properties"]["type"])["enum"][0].startswith(SEND):
                data = self.resolve(branch["properties"]["data"])
                messages.append(self.convert(data["properties"]["message"], nullable=False, depth=0))
        fields = functools.reduce(_merge_objects, messages)["properties"]
        properties = {
            "id": {"type": "string"},
            f"{owner}_id": {"type": "string"},
            f"{relationship.rstrip('s').replace('-', '_')}_id": {"type": "string"},
            "channel": {"type": "string"},
        }
        properties.update({name: _nullable(prop) for name, prop in fields.items() if name != "id"})
        return {"type": "object", "properties": properties}

    def report_schema(self, operation_path: str, columns: list[str]) -> Schema:
        """A report query's rows: its groupings (`columns`: ids, `date` a day), then every statistic its body may ask
        for, each a number (rates as fractions)."""
        body = self.resolve(
            self.spec["paths"][operation_path]["post"]["requestBody"]["content"]["application/vnd.api+json"]["schema"]
        )
        attributes = self.resolve(self.resolve(self.resolve(body["properties"]["data"])["properties"]["attributes"]))
        statistics = attributes["properties"]["statistics"]
        properties: dict[str, Schema] = {
            name: {"type": "string", "format": "date"} if name == "date" else {"type": "string"} for name in columns
        }
        for name in statistics["items"]["enum"]:
            properties[name] = {"type": ["number", "null"]}
        return {"type": "object", "properties": properties}

    def flat_schema(self, items: list[Schema], extra: dict[str, Schema] | None) -> Schema:
        properties: dict[str, Schema] = {"id": {"type": "string"}}
        properties.update(extra or {})
        several = len(items) > 1
        for item in items:
            # An attribution has relationships only.
            attributes = self.resolve(item["properties"].get("attributes", {"properties": {}}))
            required = set(attributes.get("required", []))
            for name, prop in attributes["properties"].items():
                converted = self.convert(prop, nullable=several or name not in required, depth=1)
                properties.setdefault(name, converted)
            for name, rel in self.resolve(item["properties"].get("relationships", {})).get("properties", {}).items():
                data = self.resolve(self.resolve(rel)["properties"]["data"])
                if data.get("type") == "object":
                    properties.setdefault(f"{name.replace('-', '_')}_id", {"type": ["string", "null"]})
        return {"type": "object", "properties": properties}


def _merge_objects(a: Schema, b: Schema) -> Schema:
    """Two object branches as one: every property of either, the union of both schemas where both have it, and
    nullable (a value of another branch may lack it)."""
    pa, pb = a.get("properties", {}), b.get("properties", {})
    properties = {
        name: _nullable(_union(pa[name], pb[name]) if name in pa and name in pb else pa.get(name) or pb[name])
        for name in dict.fromkeys([*pa, *pb])
    }
    return {"type": "object", **({"properties": properties} if properties else {})}


def _union(a: Schema, b: Schema) -> Schema:
    """A schema for values of either: their types together (none where the spec leaves one untyped: any value),
    objects' properties and arrays' items merged alike."""
    out = {k: v for k, v in a.items() if k not in ("type", "properties", "items", "format")}
    if "type" in a and "type" in b:
        both = [*_types(a), *_types(b)]
        kinds = list(dict.fromkeys(t for t in both if t != "null")) + (["null"] if "null" in both else [])
        out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "properties" in a or "properties" in b:
        out["properties"] = _merge_objects(a, b)["properties"]
    if "items" in a and "items" in b:
        out["items"] = _union(a["items"], b["items"])
    elif "items" in a or "items" in b:
        out["items"] = a.get("items") or b["items"]
    if a.get("format") and a.get("format") == b.get("format"):
        out["format"] = a["format"]
    return out


def _types(schema: Schema) -> list[str]:
    kind = schema["type"]
    return list(kind) if isinstance(kind, list) else [kind]


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is None or (isinstance(kind, list) and "null" in kind):
        return schema
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def build(spec: dict[str, Any]) -> dict[str, Schema]:
    """Schema name -> schema, one per stream table row, from the endpoints it
    reads (a row read from several carries their resource `type`), or from what its parent's responses include;
    the columns of a row derived from a field of its parent's records are its key."""
    c = Converter(spec)
    schemas: dict[str, Schema] = {}
    for row in STREAMS:
        paths = list(dict.fromkeys(source.endpoint.path for source in row.sources))
        if issubclass(row.family, ReportStream):
            family = row.family
            columns = [*family.GROUP_BY, *(["date"] if family.INTERVAL else []), "conversion_metric_id"]
            schemas[row.schema] = c.report_schema(paths[0], columns)
        elif row.family is AttributionsStream:
            schemas[row.schema] = c.included_schema(paths[0], row.sources[0].query["include"])
        elif row.family is FlowMessagesStream and row.derived_from:
            schemas[row.schema] = c.message_schema(_parent(row).sources[0].endpoint.path, row.derived_from[1])
        elif paths and row.family is not MembersStream:
            extra = {"type": {"type": "string"}} if len(paths) > 1 else {}
            extra.update({name: {"type": "string"} for source in row.sources for name in source.columns})
            schemas[row.schema] = c.record_schema(*paths, extra=extra)
        elif row.family is MembersStream:
            joined = c.resolve(c.item_schema(paths[0])["properties"]["attributes"])["properties"]["joined_group_at"]
            schemas[row.schema] = {
                "type": "object",
                "properties": {
                    "list_id": {"type": "string"},
                    "profile_id": {"type": "string"},
                    "type": {"type": "string"},
                    "joined_group_at": c.convert(joined, nullable=True, depth=1),
                },
            }
        elif row.family is IncludedStream and row.derived_from:
            schema = c.included_schema(_parent(row).sources[0].endpoint.path, row.derived_from[1])
            schema["properties"].update(_carried(row, schemas))
            for column, path in row.picks.items():
                schema["properties"][column] = _picked(schema, path)
            schemas[row.schema] = schema
        else:
            assert row.family is LinkStream, row.name
            schemas[row.schema] = {
                "type": "object",
                "properties": {**{key: {"type": "string"} for key in row.primary_keys}, **_carried(row, schemas)},
            }
    for name, fields in DATE_TIME_BY_DESCRIPTION.items():
        for field in fields:
            assert "ISO 8601" in schemas[name]["properties"][field].get("description", ""), (name, field)
            schemas[name]["properties"][field]["format"] = "date-time"
    return schemas


def _parent(row: StreamRow) -> StreamRow:
    assert row.derived_from is not None, row.name
    (parent,) = [r for r in STREAMS if r.name == row.derived_from[0]]
    return parent


def _carried(row: StreamRow, schemas: dict[str, Schema]) -> dict[str, Schema]:
    """The schemas of the columns a derived row carries from its parent's records (built before it)."""
    parent = schemas[_parent(row).schema]["properties"]
    return {name: parent[name] for name in row.carries}


def _picked(schema: Schema, path: str) -> Schema:
    """The schema of the value at a dotted path into a record (nullable: any step may be missing)."""
    node = schema
    for name in path.split("."):
        node = node.get("properties", {}).get(name, {})
    return _nullable({k: v for k, v in node.items() if k != "description"})


def stream_schemas(spec_path: Path = SPEC) -> dict[str, Schema]:
    """Each stream table row's schema, by the row's schema name (the spec is read, used and let go)."""
    return build(json.loads(spec_path.read_text(encoding="utf-8")))

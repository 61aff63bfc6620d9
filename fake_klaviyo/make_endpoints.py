"""Extract what the fake Klaviyo server needs from Klaviyo's OpenAPI spec.

This distils the spec once into ``endpoints.json`` (checked in beside this file), which the
server loads at import, so that importing the fake parses no 400 kB of OpenAPI.

    python -m fake_klaviyo.make_endpoints [SPEC] [--out PATH]

SPEC defaults to the trimmed copy of the spec in ``tap_klaviyo/schemas/`` (see ``openapi/trim.py``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from .make_report_endpoints import REPORT_PATHS, report_endpoint

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_SPEC = REPO_ROOT / "tap_klaviyo" / "schemas" / "klaviyo-stable-trimmed.json"
DEFAULT_OUT = HERE / "endpoints.json"

# Short endpoint name -> path. Only the GET collection endpoints the tap reads.
PATHS = {
    "accounts": "/api/accounts",
    "lists": "/api/lists",
    "segments": "/api/segments",
    "campaigns": "/api/campaigns",
    "flows": "/api/flows",
    "metrics": "/api/metrics",
    "events": "/api/events",
    "profiles": "/api/profiles",
    "list_profiles": "/api/lists/{id}/profiles",
    "segment_profiles": "/api/segments/{id}/profiles",
}

# Nested enums the data generator draws from (component schema, property).
COMPONENT_ENUMS = [
    ("ThrottledSendStrategy", "throttle_percentage"),
    ("DynamicTrackingParam", "value"),
    ("RelativeDateOperatorBaseRelativeDateFilter", "operator"),
    ("RelativeDateOperatorBaseRelativeDateFilter", "unit"),
    ("NumericOperatorNumericFilter", "operator"),
    ("StringOperatorStringFilter", "operator"),
    ("StaticDateFilter", "operator"),
    ("EmailMarketingSuppression", "reason"),
    ("PredictiveAnalytics", "ranked_channel_affinity"),
]

Json = dict[str, Any]


class Spec:
    def __init__(self, doc: Json) -> None:
        self.doc = doc
        self.schemas: Json = doc["components"]["schemas"]

    def deref(self, node: Json) -> Json:
        while "$ref" in node:
            node = self.schemas[node["$ref"].rsplit("/", 1)[-1]]
        return node


def _rate(text: str) -> int:
    # "75/s" or "750/m" -> 75 / 750; the window is implied by burst/steady.
    return int(text.split("/", 1)[0])


def _field_rate_limits(description: str) -> Json:
    """Lower limits for requests asking for an additional field, which the description alone gives, e.g.
    "Rate limits when using the `additional-fields[profile]=predictive_analytics` parameter ...: Burst: `10/s`
    Steady: `150/m`" (``x-klaviyo-ratelimit`` holds the endpoint's usual limits only)."""
    found = re.finditer(
        r"`additional-fields\[[\w-]+\]=(\w+)` parameter.*?Burst: `(\d+)/s`.*?Steady: `(\d+)/m`", description, re.S
    )
    return {m.group(1): {"burst": int(m.group(2)), "steady": int(m.group(3))} for m in found}


def _prose_max(description: str) -> int | None:
    # e.g. "Returns a maximum of 200 events per page." (differs from the schema for events)
    m = re.search(r"maximum of (\d+) \w+ per (?:page|request)", description)
    return int(m.group(1)) if m else None


def _item(spec: Spec, node: Json) -> Json:
    """A resource schema, its ``allOf`` parts merged: the member and profile collections add the additional
    fields' attributes (subscriptions, predictive_analytics) in a part of their own."""
    node = spec.deref(node)
    if "allOf" not in node:
        return node
    props: Json = {}
    for part in map(spec.deref, node["allOf"]):
        for name, raw in part.get("properties", {}).items():
            if name == "attributes" and name in props:
                have, more = spec.deref(props[name]), spec.deref(raw)
                raw = {
                    "type": "object",
                    "properties": {**have.get("properties", {}), **more.get("properties", {})},
                    "required": have.get("required", []) + more.get("required", []),
                }
            props[name] = raw
    return {"type": "object", "properties": props}


def _attributes(spec: Spec, item: Json) -> Json:
    if "attributes" not in item["properties"]:
        return {}  # e.g. an attribution: relationships only
    attrs = spec.deref(item["properties"]["attributes"])
    required = set(attrs.get("required", []))
    out: Json = {}
    for name, raw in attrs.get("properties", {}).items():
        # nullable can sit beside a $ref, so read it before dereferencing
        nullable = bool(raw.get("nullable")) or bool(spec.deref(raw).get("nullable"))
        node = spec.deref(raw)
        info: Json = {"nullable": nullable, "required": name in required}
        if "type" in node:
            info["type"] = node["type"]
        if "format" in node:
            info["format"] = node["format"]
        if "enum" in node:
            info["enum"] = node["enum"]
        out[name] = info
    return out


def _relationships(spec: Spec, item: Json) -> Json:
    rel = item["properties"].get("relationships")
    if not rel:
        return {}
    out: Json = {}
    for name, raw in spec.deref(rel).get("properties", {}).items():
        data = spec.deref(spec.deref(raw)["properties"]["data"])
        many = data.get("type") == "array"
        target = spec.deref(data["items"]) if many else data
        out[name] = {"kind": "many" if many else "one", "type": _resource_type(spec, target)}
    return out


def _resource_type(spec: Spec, item: Json) -> str:
    return spec.deref(item["properties"]["type"])["enum"][0]


def _included(spec: Spec, doc: Json) -> Json:
    """The resource types the compound document may include, each with its attributes and relationships."""
    included = doc["properties"].get("included")
    if not included:
        return {}
    items = included["items"]
    out: Json = {}
    for raw in items.get("oneOf", [items]):
        item = spec.deref(raw)
        out[_resource_type(spec, item)] = {
            "attributes": _attributes(spec, item),
            "relationships": _relationships(spec, item),
        }
    return out


def _endpoint(spec: Spec, name: str, path: str) -> Json:
    op = spec.doc["paths"][path]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    query = {k: v for k, v in params.items() if v["in"] == "query"}

    doc = spec.deref(op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"])
    data = spec.deref(doc["properties"]["data"])
    item = _item(spec, data["items"]) if data.get("type") == "array" else data
    rtype = _resource_type(spec, item)

    page_size = None
    if "page[size]" in query:
        s = query["page[size]"]["schema"]
        page_size = {"default": s["default"], "min": s["minimum"], "max": s["maximum"]}

    filt = None
    if "filter" in query:
        filt = {
            "required": bool(query["filter"].get("required")),
            "fields": op.get("x-klaviyo-filters", {}),
        }

    description: str = op.get("description", "")

    return {
        "path": path,
        "operation_id": op["operationId"],
        "resource_type": rtype,
        "scopes": op.get("x-klaviyo-scopes", []),
        "rate_limit": {
            "burst": _rate(op["x-klaviyo-ratelimit"]["burst"]),
            "steady": _rate(op["x-klaviyo-ratelimit"]["steady"]),
        },
        "field_rate_limits": _field_rate_limits(description),
        "revision_header_required": bool(params.get("revision", {}).get("required")),
        "query_params": sorted(query),
        "page_size": page_size,
        "paginated": "page[cursor]" in query,
        "prose_max_page_size": _prose_max(description),
        "sort": query["sort"]["schema"]["enum"] if "sort" in query else None,
        "include": query["include"]["schema"]["items"]["enum"] if "include" in query else None,
        "fields": {
            k[len("fields[") : -1]: v["schema"]["items"]["enum"] for k, v in query.items() if k.startswith("fields[")
        },
        "additional_fields": {
            k[len("additional-fields[") : -1]: v["schema"]["items"]["enum"]
            for k, v in query.items()
            if k.startswith("additional-fields[")
        },
        "filter": filt,
        "attributes": _attributes(spec, item),
        "relationships": _relationships(spec, item),
        "included": _included(spec, doc),
    }


def build(doc: Json) -> Json:
    spec = Spec(doc)
    enums: Json = {}
    for comp, prop in COMPONENT_ENUMS:
        node = spec.deref(spec.schemas[comp]["properties"][prop])
        enums[f"{comp}.{prop}"] = spec.deref(node.get("items", node))["enum"]  # an array's: its items'
    return {
        "source": "Klaviyo OpenAPI stable.json, generated by make_endpoints.py; do not edit",
        "revision": doc["info"]["version"],
        "endpoints": {
            **{name: _endpoint(spec, name, path) for name, path in PATHS.items()},
            **{name: report_endpoint(doc, path) for name, path in REPORT_PATHS.items()},
        },
        "enums": enums,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    doc = json.loads(args.spec.read_text(encoding="utf-8"))
    text = json.dumps(build(doc), indent=1, ensure_ascii=False) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text)} bytes) from revision {doc['info']['version']}")


if __name__ == "__main__":
    main()

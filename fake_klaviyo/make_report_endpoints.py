"""The Reporting API's queries, distilled from the spec for ``endpoints.json`` (see make_endpoints.py).

A report is asked for with a POST whose body names the statistics, the timeframe, the conversion metric and the
grouping. Much of what Klaviyo checks in that body lives in the prose of the spec's descriptions rather than in its
schema (the longest timeframe of each interval, the group-bys that are required and those used when none are
given, which filter operators each attribute takes): it is read from there, so that the fake refuses what the spec
says Klaviyo refuses.
"""

from __future__ import annotations

import re
from typing import Any

Json = dict[str, Any]

# Short endpoint name -> path. The report queries the tap sends.
REPORT_PATHS = {
    "campaign_values": "/api/campaign-values-reports",
    "flow_series": "/api/flow-series-reports",
}


def _deref(schemas: Json, node: Json) -> Json:
    while "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _names(text: str) -> list[str]:
    """ "a, b, c." -> ["a", "b", "c"]."""
    return [part.strip() for part in text.strip().rstrip(".").split(",") if part.strip()]


def _sentence(pattern: str, description: str) -> str:
    found = re.search(pattern, description)
    if found is None:
        raise ValueError(f"the spec no longer says {pattern!r} in: {description[:200]}")
    return found.group(1)


def _operators(kind: str, description: str) -> tuple[list[str], list[str]]:
    """The attributes of a kind ("Scalar", "List") a filter may name, and the operators they take."""
    found = re.search(rf"{kind} attributes \(([^)]*)\): Supported operators: ([^.\n]*)", description)
    if found is None:
        raise ValueError(f"the spec no longer names the {kind.lower()} attributes of a report filter")
    return _names(found.group(1)), _names(found.group(2))


def _filter_rules(description: str) -> Json:
    scalar, scalar_operators = _operators("Scalar", description)
    listed, list_operators = _operators("List", description)
    return {
        "scalar": scalar,
        "scalar_operators": scalar_operators,
        "list": listed,
        "list_operators": list_operators,
        "one_per_attribute": "Only one filter can be used per attribute" in description,
        "only_and": "Only AND can be used" in description,
        "max_list_items": int(_sentence(r"Max of (\d+) items per list filter", description)),
        "send_channels": _names(_sentence(r"When filtering on send_channel, allowed values are ([^\n]*)", description)),
    }


def _interval_days(description: str) -> Json:
    """The longest timeframe of each interval the description names, in days ("52 weeks": 364)."""
    out: Json = {}
    for interval, count, unit in re.findall(
        r"If (\w+) is used, the timeframe cannot be longer than (\d+) (day|week)s", description
    ):
        out[interval] = int(count) * (7 if unit == "week" else 1)
    return out


def report_endpoint(doc: Json, path: str) -> Json:
    """An entry of ``endpoints.json`` for a report query: the keys GET endpoints have (so that routing, scopes and
    rate limits treat it alike) and ``method``, the daily quota and ``report``, the rules of its body."""
    schemas: Json = doc["components"]["schemas"]
    op = doc["paths"][path]["post"]
    params = {p["name"]: p for p in op["parameters"]}
    query = {k: v for k, v in params.items() if v["in"] == "query"}
    body = _deref(schemas, op["requestBody"]["content"]["application/vnd.api+json"]["schema"])
    resource = _deref(schemas, body["properties"]["data"])
    rtype = _deref(schemas, resource["properties"]["type"])["enum"][0]
    attributes = _deref(schemas, resource["properties"]["attributes"])
    props = attributes["properties"]
    timeframe = props["timeframe"]
    preset, custom = (_deref(schemas, branch) for branch in timeframe["oneOf"])
    group_by = props["group_by"]
    response = _deref(schemas, op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"])
    data = _deref(schemas, response["properties"]["data"])
    result_attributes = _deref(schemas, data["properties"]["attributes"])
    relationships = _deref(schemas, data["properties"]["relationships"])["properties"]
    limits = op["x-klaviyo-ratelimit"]
    return {
        "path": path,
        "operation_id": op["operationId"],
        "method": "POST",
        "resource_type": rtype,
        "scopes": op.get("x-klaviyo-scopes", []),
        "rate_limit": {
            "burst": int(limits["burst"].split("/")[0]),
            "steady": int(limits["steady"].split("/")[0]),
            "daily": int(limits["daily"].split("/")[0]),
        },
        "field_rate_limits": {},
        "revision_header_required": bool(params.get("revision", {}).get("required")),
        "query_params": sorted(query),
        "page_size": None,
        "paginated": False,
        "prose_max_page_size": None,
        "sort": None,
        "include": None,
        "fields": {
            k[len("fields[") : -1]: v["schema"]["items"]["enum"] for k, v in query.items() if k.startswith("fields[")
        },
        "additional_fields": {},
        "filter": None,
        "attributes": {name: {"type": node.get("type")} for name, node in result_attributes["properties"].items()},
        "relationships": {
            name: {
                "kind": "many",
                "type": _deref(schemas, node["properties"]["data"]["items"]["properties"]["type"])["enum"][0],
            }
            for name, node in relationships.items()
        },
        "included": {},
        "report": {
            "attributes": sorted(props),
            "required": sorted(attributes.get("required", [])),
            "statistics": props["statistics"]["items"]["enum"],
            "timeframe_keys": preset["properties"]["key"]["enum"],
            "timeframe_fields": sorted(custom["properties"]),
            "timeframe_max_days": 365 if "(Max length: 1 year)" in timeframe["description"] else None,
            "intervals": props["interval"]["enum"] if "interval" in props else None,
            "interval_max_days": _interval_days(props["interval"]["description"]) if "interval" in props else {},
            "group_by": group_by["items"]["enum"],
            "group_by_required": _names(
                _sentence(r"The following group by attributes are required: ([^\n]*)", group_by["description"])
            ),
            "group_by_default": _names(
                _sentence(r"If not passed in, the data will be grouped by ([^\n]*)", group_by["description"])
            ),
            "filter": _filter_rules(props["filter"]["description"]),
        },
    }

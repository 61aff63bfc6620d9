"""Cut Klaviyo's OpenAPI spec down to what this project reads, for the copy committed beside this script.

The full spec (3 MB) lives outside the repository, in ``../shared/klaviyo-openapi/``. This keeps its
``openapi``, ``info``, ``servers`` and ``security``, the GET operations of ``PATHS``, the POST operations of
``REPORT_PATHS`` and every component they reference (``$ref`` followed transitively), so that
``fake_klaviyo/make_endpoints.py`` and ``tap_klaviyo/schemas/from_spec.py`` build from the copy exactly what they
build from the full spec, and the tests that check their output run in any clone. It writes
``tap_klaviyo/schemas/klaviyo-stable-trimmed.json`` and ``SOURCE.txt`` (where the spec came from, in this folder):

    python openapi/trim.py [path/to/stable.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parent.parent / "shared" / "klaviyo-openapi" / "stable.json"
# The tap builds its stream schemas from the trimmed spec at run time: it ships in the package.
TRIMMED = HERE.parent / "tap_klaviyo" / "schemas" / "klaviyo-stable-trimmed.json"
SOURCE = HERE / "SOURCE.txt"

# The collections the tap reads now or is about to; make_endpoints.py and from_spec.py read a subset of them.
PATHS = (
    "/api/accounts",
    "/api/lists",
    "/api/segments",
    "/api/campaigns",
    "/api/flows",
    "/api/metrics",
    "/api/events",
    "/api/profiles",
    "/api/lists/{id}/profiles",
    "/api/segments/{id}/profiles",
)
# The Reporting API's queries the tap sends (POST, with the report asked for in the body).
REPORT_PATHS = (
    "/api/campaign-values-reports",
    "/api/flow-series-reports",
)
# Components read by name rather than reached by $ref (make_endpoints.COMPONENT_ENUMS), kept whatever the paths.
NAMED_SCHEMAS = (
    "ThrottledSendStrategy",
    "DynamicTrackingParam",
    "RelativeDateOperatorBaseRelativeDateFilter",
    "NumericOperatorNumericFilter",
    "StringOperatorStringFilter",
    "StaticDateFilter",
    "EmailMarketingSuppression",
    "PredictiveAnalytics",
)

Json = dict[str, Any]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _pointer(ref: str) -> tuple[str, ...]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are expected, got {ref!r}")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/"))


def trim(doc: Json) -> Json:
    paths = {path: {"get": doc["paths"][path]["get"]} for path in PATHS}
    paths.update({path: {"post": doc["paths"][path]["post"]} for path in REPORT_PATHS})
    kept: dict[tuple[str, ...], Any] = {
        ("components", "schemas", n): doc["components"]["schemas"][n] for n in NAMED_SCHEMAS
    }
    todo = _refs(paths) | set().union(*(_refs(node) for node in kept.values()))
    while todo:
        key = _pointer(todo.pop())
        if key in kept:
            continue
        node: Any = doc
        for part in key:
            node = node[part]
        kept[key] = node
        todo |= _refs(node)

    components: Json = {"securitySchemes": doc["components"]["securitySchemes"]}
    for key in sorted(kept):
        if key[0] != "components" or len(key) != 3:
            raise ValueError(f"a $ref outside components/<kind>/<name>: {'/'.join(key)}")
        components.setdefault(key[1], {})[key[2]] = kept[key]
    return {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "servers": doc["servers"],
        "security": doc["security"],
        "paths": paths,
        "components": components,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC)
    args = parser.parse_args(argv)
    doc = json.loads(args.spec.read_text(encoding="utf-8"))
    text = json.dumps(trim(doc), indent=1, ensure_ascii=False) + "\n"
    TRIMMED.write_text(text, encoding="utf-8")
    upstream = args.spec.with_name("SOURCE.txt")
    origin = upstream.read_text(encoding="utf-8").strip() if upstream.exists() else str(args.spec)
    SOURCE.write_text(
        f"{TRIMMED.name}: Klaviyo's OpenAPI spec, revision {doc['info']['version']}, trimmed by openapi/trim.py\n"
        f"(GET {', '.join(PATHS)}, POST {', '.join(REPORT_PATHS)} and the components they reference) from\n"
        f"{origin}\n",
        encoding="utf-8",
    )
    print(f"wrote {TRIMMED} ({len(text)} bytes) and {SOURCE.name} from revision {doc['info']['version']}")


if __name__ == "__main__":
    main()

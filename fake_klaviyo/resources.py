"""One resource as JSON:API renders it: sparse fieldsets, relationships and links."""

from __future__ import annotations

from typing import Any

from .query import Query
from .spec import Endpoint, Resource


def render(ep: Endpoint, res: Resource, base: str, q: Query) -> Resource:
    rid = res["id"]
    url = f"{base}{ep.path}/{rid}/"
    attrs = res["attributes"]
    wanted = q.fields.get(ep.resource_type)
    out: Resource = {"type": res["type"], "id": rid, "attributes": sparse(attrs, wanted) if wanted else attrs}
    rels: dict[str, Any] = {}
    for name, info in ep.relationships.items():
        links = {"self": f"{url}relationships/{name}/", "related": f"{url}{name}/"}
        if info["kind"] == "one":
            rels[name] = {"data": res.get("relationships", {}).get(name, {}).get("data"), "links": links}
        elif name in q.include:
            rels[name] = {"data": [], "links": links}  # the generated account has no tags/attributions
        else:
            rels[name] = {"links": links}
    if rels:
        out["relationships"] = rels
    out["links"] = {"self": url}
    return out


def sparse(attrs: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """Apply a sparse fieldset, including dotted paths like ``audiences.included``."""
    out: dict[str, Any] = {}
    copied: list[str] = []
    for f in sorted(set(wanted) - {"id"}):
        if any(f.startswith(c + ".") for c in copied):
            continue
        parts = f.split(".")
        src: Any = attrs
        dst = out
        for i, part in enumerate(parts):
            if not isinstance(src, dict) or part not in src:
                break
            if i == len(parts) - 1 or src[part] is None:
                dst[part] = src[part]
                copied.append(".".join(parts[: i + 1]))
                break
            src = src[part]
            dst = dst.setdefault(part, {})
    return out


def profile(index: int, pid: str, base: str, wanted: list[str] | None) -> Resource:
    """An included profile: profiles are not an endpoint of the fake, so they carry a minimal, stable shape."""
    attrs: dict[str, Any] = {
        "email": f"client.{index}@example.com",
        "phone_number": None,
        "external_id": None,
        "first_name": ["Zoë", "李", "محمد", "O'Brien", None][index % 5],
        "last_name": None,
        "organization": None,
        "locale": None,
        "title": None,
        "image": None,
        "created": None,
        "updated": None,
        "last_event_date": None,
        "location": None,
        "properties": {},
    }
    return {
        "type": "profile",
        "id": pid,
        "attributes": sparse(attrs, wanted) if wanted else attrs,
        "links": {"self": f"{base}/api/profiles/{pid}/"},
    }

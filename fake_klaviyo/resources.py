"""One resource as JSON:API renders it: sparse fieldsets, relationships and links."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .query import Query
from .spec import Endpoint, Resource


def render(
    ep: Endpoint, res: Resource, base: str, q: Query, related: Mapping[str, list[Resource]] | None = None
) -> Resource:
    """A resource of an endpoint's collection; ``related`` holds its included to-many relationships' resources."""
    url = f"{base}{ep.path}/{res['id']}/"
    return resource(res, url, ep.relationships, q.fields.get(ep.resource_type), q.include, related)


def resource(
    res: Resource,
    url: str,
    relationships: Mapping[str, Any],
    wanted: list[str] | None,
    include: Collection[str] = (),
    related: Mapping[str, list[Resource]] | None = None,
) -> Resource:
    """``res`` at ``url`` with the fieldset ``wanted``, its ``relationships`` (as the spec lists them) linked, and
    the data of its to-one relationships and of the to-many ones in ``include``."""
    out: Resource = {"type": res["type"], "id": res["id"]}
    if "attributes" in res:  # an attribution has relationships only
        attrs = res["attributes"]
        out["attributes"] = sparse(attrs, wanted) if wanted else attrs
    rels: dict[str, Any] = {}
    for name, info in relationships.items():
        links = {"self": f"{url}relationships/{name}/", "related": f"{url}{name}/"}
        if info["kind"] == "one":
            # A to-one relationship without a target (a message without an image) carries links alone.
            data = res.get("relationships", {}).get(name, {}).get("data")
            rels[name] = {"data": data, "links": links} if data is not None else {"links": links}
        elif name in include:
            # Only what the account holds; it has no tags or flow triggers.
            held = (related or {}).get(name, [])
            rels[name] = {"data": [{"type": r["type"], "id": r["id"]} for r in held], "links": links}
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

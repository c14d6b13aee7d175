"""Bundles the API answers with: searchset and history (hl7.org/fhir/R4/bundle.html)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from vaxhub.fhir.search_query import SearchQuery
from vaxhub.hub.storage.store import SearchPage, Stored, format_instant


def _now() -> str:
    return format_instant(datetime.now(timezone.utc).replace(tzinfo=None))


def status_line(status: int) -> str:
    return {200: "200 OK", 201: "201 Created", 204: "204 No Content"}.get(status, str(status))


def searchset(base: str, query: SearchQuery, page: SearchPage) -> dict:
    url = f"{base}/{query.rtype}"
    links = [{"relation": "self", "url": f"{url}?{query.link_query()}"}]
    if page.has_next:
        links.append({"relation": "next", "url": f"{url}?{query.link_query(query.offset + query.count)}"})
    if query.offset > 0:
        links.append({"relation": "previous", "url": f"{url}?{query.link_query(max(0, query.offset - query.count))}"})
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": _now()}, "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    entries = [
        {"fullUrl": f"{base}/{s.rtype}/{s.id}", "resource": s.content, "search": {"mode": "match"}} for s in page.resources
    ]
    entries += [
        {"fullUrl": f"{base}/{s.rtype}/{s.id}", "resource": s.content, "search": {"mode": "include"}} for s in page.included
    ]
    if entries:
        bundle["entry"] = entries
    return bundle


def history(base: str, self_url: str, versions: list[Stored], next_url: str | None) -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = []
    for s in versions:
        entry: dict = {"fullUrl": f"{base}/{s.rtype}/{s.id}"}
        if s.content is not None:
            entry["resource"] = s.content
        method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[s.method]
        entry["request"] = {"method": method, "url": s.rtype if method == "POST" else f"{s.rtype}/{s.id}"}
        entry["response"] = {
            "status": {"create": "201 Created", "update": "200 OK", "delete": "204 No Content"}[s.method],
            "etag": s.etag,
            "lastModified": format_instant(s.last_updated),
        }
        entries.append(entry)
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": _now()}, "type": "history", "link": links}
    if entries:
        bundle["entry"] = entries
    return bundle


def collection_of(base: str, bundle_type: str, resources: list[Stored]) -> dict:
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": _now()}, "type": bundle_type, "total": len(resources)}
    if resources:
        bundle["entry"] = [{"fullUrl": f"{base}/{s.rtype}/{s.id}", "resource": s.content, "search": {"mode": "match"}} for s in resources]
    return bundle

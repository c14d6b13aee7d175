"""FHIR RESTful interactions on the stored types (hl7.org/fhir/R4/http.html).

Handlers stay thin: they read the HTTP request, check the caller's rights
(`vaxhub.hub.security.policy`), call the store or an operation, note what was
touched for the audit trail, and shape the HTTP answer. A citizen's request
for anything outside their compartment is answered exactly as if the record
did not exist.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vaxhub.errors import Forbidden, Gone, Issue, NotFound, UnsupportedRequest
from vaxhub.fhir.outcome import informational
from vaxhub.fhir.resources import SUPPORTED_TYPES, validate_resource
from vaxhub.fhir.search_params import date_range
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.api.access import interaction, recorded
from vaxhub.hub.api.fhir_http import FhirResponse, base_url, prefers, read_json_body, version_headers
from vaxhub.hub.api.person_access import person_principal
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.healthbook.citizen_reports import check_citizen_create
from vaxhub.hub.mpi.reach import compartments_in_reach
from vaxhub.hub.operations import bundles
from vaxhub.hub.operations.transaction import process_bundle
from vaxhub.hub.security.policy import SiteWriteGuard, compartment_filter, require, visible
from vaxhub.hub.security.principal import PATIENT, Principal
from vaxhub.hub.storage.store import FhirStore, Stored, WriteResult
from vaxhub.settings import Settings


def _check_type(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        raise NotFound(f"Resource type {rtype!r} is not supported; supported: {', '.join(SUPPORTED_TYPES)}")


def _write_response(request: Request, base: str, result: WriteResult) -> FhirResponse:
    stored = result.stored
    headers = version_headers(stored)
    if result.status == 201:
        headers["Location"] = f"{base}/{stored.rtype}/{stored.id}/_history/{stored.version}"
    preference = prefers(request, "return")
    if preference == "minimal":
        return FhirResponse(None, status_code=result.status, headers=headers)
    if preference == "operationoutcome":
        return FhirResponse(informational(f"{stored.rtype}/{stored.id} version {stored.version}"), status_code=result.status, headers=headers)
    return FhirResponse(stored.content, status_code=result.status, headers=headers)


def _query_items(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def _load(who: Principal, loader: Callable[[], Stored]) -> Stored:
    """Run a read; for a citizen, a deleted record is as unknown as a missing one."""
    try:
        return loader()
    except Gone:
        if who.kind == PATIENT:
            raise NotFound("The record is not known") from None
        raise


def _shown(who: Principal, stored: Stored, audit: Interaction) -> Stored:
    """The stored version if the caller may see it; otherwise the same 404 as a missing record."""
    if not visible(who, stored.rtype, stored.id, stored.content):
        raise NotFound(f"{stored.rtype}/{stored.id} is not known")
    audit.touched(stored.rtype, stored.id, stored.version, stored.content)
    return stored


def build_router(store: FhirStore, settings: Settings, trail: AuditTrail) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["FHIR R4"])
    caller = Depends(person_principal)  # a citizen reaches every record of their person
    audited = Depends(interaction)

    def base(request: Request) -> str:
        return base_url(request, settings.base_url)

    @router.post("", summary="Process a transaction or batch Bundle", response_class=FhirResponse)
    async def transaction(request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        if who.kind == PATIENT:
            raise Forbidden("A citizen's token may read, not write")
        require_any_write(who)
        bundle = await read_json_body(request, settings.max_body_bytes)
        # Off the event loop: validation and database waits of one request must
        # not stall the worker's other requests.
        response = await run_in_threadpool(
            process_bundle,
            store,
            bundle,
            base=base(request),
            max_entries=settings.max_bundle_entries,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
            include_resources=prefers(request, "return") == "representation",
            guard=SiteWriteGuard(who),
            interaction=audit,
            reader=lambda rtype, permission: require(who, rtype, permission),
            record=request.app.state.audit.record,
        )
        return FhirResponse(response)

    @router.get("/{rtype}/_history", summary="History of a resource type", response_class=FhirResponse)
    def type_history(rtype: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "r")
        if who.kind == PATIENT:
            raise Forbidden("A citizen's token cannot read the history of a whole resource type")
        return _history(request, base(request), rtype, None, who, audit)

    @router.get("/{rtype}/{res_id}/_history", summary="History of one resource", response_class=FhirResponse)
    def instance_history(rtype: str, res_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "r")
        if who.kind == PATIENT:  # the record must be in the citizen's compartment now
            _shown(who, _load(who, lambda: store.read(rtype, res_id)), audit)
        return _history(request, base(request), rtype, res_id, who, audit)

    @router.get("/{rtype}/{res_id}/_history/{version}", summary="Read one version (vread)", response_class=FhirResponse)
    def vread(rtype: str, res_id: str, version: str, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "r")
        if not version.isdigit():
            raise NotFound(f"{rtype}/{res_id} has no version {version!r}")
        stored = _shown(who, _load(who, lambda: store.vread(rtype, res_id, int(version))), audit)
        return recorded(trail, audit, FhirResponse(stored.content, headers=version_headers(stored)))

    def _history(request: Request, b: str, rtype: str, res_id: str | None, who: Principal, audit: Interaction) -> FhirResponse:
        items = dict(_query_items(request))
        count = _bounded_int(items.get("_count"), settings.default_page_size, settings.max_page_size, "_count")
        offset = _bounded_int(items.get("_offset"), 0, None, "_offset")
        since = None
        if "_since" in items:
            try:
                since = date_range(items["_since"])[0]
            except ValueError:
                raise UnsupportedRequest(f"_since {items['_since']!r} is not an instant", [Issue("Bad _since", "_since")]) from None
        versions, more = store.history(rtype, res_id, since=since, count=count, offset=offset)
        versions = [v for v in versions if visible(who, v.rtype, v.id, v.content)]
        for v in versions:
            audit.touched(v.rtype, v.id, v.version, v.content)
        path = f"{b}/{rtype}" + (f"/{res_id}" if res_id else "") + "/_history"
        keep = {k: v for k, v in items.items() if k == "_since"}
        self_url = f"{path}?{urlencode({**keep, '_count': count, '_offset': offset})}"
        next_url = f"{path}?{urlencode({**keep, '_count': count, '_offset': offset + count})}" if more else None
        return recorded(trail, audit, FhirResponse(bundles.history(b, self_url, versions, next_url)))

    @router.get("/Patient/{res_id}/$everything", summary="Everything in one patient's compartment", response_class=FhirResponse)
    def everything(res_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        require(who, "Patient", "r")
        require(who, "Immunization", "s")
        audit.action = "operation"
        found = compartments_in_reach(store, res_id)  # a golden Patient reaches its linked records
        # The Patient is in its own compartment; read alone only when it is not
        # there, for the answer a missing or deleted record gets.
        own = next((s for s in found if s.rtype == "Patient" and s.id == res_id), None)
        _shown(who, own or _load(who, lambda: store.read("Patient", res_id)), audit)
        found.sort(key=lambda s: (s.rtype != "Patient", s.rtype, s.id))
        for s in found:
            audit.touched(s.rtype, s.id, s.version, s.content)
        return recorded(trail, audit, FhirResponse(bundles.collection_of(base(request), "searchset", found)))

    @router.get("/{rtype}/{res_id}", summary="Read the current version", response_class=FhirResponse)
    def read(rtype: str, res_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> Response:
        _check_type(rtype)
        require(who, rtype, "r")
        stored = _shown(who, _load(who, lambda: store.read(rtype, res_id)), audit)
        headers = version_headers(stored)
        if request.headers.get("if-none-match") == stored.etag:
            return recorded(trail, audit, Response(status_code=304, headers=headers))
        return recorded(trail, audit, FhirResponse(stored.content, headers=headers))

    @router.get("/{rtype}", summary="Search", response_class=FhirResponse)
    def search_get(rtype: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        return _search(request, rtype, _query_items(request), who, audit)

    @router.post("/{rtype}/_search", summary="Search with form-encoded parameters", response_class=FhirResponse)
    async def search_post(rtype: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        form = await request.body()
        items = _query_items(request) + parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True)
        audit.action = "search"
        return await run_in_threadpool(_search, request, rtype, items, who, audit)

    def _search(request: Request, rtype: str, items: list[tuple[str, str]], who: Principal, audit: Interaction) -> FhirResponse:
        require(who, rtype, "s")
        query = parse_search(
            rtype,
            items,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
            strict=prefers(request, "handling") == "strict",
        )
        for inc in query.includes + query.revincludes:
            for target in inc.param.targets if inc.source_type == rtype else (inc.source_type,):
                require(who, target, "r")
        query.compartment = compartment_filter(who, rtype)
        query.visible = (lambda s: visible(who, s.rtype, s.id, s.content)) if who.kind == PATIENT else None
        page = store.search(query)
        for s in page.resources + page.included:
            audit.touched(s.rtype, s.id, s.version, s.content)
        return recorded(trail, audit, FhirResponse(bundles.searchset(base(request), query, page)))

    @router.post("/{rtype}", summary="Create (conditional with If-None-Exist)", response_class=FhirResponse)
    async def create(rtype: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "c")
        resource = await read_json_body(request, settings.max_body_bytes)
        condition = request.headers.get("if-none-exist")

        def work() -> WriteResult:
            validate_resource(resource, expected_type=rtype)
            criteria = None
            if condition is not None:
                criteria = parse_search(rtype, parse_qsl(condition.lstrip("?"), keep_blank_values=True), strict=True)
                if not criteria.criteria:
                    raise UnsupportedRequest("If-None-Exist has no search criteria", [Issue("Empty If-None-Exist", "If-None-Exist")])
            def unit(w):
                check_citizen_create(w, who, resource)  # a citizen reports only about their own doses
                return w.create(resource, if_none_exist=criteria)

            result = store.run_unit(unit, guard=SiteWriteGuard(who), context=audit)
            if result.status == 200:  # matched an existing record: a read, audited as such
                audit.touched(rtype, result.stored.id, result.stored.version, result.stored.content)
            return result

        result = await run_in_threadpool(work)
        return _write_response(request, base(request), result)

    @router.put("/{rtype}/{res_id}", summary="Update (or create with a client id); If-Match for versioned updates", response_class=FhirResponse)
    async def update(rtype: str, res_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "u")
        resource = await read_json_body(request, settings.max_body_bytes)
        if_match = request.headers.get("if-match")

        def work() -> WriteResult:
            validate_resource(resource, expected_type=rtype)
            if resource.get("id") != res_id:
                raise UnsupportedRequest(
                    "The resource's id must equal the id in the URL",
                    [Issue(f"resource.id {resource.get('id')!r} does not match {res_id!r}", f"{rtype}.id", "invalid")],
                )
            return store.run_unit(lambda w: w.update(rtype, res_id, resource, if_match=if_match), guard=SiteWriteGuard(who), context=audit)

        result = await run_in_threadpool(work)
        return _write_response(request, base(request), result)

    @router.put("/{rtype}", summary="Conditional update on search criteria", response_class=FhirResponse)
    async def conditional_update(rtype: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        _check_type(rtype)
        require(who, rtype, "u")
        resource = await read_json_body(request, settings.max_body_bytes)
        return await run_in_threadpool(_conditional_update, request, rtype, resource, who, audit)

    def _conditional_update(request: Request, rtype: str, resource: Any, who: Principal, audit: Interaction) -> FhirResponse:
        validate_resource(resource, expected_type=rtype)
        criteria = parse_search(rtype, _query_items(request), strict=True)
        if not criteria.criteria:
            raise UnsupportedRequest("A conditional update needs search criteria", [Issue("No criteria", None)])
        if resource.get("id"):
            # The id, if given, must be the matched resource's (http.html#cond-update).
            matches = store.search(criteria).resources
            if matches and matches[0].id != resource["id"]:
                raise UnsupportedRequest("resource.id does not match the resource found by the criteria", [Issue("id mismatch", f"{rtype}.id")])
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": resource, "request": {"method": "PUT", "url": f"{rtype}?{request.url.query}"}}],
        }
        out = process_bundle(store, bundle, base=base(request), include_resources=True, guard=SiteWriteGuard(who), interaction=audit)
        entry = out["entry"][0]
        status = int(entry["response"]["status"].split()[0])
        headers = {"ETag": entry["response"]["etag"], "Location": f"{base(request)}/{entry['response']['location']}"}
        return FhirResponse(entry.get("resource"), status_code=status, headers=headers)

    @router.delete("/{rtype}/{res_id}", summary="Delete (history is kept)", response_class=FhirResponse)
    def delete(rtype: str, res_id: str, who: Principal = caller, audit: Interaction = audited) -> Response:
        _check_type(rtype)
        require(who, rtype, "d")
        result = store.run_unit(lambda w: w.delete(rtype, res_id), guard=SiteWriteGuard(who), context=audit)
        return Response(status_code=204, headers={"ETag": result.stored.etag})

    return router


def require_any_write(who: Principal) -> None:
    if not any(p in s.permissions for s in who.scopes for p in "cud"):
        raise Forbidden("The token's scopes allow no writes")


def _bounded_int(value: Any, default: int, maximum: int | None, name: str) -> int:
    if value is None:
        return default
    if not str(value).isdigit():
        raise UnsupportedRequest(f"{name} must be a whole number", [Issue(f"Bad {name}", name)])
    number = int(value)
    return min(number, maximum) if maximum is not None else number

"""FHIR RESTful interactions on the stored types (hl7.org/fhir/R4/http.html).

Handlers stay thin: they read the HTTP request, call the store or an
operation, and shape the HTTP answer.
"""

from __future__ import annotations


from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vaxhub.errors import Issue, NotFound, UnsupportedRequest
from vaxhub.fhir.outcome import informational
from vaxhub.fhir.resources import SUPPORTED_TYPES, validate_resource
from vaxhub.fhir.search_params import date_range
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.api.fhir_http import FhirResponse, base_url, prefers, read_json_body, version_headers
from vaxhub.hub.operations import bundles
from vaxhub.hub.operations.transaction import process_bundle
from vaxhub.hub.storage.store import FhirStore, WriteResult
from vaxhub.settings import Settings

TYPE_PATTERN = "^(" + "|".join(SUPPORTED_TYPES) + ")$"


def _check_type(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        raise NotFound(f"Resource type {rtype!r} is not supported; supported: {', '.join(SUPPORTED_TYPES)}")


def _write_response(request: Request, base: str, result: WriteResult, *, created_location: bool) -> FhirResponse:
    stored = result.stored
    headers = version_headers(stored)
    if created_location or result.status == 201:
        headers["Location"] = f"{base}/{stored.rtype}/{stored.id}/_history/{stored.version}"
    preference = prefers(request, "return")
    if preference == "minimal":
        return FhirResponse(None, status_code=result.status, headers=headers)
    if preference == "operationoutcome":
        return FhirResponse(informational(f"{stored.rtype}/{stored.id} version {stored.version}"), status_code=result.status, headers=headers)
    return FhirResponse(stored.content, status_code=result.status, headers=headers)


def _query_items(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def build_router(store: FhirStore, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

    def base(request: Request) -> str:
        return base_url(request, settings.base_url)

    @router.post("", summary="Process a transaction or batch Bundle", response_class=FhirResponse)
    async def transaction(request: Request) -> FhirResponse:
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
        )
        return FhirResponse(response)

    @router.get("/{rtype}/_history", summary="History of a resource type", response_class=FhirResponse)
    def type_history(rtype: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        return _history(request, base(request), rtype, None)

    @router.get("/{rtype}/{res_id}/_history", summary="History of one resource", response_class=FhirResponse)
    def instance_history(rtype: str, res_id: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        return _history(request, base(request), rtype, res_id)

    @router.get("/{rtype}/{res_id}/_history/{version}", summary="Read one version (vread)", response_class=FhirResponse)
    def vread(rtype: str, res_id: str, version: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        if not version.isdigit():
            raise NotFound(f"{rtype}/{res_id} has no version {version!r}")
        stored = store.vread(rtype, res_id, int(version))
        return FhirResponse(stored.content, headers=version_headers(stored))

    def _history(request: Request, b: str, rtype: str, res_id: str | None) -> FhirResponse:
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
        path = f"{b}/{rtype}" + (f"/{res_id}" if res_id else "") + "/_history"
        keep = {k: v for k, v in items.items() if k == "_since"}
        self_url = f"{path}?{urlencode({**keep, '_count': count, '_offset': offset})}"
        next_url = f"{path}?{urlencode({**keep, '_count': count, '_offset': offset + count})}" if more else None
        return FhirResponse(bundles.history(b, self_url, versions, next_url))

    @router.get("/{rtype}/{res_id}", summary="Read the current version", response_class=FhirResponse)
    def read(rtype: str, res_id: str, request: Request) -> Response:
        _check_type(rtype)
        stored = store.read(rtype, res_id)
        headers = version_headers(stored)
        if request.headers.get("if-none-match") == stored.etag:
            return Response(status_code=304, headers=headers)
        return FhirResponse(stored.content, headers=headers)

    @router.get("/{rtype}", summary="Search", response_class=FhirResponse)
    def search_get(rtype: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        return _search(request, rtype, _query_items(request))

    @router.post("/{rtype}/_search", summary="Search with form-encoded parameters", response_class=FhirResponse)
    async def search_post(rtype: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        form = await request.body()
        items = _query_items(request) + parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True)
        return await run_in_threadpool(_search, request, rtype, items)

    def _search(request: Request, rtype: str, items: list[tuple[str, str]]) -> FhirResponse:
        query = parse_search(
            rtype,
            items,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
            strict=prefers(request, "handling") == "strict",
        )
        page = store.search(query)
        return FhirResponse(bundles.searchset(base(request), query, page))

    @router.post("/{rtype}", summary="Create (conditional with If-None-Exist)", response_class=FhirResponse)
    async def create(rtype: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        resource = await read_json_body(request, settings.max_body_bytes)
        condition = request.headers.get("if-none-exist")

        def work() -> WriteResult:
            validate_resource(resource, expected_type=rtype)
            criteria = None
            if condition is not None:
                criteria = parse_search(rtype, parse_qsl(condition.lstrip("?"), keep_blank_values=True), strict=True)
                if not criteria.criteria:
                    raise UnsupportedRequest("If-None-Exist has no search criteria", [Issue("Empty If-None-Exist", "If-None-Exist")])
            return store.run_unit(lambda w: w.create(resource, if_none_exist=criteria))

        result = await run_in_threadpool(work)
        return _write_response(request, base(request), result, created_location=False)

    @router.put("/{rtype}/{res_id}", summary="Update (or create with a client id); If-Match for versioned updates", response_class=FhirResponse)
    async def update(rtype: str, res_id: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        resource = await read_json_body(request, settings.max_body_bytes)
        if_match = request.headers.get("if-match")

        def work() -> WriteResult:
            validate_resource(resource, expected_type=rtype)
            if resource.get("id") != res_id:
                raise UnsupportedRequest(
                    "The resource's id must equal the id in the URL",
                    [Issue(f"resource.id {resource.get('id')!r} does not match {res_id!r}", f"{rtype}.id", "invalid")],
                )
            return store.run_unit(lambda w: w.update(rtype, res_id, resource, if_match=if_match))

        result = await run_in_threadpool(work)
        return _write_response(request, base(request), result, created_location=False)

    @router.put("/{rtype}", summary="Conditional update on search criteria", response_class=FhirResponse)
    async def conditional_update(rtype: str, request: Request) -> FhirResponse:
        _check_type(rtype)
        resource = await read_json_body(request, settings.max_body_bytes)
        return await run_in_threadpool(_conditional_update, request, rtype, resource)

    def _conditional_update(request: Request, rtype: str, resource: Any) -> FhirResponse:
        validate_resource(resource, expected_type=rtype)
        criteria = parse_search(rtype, _query_items(request), strict=True)
        if not criteria.criteria:
            raise UnsupportedRequest("A conditional update needs search criteria", [Issue("No criteria", None)])
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": resource, "request": {"method": "PUT", "url": f"{rtype}?{request.url.query}"}}],
        }
        if resource.get("id"):
            # The id, if given, must be the matched resource's (http.html#cond-update).
            resource_id = resource["id"]
            matches = store.search(criteria).resources
            if matches and matches[0].id != resource_id:
                raise UnsupportedRequest("resource.id does not match the resource found by the criteria", [Issue("id mismatch", f"{rtype}.id")])
        out = process_bundle(store, bundle, base=base(request), include_resources=True)
        entry = out["entry"][0]
        status = int(entry["response"]["status"].split()[0])
        headers = {"ETag": entry["response"]["etag"], "Location": f"{base(request)}/{entry['response']['location']}"}
        return FhirResponse(entry.get("resource"), status_code=status, headers=headers)

    @router.delete("/{rtype}/{res_id}", summary="Delete (history is kept)", response_class=FhirResponse)
    def delete(rtype: str, res_id: str) -> Response:
        _check_type(rtype)
        result = store.run_unit(lambda w: w.delete(rtype, res_id))
        return Response(status_code=204, headers={"ETag": result.stored.etag})

    @router.get("/Patient/{res_id}/$everything", summary="Everything in one patient's compartment", response_class=FhirResponse)
    def everything(res_id: str, request: Request) -> FhirResponse:
        store.read("Patient", res_id)  # 404/410 when the patient is not there
        found = store.compartment(res_id)
        found.sort(key=lambda s: (s.rtype != "Patient", s.rtype, s.id))
        return FhirResponse(bundles.collection_of(base(request), "searchset", found))

    return router


def _bounded_int(value: Any, default: int, maximum: int | None, name: str) -> int:
    if value is None:
        return default
    if not str(value).isdigit():
        raise UnsupportedRequest(f"{name} must be a whole number", [Issue(f"Bad {name}", name)])
    number = int(value)
    return min(number, maximum) if maximum is not None else number



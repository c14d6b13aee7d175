"""Transaction and batch Bundles (hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: every entry is checked first, `urn:uuid`
fullUrls are given server ids (or resolved to the existing resource when a
conditional create or update matches), references are rewritten, and the
writes run in one database transaction in the order the specification gives
(DELETE, POST, PUT, then GET). A batch runs each entry on its own and reports
each entry's outcome.

A conditional create's resource is validated only once its condition missed:
when it matches, the specification has the server ignore the body and answer
with the stored resource. Sites re-send the Patient with every dose, so most
of those bodies are never written and validating them would be most of the
cost of a Bundle.

HL7 v2 and spreadsheet ingestion build transaction Bundles and store them
through `process_bundle`, so every input path shares these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from vaxhub.errors import InvalidResource, Issue, MalformedInput, UnsupportedRequest, VaxhubError
from vaxhub.fhir.resources import SUPPORTED_TYPES, check_resource_type, validate_resource
from vaxhub.fhir.search_query import SearchQuery, parse_search
from vaxhub.fhir.outcome import operation_outcome, status_for
from vaxhub.hub.operations.bundles import searchset, status_line
from vaxhub.hub.storage.indexer import claimed_identifiers
from vaxhub.hub.storage.store import FhirStore, Stored, WriteGuard, WriteResult, Writer, format_instant, identifier_keys

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    index: int
    method: str
    rtype: str
    res_id: str | None = None
    criteria: SearchQuery | None = None  # If-None-Exist for POST, the condition of a conditional PUT
    resource: dict | None = None
    full_url: str | None = None
    if_match: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    references: list[str] | None = None  # every reference in the resource, once rewritten
    # What an attempt changed, undone before a retry (`store.run_unit` runs the
    # unit again when a concurrent request claimed an identifier first): the
    # id it assigned and the reference strings it rewrote.
    given_id: str | None = None
    rewritten: list[tuple[dict, str]] = field(default_factory=list)
    validated: bool = True  # False until a conditional create's resource is checked against its model

    def reset(self) -> None:
        self.res_id = self.given_id
        for node, original in reversed(self.rewritten):
            node["reference"] = original
        self.rewritten.clear()

    @property
    def path(self) -> str:
        return f"Bundle.entry[{self.index}]"


@dataclass
class EntryResult:
    status: int
    stored: Stored | None = None
    outcome: dict | None = None
    body: dict | None = None  # for GET entries

    def to_entry(self, base: str, include_resource: bool) -> dict:
        response: dict[str, Any] = {"status": status_line(self.status)}
        entry: dict[str, Any] = {}
        if self.stored is not None:
            s = self.stored
            response["location"] = f"{s.rtype}/{s.id}/_history/{s.version}"
            response["etag"] = s.etag
            response["lastModified"] = format_instant(s.last_updated)
            entry["fullUrl"] = f"{base}/{s.rtype}/{s.id}"
            if include_resource and s.content is not None:
                entry["resource"] = s.content
        if self.body is not None:
            entry["resource"] = self.body
        if self.outcome is not None:
            response["outcome"] = self.outcome
        entry["response"] = response
        return entry


def parse_entries(bundle: Any, *, max_entries: int, default_count: int, max_count: int) -> tuple[str, list[Entry], dict[int, VaxhubError]]:
    """Check a Bundle's shape and each entry's request; raise with every problem located."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise MalformedInput("POST to the base URL takes a Bundle", [Issue("Expected a Bundle", "Bundle.resourceType", "structure")])
    btype = bundle.get("type")
    if btype not in ("transaction", "batch"):
        raise UnsupportedRequest(
            f"Bundle.type must be transaction or batch, not {btype!r}",
            [Issue("Only transaction and batch Bundles are processed", "Bundle.type", "not-supported")],
        )
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise MalformedInput("Bundle.entry must be a list", [Issue("Bundle.entry must be a list", "Bundle.entry", "structure")])
    if len(raw_entries) > max_entries:
        raise UnsupportedRequest(
            f"The Bundle has {len(raw_entries)} entries; at most {max_entries} are accepted per request",
            [Issue("Too many entries", "Bundle.entry", "too-costly")],
        )
    entries: list[Entry] = []
    failures: dict[int, VaxhubError] = {}
    for i, raw in enumerate(raw_entries):
        try:
            entries.append(_parse_entry(i, raw, default_count, max_count))
        except VaxhubError as exc:
            exc.issues = [Issue(iss.message, iss.expression or f"Bundle.entry[{i}]", iss.code) for iss in exc.issues]
            failures[i] = exc
            entries.append(Entry(i, "INVALID", ""))
    if failures and btype == "transaction":
        # All or nothing: report every bad entry at once, with the worst status among them.
        issues = [iss for exc in failures.values() for iss in exc.issues]
        worst = max(failures.values(), key=status_for)
        raise type(worst)(f"{issues[0].expression}: {issues[0].message}", issues)
    return btype, entries, failures


def _parse_entry(i: int, raw: Any, default_count: int, max_count: int) -> Entry:
    path = f"Bundle.entry[{i}]"
    if not isinstance(raw, dict):
        raise MalformedInput("An entry must be an object", [Issue("An entry must be an object", path, "structure")])
    request = raw.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str) or not isinstance(request.get("url"), str):
        raise MalformedInput("entry.request needs a method and a url", [Issue("entry.request needs a method and a url", f"{path}.request", "required")])
    method = request["method"].upper()
    if method not in ORDER or method in ("PATCH", "HEAD"):
        raise UnsupportedRequest(f"Method {method} is not supported in a Bundle", [Issue(f"Unsupported method {method}", f"{path}.request.method", "not-supported")])
    url = urlsplit(request["url"])
    segments = [s for s in url.path.split("/") if s]
    if not segments or segments[0] not in SUPPORTED_TYPES:
        raise UnsupportedRequest(
            f"{request['url']!r} does not name a supported resource type",
            [Issue(f"Unsupported request url {request['url']}", f"{path}.request.url", "not-supported")],
        )
    rtype = segments[0]
    entry = Entry(i, method, rtype, full_url=raw.get("fullUrl"), if_match=request.get("ifMatch"), query=parse_qsl(url.query, keep_blank_values=True))
    if len(segments) > 1:
        entry.res_id = entry.given_id = segments[1]
    if len(segments) > 2 and method != "GET":
        raise UnsupportedRequest("Only Type or Type/id urls are writable", [Issue("Unsupported url", f"{path}.request.url", "not-supported")])
    if method in ("POST", "PUT"):
        resource = raw.get("resource")
        if method == "POST" and request.get("ifNoneExist"):
            check_resource_type(resource, expected_type=rtype, path=f"{path}.resource")
            entry.validated = False  # in `_validate_unmatched`, if the condition misses
        else:
            validate_resource(resource, expected_type=rtype, path=f"{path}.resource")
        entry.resource = resource
        if method == "PUT" and entry.res_id and resource.get("id") not in (None, entry.res_id):
            raise InvalidResource("resource.id differs from the id in request.url", [Issue("id mismatch", f"{path}.resource.id", "invalid")])
    if method == "POST" and entry.res_id:
        raise UnsupportedRequest("POST creates at Type, not Type/id", [Issue("POST url must be a type", f"{path}.request.url", "not-supported")])
    if method == "POST" and request.get("ifNoneExist"):
        entry.criteria = parse_search(rtype, parse_qsl(request["ifNoneExist"], keep_blank_values=True), strict=True)
        if not entry.criteria.criteria:
            raise UnsupportedRequest("ifNoneExist has no search criteria", [Issue("Empty ifNoneExist", f"{path}.request.ifNoneExist", "invalid")])
    if method in ("PUT", "DELETE") and not entry.res_id:
        if method == "DELETE":
            raise UnsupportedRequest("Conditional delete is not supported", [Issue("Conditional delete is not supported", f"{path}.request.url", "not-supported")])
        entry.criteria = parse_search(rtype, entry.query, strict=True)
        if not entry.criteria.criteria:
            raise UnsupportedRequest("A conditional update needs search criteria", [Issue("No criteria", f"{path}.request.url", "invalid")])
    if method == "GET":
        entry.criteria = parse_search(rtype, entry.query, default_count=default_count, max_count=max_count) if not entry.res_id else None
    return entry


def rewrite_references(node: Any, mapping: dict[str, str], seen: list[str], undo: list[tuple[dict, str]] | None = None) -> None:
    """Rewrite `reference` strings found in `mapping`, in place, and list every
    reference met (after rewriting) in `seen`; one walk serves both. Each
    rewrite's node and original string go to `undo` when given."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value in mapping:
                    if undo is not None:
                        undo.append((node, value))
                    value = node[key] = mapping[value]
                seen.append(value)
            elif isinstance(value, (dict, list)):
                rewrite_references(value, mapping, seen, undo)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                rewrite_references(item, mapping, seen, undo)


def _assign_ids(writer: Writer, entries: list[Entry]) -> tuple[dict[str, str], dict[int, Stored]]:
    """Decide every written resource's id before anything is written.

    Returns the fullUrl -> "Type/id" map for reference rewriting and the
    entries whose condition matched an existing resource.
    """
    mapping: dict[str, str] = {}
    matched: dict[int, Stored] = {}
    existing: list[Entry] = []
    # One lookup for every identifier the bundle names (none when a unit
    # holding several transactions has looked them all up: `prefetch`).
    writer.prefetch_claims(_identifier_keys(entries))
    claimed_here: dict[tuple, str] = {}
    for e in sorted(entries, key=lambda x: ORDER.get(x.method, 9)):
        if e.method == "POST":
            key = _condition_key(e.criteria)
            if key is not None and key in claimed_here:
                e.res_id = claimed_here[key]
                matched[e.index] = None  # type: ignore[assignment]  # the same bundle creates it
            elif e.criteria is not None:
                found = writer.find(e.criteria)
                if len(found) > 1:
                    raise InvalidResource(
                        f"{e.path}: ifNoneExist matched {len(found)} resources",
                        [Issue("Conditional create matched more than one resource", f"{e.path}.request.ifNoneExist", "multiple-matches")],
                    )
                if found:
                    e.res_id = found[0][1]
                    existing.append(e)
            if e.res_id is None:
                e.res_id = writer.store.new_id()
                if key is not None:
                    claimed_here[key] = e.res_id
        elif e.method == "PUT" and e.res_id is None:
            found = writer.find(e.criteria)  # type: ignore[arg-type]
            if len(found) > 1:
                raise InvalidResource(
                    f"{e.path}: the conditional update matched {len(found)} resources",
                    [Issue("Conditional update matched more than one resource", f"{e.path}.request.url", "multiple-matches")],
                )
            e.res_id = found[0][1] if found else writer.store.new_id()
        if e.full_url and e.res_id and e.method in ("POST", "PUT"):
            mapping[e.full_url] = f"{e.rtype}/{e.res_id}"
    # The resources conditional creates matched, read in one query (a Bundle of
    # known people names a dozen). They are answered with, not written: no row
    # locks, as a reference to a stored resource is checked without one too.
    writer.read_current_many([(e.rtype, e.res_id) for e in existing], lock=False)  # type: ignore[misc]
    for e in existing:
        matched[e.index] = writer.read(e.rtype, e.res_id)  # type: ignore[arg-type]
    return mapping, matched


def _identifier_keys(entries: list[Entry]) -> list[tuple[str, str, str]]:
    """Every identifier a transaction names: its conditions and the ones its resources will claim."""
    keys = [k for e in entries if e.criteria is not None and e.method in ("POST", "PUT") for k in (identifier_keys(e.criteria) or [])]
    keys += [(e.rtype, system, value) for e in entries if e.resource is not None for system, value in claimed_identifiers(e.resource)]
    return keys


def prefetch(writer: Writer, transactions: list[list[Entry]]) -> None:
    """Look up, for transactions about to run in one unit, every identifier
    they name and the stored resources their conditional creates will match:
    two queries for the unit instead of two for each transaction."""
    writer.prefetch_claims([k for entries in transactions for k in _identifier_keys(entries)])
    owners = [
        (e.rtype, owner)
        for entries in transactions
        for e in entries
        if e.method == "POST" and e.criteria is not None
        for key in identifier_keys(e.criteria) or []
        if (owner := writer.claim_owner(key)) is not None
    ]
    writer.read_current_many(owners, lock=False)


def _validate_unmatched(entries: list[Entry], matched: dict[int, Stored]) -> None:
    """Validate the conditional creates that will write; report every bad one at once."""
    failures: list[VaxhubError] = []
    for e in entries:
        if e.validated or e.index in matched:
            continue
        try:
            validate_resource(e.resource, expected_type=e.rtype, path=f"{e.path}.resource")
        except VaxhubError as exc:
            failures.append(exc)
        else:
            e.validated = True  # a retried unit does not check it again
    if failures:
        issues = [iss for exc in failures for iss in exc.issues]
        raise type(max(failures, key=status_for))(f"{issues[0].expression}: {issues[0].message}", issues)


def _condition_key(criteria: SearchQuery | None) -> tuple | None:
    if criteria is None:
        return None
    keys = identifier_keys(criteria)
    return tuple(keys) if keys else None


def _run_entry(writer: Writer, e: Entry, base: str) -> EntryResult:
    if e.method == "DELETE":
        result = writer.delete(e.rtype, e.res_id, path=e.path)  # type: ignore[arg-type]
        return EntryResult(204 if result.status == 204 else 200)
    if e.method == "POST":
        result: WriteResult = writer.create(e.resource, path=f"{e.path}.resource", res_id=e.res_id, references=e.references)  # type: ignore[arg-type]
        return EntryResult(result.status, result.stored)
    if e.method == "PUT":
        result = writer.update(e.rtype, e.res_id, e.resource, path=f"{e.path}.resource", if_match=e.if_match, references=e.references)  # type: ignore[arg-type]
        return EntryResult(result.status, result.stored)
    raise AssertionError(e.method)


Reader = Callable[[str, str], None]  # (type, permission) -> raises when the caller may not read


def _note(context: Any, stored: Stored | None) -> None:
    """Tell the audited interaction (if any) about a resource it touched without writing."""
    if stored is not None and hasattr(context, "touched"):
        context.touched(stored.rtype, stored.id, stored.version, stored.content)


def _run_get(store: FhirStore, e: Entry, base: str, reader: Reader | None, context: Any, conn: Any = None) -> EntryResult:
    if reader is not None:
        reader(e.rtype, "r" if e.res_id else "s")
    if e.res_id:
        stored = store.read(e.rtype, e.res_id)
        _note(context, stored)
        return EntryResult(200, stored, body=stored.content)
    page = store.search(e.criteria, conn)  # type: ignore[arg-type]
    for found in page.resources + page.included:
        _note(context, found)
    return EntryResult(200, body=searchset(base, e.criteria, page))  # type: ignore[arg-type]


def process_bundle(
    store: FhirStore,
    bundle: Any,
    *,
    base: str,
    max_entries: int = 1000,
    default_count: int = 20,
    max_count: int = 500,
    include_resources: bool = False,
    guard: WriteGuard | None = None,
    interaction: Any = None,
    reader: Reader | None = None,
    record: Callable[[Any], None] | None = None,
    on_unit: Callable[[Writer], None] | None = None,
) -> dict:
    """Process a transaction or batch Bundle and return the response Bundle.

    `guard` checks every write, `reader` every GET entry. A transaction is one
    audited interaction (`interaction`, recorded inside its database
    transaction); each entry of a batch is an interaction of its own, derived
    from `interaction` and, when it writes nothing, passed to `record`.
    `on_unit` runs first in each attempt of a transaction's unit of work (the
    HL7 receiver checks and keeps the message's ACK there, in the same commit).
    """
    btype, entries, failures = parse_entries(bundle, max_entries=max_entries, default_count=default_count, max_count=max_count)
    if btype == "transaction":
        results = store.run_unit(lambda w: _transaction(w, entries, base, reader, on_unit), guard=guard, context=interaction)
        return response_bundle(btype, entries, results, base, include_resources)
    else:
        results = {}
        for e in entries:
            entry_interaction = interaction.for_entry(e.method, e.rtype) if hasattr(interaction, "for_entry") else None
            results[e.index] = _batch_entry(store, e, base, failures.get(e.index), guard, reader, entry_interaction)
            if entry_interaction is not None and not entry_interaction.recorded and record is not None:
                if results[e.index].status >= 400:
                    entry_interaction.outcome = "4"
                record(entry_interaction)
        if interaction is not None and hasattr(interaction, "recorded"):
            interaction.recorded = True  # its entries carry the audit records
    return response_bundle(btype, entries, results, base, include_resources)


def response_bundle(btype: str, entries: list[Entry], results: dict[int, EntryResult], base: str, include_resources: bool = False) -> dict:
    response_entries = [results[e.index].to_entry(base, include_resources) for e in entries]
    return {"resourceType": "Bundle", "type": f"{btype}-response", "entry": response_entries}


def transaction_in(writer: Writer, entries: list[Entry], base: str, on_unit: Callable[[Writer], None] | None = None) -> dict:
    """Run a parsed transaction's entries in a unit of work that holds others
    (several HL7 v2 messages stored together); returns its response Bundle.
    The writer's guard and context must be the transaction's own."""
    return response_bundle("transaction", entries, _transaction(writer, entries, base, None, on_unit), base)


def _transaction(writer: Writer, entries: list[Entry], base: str, reader: Reader | None = None,
                 on_unit: Callable[[Writer], None] | None = None) -> dict[int, EntryResult]:
    if on_unit is not None:
        on_unit(writer)
    for e in entries:  # a retried unit starts from the Bundle as it was sent
        e.reset()
    mapping, matched = _assign_ids(writer, entries)
    _validate_unmatched(entries, matched)
    unresolved: list[str] = []
    for e in entries:
        if e.resource is not None:
            e.references = []
            rewrite_references(e.resource, mapping, e.references, e.rewritten)
            unresolved += [r for r in e.references if r.startswith(("urn:uuid:", "urn:oid:"))]
    if unresolved:
        issues = [Issue(f"Reference {ref} matches no entry's fullUrl", "Bundle.entry", "not-found") for ref in dict.fromkeys(unresolved)]
        raise InvalidResource(issues[0].message, issues)
    results: dict[int, EntryResult] = {}
    for e in sorted(entries, key=lambda x: ORDER[x.method]):
        if e.method == "GET":
            continue
        if e.index in matched:
            stored = matched[e.index] or writer.read(e.rtype, e.res_id)  # type: ignore[arg-type]
            _note(writer.context, stored)
            results[e.index] = EntryResult(200, stored)
            continue
        results[e.index] = _run_entry(writer, e, base)
    # Checked now, so that a failure is this transaction's even in a unit
    # holding others; the rows go out with the unit's last flush, in one
    # statement with its AuditEvent and outbox rows. GET entries run last,
    # still inside the unit (what they read is in the same audit record as
    # what the transaction wrote), and must read the rows: written first.
    if any(e.method == "GET" for e in entries):
        writer.flush()
    else:
        writer.check()
    for e in entries:
        if e.method == "GET":
            results[e.index] = _run_get(writer.store, e, base, reader, writer.context, writer.conn)
    return results


def _batch_entry(
    store: FhirStore, e: Entry, base: str, failure: VaxhubError | None, guard: WriteGuard | None, reader: Reader | None, context: Any
) -> EntryResult:
    if failure is not None:
        return EntryResult(status_for(failure), outcome=operation_outcome(failure.issues))
    try:
        if e.method == "GET":
            return _run_get(store, e, base, reader, context)
        return store.run_unit(lambda w: _transaction(w, [e], base, reader), guard=guard, context=context)[e.index]
    except VaxhubError as exc:
        return EntryResult(status_for(exc), outcome=operation_outcome(exc.issues))

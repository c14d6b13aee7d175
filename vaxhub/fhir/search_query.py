"""Parsing of FHIR search requests (hl7.org/fhir/R4/search.html) into a typed query.

The storage layer compiles a `SearchQuery` to SQL; everything about FHIR's
search syntax (prefixes, modifiers, `system|code`, comma-separated ORs,
result parameters) is decided here so that bad input fails with a clear 400
before any SQL is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from vaxhub.errors import Issue, UnsupportedRequest
from vaxhub.fhir.search_params import SEARCH_PARAMS, SearchParam, date_range, get_param, normalise_phone, parse_reference
from vaxhub.fhir.text import fold, nfc

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
STRING_MODIFIERS = (None, "exact", "contains")
RESULT_PARAMS = {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total", "_format", "_pretty"}
# Pseudo-parameters answered from the resource table itself.
ID_PARAM = SearchParam("_id", "token", lambda r: [], (), "Logical id")
LAST_UPDATED_PARAM = SearchParam("_lastUpdated", "date", lambda r: [], (), "When the resource last changed")


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code in the system


@dataclass(frozen=True)
class DateValue:
    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ReferenceValue:
    target_type: str | None
    target_id: str


@dataclass(frozen=True)
class Criterion:
    """One search parameter; its values are OR-ed, criteria are AND-ed."""

    param: SearchParam
    modifier: str | None
    values: tuple[Any, ...]
    raw: tuple[str, str]  # the original key and value, for the self link


@dataclass(frozen=True)
class Include:
    source_type: str
    param: SearchParam
    target_type: str | None


@dataclass
class SearchQuery:
    rtype: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary_count: bool = False
    total: bool = False
    ignored: list[str] = field(default_factory=list)
    # Set by access control, never by the query string: the patient whose
    # compartment the matches must lie in, and a test included resources must pass.
    compartment: str | None = None
    visible: Callable[[Any], bool] | None = None

    def link_query(self, offset: int | None = None) -> str:
        """Query string that repeats this search, for self/next/previous links."""
        pairs: list[tuple[str, str]] = [c.raw for c in self.criteria]
        if self.sort:
            pairs.append(("_sort", ",".join(("-" if d else "") + p for p, d in self.sort)))
        pairs += [("_include", f"{i.source_type}:{i.param.name}" + (f":{i.target_type}" if i.target_type else "")) for i in self.includes]
        pairs += [("_revinclude", f"{i.source_type}:{i.param.name}") for i in self.revincludes]
        if self.total:
            pairs.append(("_total", "accurate"))
        if self.summary_count:
            pairs.append(("_summary", "count"))
        pairs.append(("_count", str(self.count)))
        pairs.append(("_offset", str(self.offset if offset is None else offset)))
        return urlencode(pairs)


def _bad(message: str, where: str) -> UnsupportedRequest:
    return UnsupportedRequest(message, [Issue(message, where, "invalid")])


def _int(value: str, name: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name} must be a whole number, not {value!r}", name) from None
    if number < minimum:
        raise _bad(f"{name} must be at least {minimum}", name)
    return number


def _token(value: str, param: SearchParam) -> TokenValue:
    if "|" in value:
        system, code = value.split("|", 1)
        token = TokenValue(system, code or None)
    else:
        token = TokenValue(None, value)
    if param.name in ("phone", "telecom") and token.code:
        token = TokenValue(token.system, normalise_phone(token.code))
    if token.code is None and not token.system:
        raise _bad(f"{param.name}: a token needs a code or a system", param.name)
    return token


def _date(value: str, name: str) -> DateValue:
    prefix = "eq"
    if value[:2] in DATE_PREFIXES and not value[:2].isdigit():
        prefix, value = value[:2], value[2:]
    elif value[:2] == "ap":
        raise _bad(f"{name}: the 'ap' prefix is not supported", name)
    try:
        start, end = date_range(value)
    except ValueError:
        raise _bad(f"{name}: {value!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)", name) from None
    return DateValue(prefix, start, end)


def _reference(value: str, param: SearchParam) -> ReferenceValue:
    parsed = parse_reference(value)
    if parsed:
        target_type, target_id = parsed
        if target_type not in param.targets:
            raise _bad(f"{param.name} refers to {', '.join(param.targets)}, not {target_type}", param.name)
        return ReferenceValue(target_type, target_id)
    if "/" in value or not value:
        raise _bad(f"{param.name}: {value!r} is not a reference", param.name)
    return ReferenceValue(param.targets[0] if len(param.targets) == 1 else None, value)


def _split_values(value: str) -> list[str]:
    # A comma means OR; "\," is a literal comma (search.html#escaping).
    parts, current, escaped = [], [], False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _criterion(rtype: str, key: str, value: str) -> Criterion:
    name, _, modifier = key.partition(":")
    modifier = modifier or None
    if name == "_id":
        param = ID_PARAM
    elif name == "_lastUpdated":
        param = LAST_UPDATED_PARAM
    else:
        param = get_param(rtype, name)
    parts = _split_values(value)
    if any(p == "" for p in parts):
        raise _bad(f"{name}: empty value", name)
    if modifier == "missing":
        if value not in ("true", "false"):
            raise _bad(f"{name}:missing takes true or false", key)
        return Criterion(param, modifier, (value == "true",), (key, value))
    if param.type == "string":
        if modifier not in STRING_MODIFIERS:
            raise _bad(f"Modifier :{modifier} is not supported on string parameter {name}", key)
        values: tuple[Any, ...] = tuple(nfc(p) if modifier == "exact" else fold(p) for p in parts)
    elif param.type == "token":
        if modifier not in (None, "not"):
            raise _bad(f"Modifier :{modifier} is not supported on token parameter {name}", key)
        values = tuple(_token(p, param) for p in parts)
    elif param.type == "date":
        if modifier is not None:
            raise _bad(f"Modifier :{modifier} is not supported on date parameter {name}", key)
        values = tuple(_date(p, name) for p in parts)
    else:
        if modifier is not None and modifier not in param.targets:
            raise _bad(f"Modifier :{modifier} is not supported on reference parameter {name}", key)
        refs = [_reference(p, param) for p in parts]
        if modifier:
            refs = [ReferenceValue(modifier, r.target_id) for r in refs]
        values = tuple(refs)
    return Criterion(param, modifier, values, (key, value))


def _include(spec: str, key: str, *, reverse: bool) -> Include:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in SEARCH_PARAMS:
        raise _bad(f"{key} must be Type:parameter[:targetType], not {spec!r}", key)
    param = get_param(parts[0], parts[1])
    if param.type != "reference":
        raise _bad(f"{key}: {parts[0]}:{parts[1]} is not a reference parameter", key)
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in param.targets:
        raise _bad(f"{key}: {parts[1]} cannot refer to {target}", key)
    return Include(parts[0], param, target)


def parse_search(
    rtype: str,
    items: Iterable[tuple[str, str]],
    *,
    default_count: int = 20,
    max_count: int = 500,
    strict: bool = False,
) -> SearchQuery:
    """Turn query-string pairs into a SearchQuery.

    Unknown parameters are ignored and listed (the self link leaves them out),
    unless `strict` (the client sent `Prefer: handling=strict`), when they are
    a 400 as the specification allows.
    """
    query = SearchQuery(rtype, count=default_count)
    for key, value in items:
        base = key.split(":", 1)[0]
        if base in RESULT_PARAMS:
            _result_param(query, key, value, max_count)
            continue
        try:
            query.criteria.append(_criterion(rtype, key, value))
        except UnsupportedRequest:
            if strict or base in SEARCH_PARAMS.get(rtype, {}) or base in ("_id", "_lastUpdated"):
                raise
            query.ignored.append(key)
    return query


def _result_param(query: SearchQuery, key: str, value: str, max_count: int) -> None:
    if key == "_count":
        query.count = min(_int(value, "_count", minimum=0), max_count)
    elif key == "_offset":
        query.offset = _int(value, "_offset", minimum=0)
    elif key == "_sort":
        for item in value.split(","):
            desc = item.startswith("-")
            name = item.lstrip("-")
            if name != "_lastUpdated" and name != "_id":
                param = get_param(query.rtype, name)
                if param.type not in ("date", "string", "token"):
                    raise _bad(f"_sort by {name} is not supported", "_sort")
            query.sort.append((name, desc))
    elif key == "_include":
        query.includes.append(_include(value, key, reverse=False))
    elif key == "_revinclude":
        inc = _include(value, key, reverse=True)
        query.revincludes.append(inc)
    elif key == "_summary":
        if value == "count":
            query.summary_count = True
        elif value != "false":
            raise _bad(f"_summary={value} is not supported (count and false are)", "_summary")
    elif key == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise _bad("_total takes none, estimate or accurate", "_total")
        query.total = value != "none"
    # _format and _pretty: JSON is the only format served, so they change nothing.

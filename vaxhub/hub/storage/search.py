"""Compiles a `SearchQuery` into SQL over the search index tables.

Each criterion becomes `resource.res_id IN (SELECT res_id FROM sp_… WHERE …)`
so that every parameter uses its own index; values of one criterion are OR-ed
inside the sub-select, criteria are AND-ed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select

from vaxhub.fhir.search_params import get_param, index_params
from vaxhub.fhir.search_query import Criterion, DateValue, ReferenceValue, SearchQuery, TokenValue
from vaxhub.hub.storage.person_reach import golden_reach, person_compartment
from vaxhub.hub.storage.tables import DateIndexRow, ReferenceIndexRow, ResourceRow, StringIndexRow, TokenIndexRow

R = ResourceRow.__table__.c
TOKEN = TokenIndexRow.__table__
STRING = StringIndexRow.__table__
DATE = DateIndexRow.__table__
REF = ReferenceIndexRow.__table__

_INDEX = {"token": TOKEN, "string": STRING, "date": DATE, "reference": REF}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token_clause(value: TokenValue, code_col, system_col) -> ColumnElement[bool]:
    parts = []
    if value.code is not None:
        parts.append(code_col == value.code)
    if value.system is not None:
        parts.append(system_col == value.system)
    return and_(*parts)


def _date_clause(value: DateValue, start, end) -> ColumnElement[bool]:
    # FHIR R4 §3.1.1.4.2.5 (search.html#date): ranges compared, not points.
    ps, pe = value.start, value.end
    return {
        "eq": and_(start >= ps, end <= pe),
        "ne": or_(start < ps, end > pe),
        "gt": end > pe,
        "lt": start < ps,
        "ge": end > ps,
        "le": start < pe,
        "sa": start >= pe,
        "eb": end <= ps,
    }[value.prefix]


def _value_clause(crit: Criterion, value, table) -> ColumnElement[bool]:
    kind = crit.param.type
    c = table.c
    if kind == "token":
        return _token_clause(value, c.value, c.system)
    if kind == "string":
        if crit.modifier == "exact":
            return c.value_exact == value
        pattern = ("%" if crit.modifier == "contains" else "") + _like_escape(value) + "%"
        return c.value_fold.like(pattern, escape="\\")
    if kind == "date":
        return _date_clause(value, c.start, c.end)
    ref: ReferenceValue = value
    if ref.target_type in (None, "Patient") and "Patient" in crit.param.targets:
        # A golden Patient of the master patient index reaches every linked record.
        clause = c.target_id.in_(golden_reach(ref.target_id))
    else:
        clause = c.target_id == ref.target_id
    return and_(clause, c.target_type == ref.target_type) if ref.target_type else clause


def _criterion_clause(rtype: str, crit: Criterion) -> ColumnElement[bool]:
    name = crit.param.name
    if name == "_id":
        ids = [v.code for v in crit.values]
        clause = R.res_id.in_(ids)
        return not_(clause) if crit.modifier == "not" else clause
    if name == "_lastUpdated":
        ranges = [_date_clause(v, R.last_updated, R.last_updated) for v in crit.values]
        return or_(*ranges)
    table = _INDEX[crit.param.type]
    c = table.c
    params = index_params(rtype, name)
    base = and_(c.res_type == rtype, c.param == name if len(params) == 1 else c.param.in_(params))
    if crit.modifier == "missing":
        present = exists().where(base, c.res_id == R.res_id)
        return not_(present) if crit.values[0] else present
    matching = select(c.res_id).where(base, or_(*[_value_clause(crit, v, table) for v in crit.values]))
    if crit.modifier == "not":
        return R.res_id.not_in(matching)
    return R.res_id.in_(matching)


def where_clause(query: SearchQuery) -> ColumnElement[bool]:
    clauses = [R.res_type == query.rtype, R.deleted == false()]
    if query.compartment is not None:
        # A citizen's compartment spans every record linked to their person.
        clauses.append(R.patient_id.in_(person_compartment(query.compartment)))
    clauses += [_criterion_clause(query.rtype, crit) for crit in query.criteria]
    return and_(*clauses)


def _sort_key(query: SearchQuery, name: str):
    if name == "_lastUpdated":
        return R.last_updated
    if name == "_id":
        return R.res_id
    param = get_param(query.rtype, name)
    table = _INDEX[param.type]
    column = table.c[{"date": "start", "string": "value_fold", "token": "value"}[param.type]]
    return (
        select(func.min(column))
        .where(table.c.res_type == query.rtype, table.c.param.in_(index_params(query.rtype, name)), table.c.res_id == R.res_id)
        .scalar_subquery()
    )


def page_select(query: SearchQuery) -> Select:
    """The page of matching resources, in the requested order (ties by id)."""
    order = []
    for name, desc in query.sort:
        key = _sort_key(query, name)
        order.append(key.desc() if desc else key.asc())
    order.append(R.res_id)
    return (
        select(R.res_id, R.version, R.last_updated, R.content)
        .where(where_clause(query))
        .order_by(*order)
        .offset(query.offset)
        .limit(query.count + 1)  # one more tells whether a next page exists
    )


def count_select(query: SearchQuery) -> Select:
    return select(func.count()).select_from(ResourceRow.__table__).where(where_clause(query))


__all__ = ["page_select", "count_select", "where_clause"]

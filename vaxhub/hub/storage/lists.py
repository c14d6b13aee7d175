"""`column IN (a list)` whose statement text does not depend on the list.

`column.in_(bindparam(…, expanding=True))` renders one placeholder per value
each time it runs: SQLAlchemy rewrites the compiled text, psycopg splits the
long query again, and PostgreSQL parses and plans a statement it has never
seen. For the link worker's batch reads (a few thousand blocking keys and
record ids per pass) that was about a tenth of its CPU. `one_of(column,
"name")` is `column = ANY(:name)` on PostgreSQL, the list bound as one array,
so the text stays fixed and psycopg keeps it prepared; elsewhere (SQLite) it
is the expanding `IN`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class OneOf(ColumnElement[bool]):
    """True where the column's value is in the list bound under `name`."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition already: no "= 1" where booleans are integers
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("name", InternalTraversal.dp_string)]

    def __init__(self, column: ColumnElement[Any], name: str):
        self.column = column
        self.name = name


def one_of(column: ColumnElement[Any], name: str) -> OneOf:
    return OneOf(column, name)


@compiles(OneOf)
def _expanding_in(element: OneOf, compiler, **kw) -> str:  # noqa: ANN001 - a SQL compiler
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(OneOf, "postgresql")
def _any_of_array(element: OneOf, compiler, **kw) -> str:  # noqa: ANN001 - a SQL compiler
    return compiler.process(element.column == any_(bindparam(element.name, type_=ARRAY(element.column.type))), **kw)

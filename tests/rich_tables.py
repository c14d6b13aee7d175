"""The cells of a rich `Table`, for tests of the reports the benches print."""

from __future__ import annotations

from rich.table import Table


def cells(rendered: Table) -> list[list[str]]:
    """The table's cells, row by row."""
    columns = [list(c.cells) for c in rendered.columns]
    return [list(row) for row in zip(*columns)]

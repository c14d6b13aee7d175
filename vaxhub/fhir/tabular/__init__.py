"""CSV/Excel backlog ingestion, the pure half: read rows, match the Ministry's
columns, map each row to a Patient and its Immunizations, write the row
report. No I/O beyond the bytes handed in; the hub stores the entries
(`vaxhub.hub.ingest.imports`)."""

from .columns import REPORT_HEADERS, ColumnMap, match_columns
from .legacy_text import legacy_text_message, mangled_reason
from .reader import Sheet, open_sheet
from .report import ReportRow, report_rows, write_csv, write_xlsx
from .rows import RowIssue, RowResult, map_row, phone_sharing_warnings

__all__ = [
    "REPORT_HEADERS",
    "ColumnMap",
    "ReportRow",
    "RowIssue",
    "RowResult",
    "Sheet",
    "legacy_text_message",
    "mangled_reason",
    "map_row",
    "match_columns",
    "open_sheet",
    "phone_sharing_warnings",
    "report_rows",
    "write_csv",
    "write_xlsx",
]

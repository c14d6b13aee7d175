"""The row report: every rejected or warned row, as the site wrote it, with
what to fix, in the file's own format so it can be corrected and sent again.

Layout: the original header, then three columns (`REPORT_HEADERS`): the source
row number, the result ("bị từ chối / rejected" or "đã lưu, có cảnh báo /
stored with warnings") and the problems, each as "[column] reason". The
importer ignores those three columns, and rows already stored are recognised
by their identifiers, so the whole report can be re-submitted once fixed.
An `.xlsx` report has a second sheet with one line per problem. A `.csv`
report is UTF-8 with a BOM, which Excel needs to show Vietnamese correctly.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable

from .columns import REPORT_HEADERS
from .rows import RowIssue

REJECTED = "bị từ chối / rejected"
WARNED = "đã lưu, có cảnh báo / stored with warnings"
FILE_LEVEL_ROW = 0  # issues about the file as a whole


@dataclass(frozen=True)
class ReportRow:
    row: int
    cells: list[object]
    issues: list[RowIssue]

    @property
    def result(self) -> str:
        return REJECTED if any(i.severity == "error" for i in self.issues) else WARNED

    @property
    def problems(self) -> str:
        return "; ".join(f"[{i.column}] {i.message}" if i.column else i.message for i in self.issues)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M") if (value.hour or value.minute) else value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return "" if value is None else value


def report_rows(rows: Iterable[tuple[int, list[object]]], issues: dict[int, list[RowIssue]]) -> Iterable[ReportRow]:
    for number, cells in rows:
        if number in issues:
            yield ReportRow(number, cells, issues[number])


def write_csv(headers: list[str], rows: Iterable[ReportRow], file_issues: Iterable[RowIssue] = ()) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([*headers, *REPORT_HEADERS])
    for issue in file_issues:
        writer.writerow([""] * len(headers) + ["", REJECTED, issue.message])
    for r in rows:
        cells = [_plain(c) for c in r.cells] + [""] * (len(headers) - len(r.cells))
        writer.writerow([*cells[: len(headers)], r.row, r.result, r.problems])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def write_xlsx(headers: list[str], rows: Iterable[ReportRow], file_issues: Iterable[RowIssue] = ()) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    main = book.create_sheet("Báo cáo - Report")
    details = book.create_sheet("Chi tiết - Details")
    main.append([*headers, *REPORT_HEADERS])
    details.append(["Dòng / Row", "Cột / Column", "Mức / Severity", "Lỗi / Problem"])
    for issue in file_issues:
        main.append([""] * len(headers) + ["", REJECTED, issue.message])
        details.append(["", issue.column, issue.severity, issue.message])
    for r in rows:
        cells = [_plain(c) for c in r.cells] + [""] * (len(headers) - len(r.cells))
        main.append([*cells[: len(headers)], r.row, r.result, r.problems])
        for issue in r.issues:
            details.append([r.row, issue.column, issue.severity, issue.message])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

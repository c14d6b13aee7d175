"""Rows of a backlog file: `.xlsx` (python-calamine) or `.csv`.

CSV text is UTF-8, with or without the byte-order mark Excel writes, or UTF-16
with its BOM ("Unicode text" exports). Bytes that are not UTF-8 are the mark of
a legacy 8-bit encoding (TCVN3, VNI, Windows-1258): the text is read as cp1252
so that rows still have row numbers, and `legacy_encoding` is set so that every
cell with non-ASCII text is refused rather than stored as garbage. The
delimiter (comma, semicolon or tab) is sniffed from the first lines.

Row numbers are the ones a person sees in Excel or a text editor: 1-based,
counting title rows and the header row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterator

from vaxhub.errors import Issue, MalformedInput

from .columns import ColumnMap, find_header_row, match_columns

HEADER_SEARCH_ROWS = 15
XLSX_MAGIC = b"PK\x03\x04"


@dataclass
class Sheet:
    """A file opened for reading: its header and a fresh iterator over data rows."""

    kind: str  # "xlsx" or "csv"
    header_row: int  # 1-based row number of the header
    headers: list[str]
    columns: ColumnMap
    legacy_encoding: bool
    total_rows: int  # data rows below the header, empty ones included
    _content: bytes
    _text: str | None = None

    def rows(self) -> Iterator[tuple[int, list[object]]]:
        """(row number, cells) for every data row below the header."""
        for number, cells in _raw_rows(self.kind, self._content, self._text):
            if number > self.header_row:
                yield number, cells


def file_kind(filename: str, content: bytes) -> str:
    if content.startswith(XLSX_MAGIC) or filename.lower().endswith((".xlsx", ".xlsm")):
        return "xlsx"
    return "csv"


def decode_csv(content: bytes) -> tuple[str, bool]:
    """(text, read with a legacy 8-bit encoding)."""
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    elif content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16"), False
        except UnicodeDecodeError:
            pass
    try:
        return content.decode("utf-8"), False
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace"), True


def _csv_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _raw_rows(kind: str, content: bytes, text: str | None) -> Iterator[tuple[int, list[object]]]:
    if kind == "xlsx":
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
            sheet = workbook.get_sheet_by_index(0)
            # Calamine starts at the first used cell; keep Excel's row numbers.
            first = (sheet.start or (0, 0))[0] + 1
            for offset, cells in enumerate(sheet.iter_rows()):
                yield first + offset, list(cells)
        except MalformedInput:
            raise
        except Exception as exc:  # calamine raises its own types for broken archives
            raise MalformedInput(f"The workbook cannot be read: {exc}", [Issue(f"Unreadable .xlsx file: {exc}", "file", "structure")]) from None
        return
    assert text is not None
    reader = csv.reader(io.StringIO(text, newline=""), _csv_dialect(text))
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, list(cells)
    except csv.Error as exc:
        raise MalformedInput(f"The CSV file cannot be read: {exc}", [Issue(f"Unreadable CSV: {exc}", "file", "structure")]) from None


def open_sheet(filename: str, content: bytes) -> Sheet:
    """Read the header and count the rows; raises `MalformedInput` when the file
    is not a readable table or has no recognisable header row."""
    if not content:
        raise MalformedInput("The file is empty", [Issue("The file is empty", "file", "required")])
    kind = file_kind(filename, content)
    text, legacy = (None, False) if kind == "xlsx" else decode_csv(content)
    if text is not None and "\x00" in text:
        raise MalformedInput("The file is not a CSV text file", [Issue("Binary content in a CSV file", "file", "structure")])
    head: list[tuple[int, list[object]]] = []
    total = 0
    for number, cells in _raw_rows(kind, content, text):
        if len(head) < HEADER_SEARCH_ROWS:
            head.append((number, cells))
        total = number
    found = find_header_row([cells for _, cells in head])
    if found is None:
        message = "No header row found: the first rows must name the columns (họ và tên, ngày sinh, loại vắc xin, ngày tiêm …)"
        raise MalformedInput(message, [Issue(message, "file", "structure")])
    header_number, header_cells = head[found]
    headers = ["" if c is None else str(c).strip() for c in header_cells]
    columns = match_columns(headers)
    if columns.problems:
        message = "The columns cannot be read: " + "; ".join(columns.problems)
        if legacy:
            message = "The file is not UTF-8 (a legacy encoding such as TCVN3, VNI or Windows-1258), so its headers cannot be read; save it as CSV UTF-8 and submit it again"
            raise MalformedInput(message, [Issue(message, "file", "structure")])
        raise MalformedInput(message, [Issue(p, "header", "structure") for p in columns.problems])
    return Sheet(kind, header_number, headers, columns, legacy, max(total - header_number, 0), content, text)

"""Backlog spreadsheets as sites make them, for the tabular and import tests."""

from __future__ import annotations

import csv
import io

HEADER = ["STT", "Họ và tên", "Giới tính", "Ngày sinh", "Số điện thoại", "Số CCCD/CMND", "Số thẻ BHYT", "Dân tộc", "Quốc tịch",
          "Tỉnh", "Huyện", "Xã", "Địa chỉ", "Mũi 1 - Loại vắc xin", "Mũi 1 - Ngày tiêm", "Mũi 1 - Lô vắc xin", "Mũi 1 - Mã cơ sở tiêm",
          "Mũi 2 - Loại vắc xin", "Mũi 2 - Ngày tiêm", "Mũi 2 - Lô vắc xin", "Mũi 2 - Mã cơ sở tiêm"]


def person(n: int, name: str = "Nguyễn Văn An", *, sex: str = "Nam", birth: str = "04/05/1990", phone: str = "0912345678",
           cccd: str = "079090012345", vaccine1: str = "AstraZeneca", date1: str = "15/07/2021", vaccine2: str = "Pfizer",
           date2: str = "15/09/2021") -> list[str]:
    return [str(n), name, sex, birth, phone, cccd, "", "Kinh", "Việt Nam", "TP Hồ Chí Minh", "Quận 1", "Phường Bến Nghé", "12 Lê Lợi",
            vaccine1, date1, "A1234" if vaccine1 else "", "79001" if vaccine1 else "", vaccine2, date2 if vaccine2 else "", "FF123" if vaccine2 else "", "79001" if vaccine2 else ""]


def messy_rows() -> list[list[str]]:
    """One good row and one of each mistake people really make."""
    return [
        person(1),  # good
        person(2, "Trần Thị Hoa", sex="Nữ", birth="1956", cccd="", phone="0912345678"),  # missing ID, year-only birth, family phone
        person(3, "Tran Van Binh", birth="1958", cccd="079058000111", phone="0912345678"),  # diacritics stripped, same phone
        person(4, "Lê Thị Cúc", sex="Nữ", birth="12/03/1985", cccd="001185000222", date1="07/25/2021", vaccine2=""),  # month-first date
        person(5, "Phạm Văn Dũng", birth="1970", cccd="001070000333", vaccine1="Sinovac XYZ", vaccine2=""),  # unknown vaccine
        person(6, "NguyÔn V¨n Em", birth="1980", cccd="001080000444", vaccine2=""),  # TCVN3 font text
    ]


def csv_bytes(rows: list[list[str]], *, bom: bool = True, title: bool = True) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    if title:
        writer.writerow(["DANH SÁCH NGƯỜI ĐÃ TIÊM VẮC XIN PHÒNG COVID-19"])
    writer.writerow(HEADER)
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[list[object]], header: list[str] = HEADER) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Sheet1")
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

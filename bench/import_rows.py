"""Backlog import benchmark: a generated 100,000-row spreadsheet imported with
`vaxhub import` (progress bar on), as .csv and as .xlsx, on a fresh SQLite
database each; prints rows/s and what was stored. The floor, measured in the
same run, is reading and mapping the rows (python-calamine / csv + row
mapping) with no storage.

Every dose is recorded at the uploading site (`SITE`): an import writes as
that site, which may not write another site's records, so rows naming
another site are rejected (as they should be) and would make a cheap,
misleading rows/s.

    .venv/bin/python bench/import_rows.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tabular_files import HEADER, csv_bytes, xlsx_bytes  # noqa: E402
from vaxhub.fhir import synthetic  # noqa: E402
from vaxhub.fhir.tabular import map_row, open_sheet  # noqa: E402

console = Console(width=120)
SITE = "79001"  # the uploading site, and the site of every dose in the sheet
NAMES = {"VAXZEVRIA": "AstraZeneca", "COMIRNATY": "Pfizer", "SPIKEVAX": "Moderna", "BBIBP-CORV": "Vero Cell"}


def rows(count: int) -> list[list[str]]:
    population = synthetic.generate_population(count, seed=11)
    out = []
    for n, person in enumerate(population.people, start=1):
        doses = population.doses_of(person)[:2]
        cells = [str(n), person.full_name, "Nam" if person.sex == "male" else "Nữ",
                 person.birth_date.strftime("%d/%m/%Y") if person.birth_date else str(person.birth_year),
                 person.phone or "", person.cccd or "", "", "Kinh", "Việt Nam", person.province, "", "", ""]
        for i in range(2):
            if i < len(doses):
                d = doses[i]
                cells += [NAMES.get(d.vaccine.code, d.vaccine.display), d.occurred.strftime("%d/%m/%Y"), d.lot_number, SITE]
            else:
                cells += ["", "", "", ""]
        if not doses:
            cells[13:15] = ["AstraZeneca", "15/08/2021"]
        out.append(cells)
    return out


def floor(path: Path) -> float:
    sheet = open_sheet(path.name, path.read_bytes())
    start = time.perf_counter()
    n = 0
    for number, cells in sheet.rows():
        map_row(sheet.columns, number, cells, site_code="79001", today=date(2023, 1, 1))
        n += 1
    return n / (time.perf_counter() - start)


def run_import(path: Path, workdir: Path) -> tuple[float, dict[str, int]]:
    """Seconds the import took, and how many rows, Patients and Immunizations it stored."""
    database = workdir / (path.suffix[1:] + ".db")
    env = {**os.environ, "VAXHUB_DATABASE_URL": f"sqlite:///{database}", "VAXHUB_DATA_DIR": str(workdir / "data")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vaxhub.hub.cli", "import", str(path), "--site", SITE], cwd=ROOT, env=env, check=True)
    seconds = time.perf_counter() - start
    with sqlite3.connect(database) as db:
        stored = dict(db.execute("SELECT res_type, count(*) FROM resource WHERE res_type IN ('Patient', 'Immunization') GROUP BY res_type").fetchall())
        stored["rows"], stored["rejected"] = db.execute("SELECT rows_stored, rows_rejected FROM import_job").fetchone()
    return seconds, stored


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    data = rows(args.rows)
    table = Table(title=f"Backlog import, {args.rows:,} rows (2 doses max per row), SQLite")
    for column in ("file", "size", "import s", "rows/s", "rows stored / rejected", "Patients, Immunizations", "floor rows/s (read+map)"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind in ("csv", "xlsx"):
            path = work / f"backlog.{kind}"
            path.write_bytes(csv_bytes(data) if kind == "csv" else xlsx_bytes(data, HEADER))
            seconds, stored = run_import(path, work)
            table.add_row(kind, f"{path.stat().st_size / 1e6:.1f} MB", f"{seconds:.1f}", f"{args.rows / seconds:,.0f}",
                          f"{stored['rows']:,} / {stored['rejected']:,}", f"{stored.get('Patient', 0):,}, {stored.get('Immunization', 0):,}",
                          f"{floor(path):,.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

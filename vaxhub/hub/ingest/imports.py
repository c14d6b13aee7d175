"""Spreadsheet import jobs: the file and the job's state live in the database,
so any hub process (or `vaxhub import`) can run, watch or resume a job.

A job reads rows in batches; each batch's valid rows become one transaction
Bundle of conditional creates stored through `process_bundle`. When a batch
fails as a whole (an identifier held by another record, a person matched two
ways) its rows are stored one by one, the patient matched on any of its
identifiers, and the rows that still fail are reported. After each batch the
checkpoint (`next_row`), the counts and the batch's report lines are written
in one transaction. A job killed between a batch and its checkpoint re-runs
that batch on resume: conditional creates make the second run store nothing
new, so there are neither duplicates nor losses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import orjson
from sqlalchemy import and_, func, insert, or_, select, update

from vaxhub.errors import Conflict, InputError, Issue, NotFound, VaxhubError
from vaxhub.fhir.conditional import post_entry
from vaxhub.fhir.tabular.rows import SITE_CODE
from vaxhub.fhir.tabular import RowIssue, RowResult, Sheet, map_row, open_sheet, phone_sharing_warnings, report_rows, write_csv, write_xlsx
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.operations.transaction import process_bundle
from vaxhub.hub.security.policy import SiteWriteGuard
from vaxhub.hub.security.principal import SYSTEM, Principal
from vaxhub.hub.security.scopes import parse_scopes
from vaxhub.hub.storage.import_tables import ImportIssueRow, ImportJobRow
from vaxhub.hub.storage.store import FhirStore

log = logging.getLogger("vaxhub.imports")
JOBS = ImportJobRow.__table__
ISSUES = ImportIssueRow.__table__
BATCH_ROWS = 200
STALE_AFTER = timedelta(seconds=30)
_VIET_NAM = timezone(timedelta(hours=7))
Progress = Callable[[int, int], None]  # (rows done, total rows)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class JobStatus:
    id: str
    site_code: str
    filename: str
    status: str
    total_rows: int
    rows_done: int
    rows_stored: int
    rows_rejected: int
    rows_warned: int
    patients_created: int
    doses_created: int
    doses_existing: int
    error: str | None
    created_at: str
    finished_at: str | None

    def to_json(self) -> dict:
        return asdict(self)


class JobBusy(Conflict):
    """Another live process is running the job."""


def _status(row) -> JobStatus:
    return JobStatus(
        row.id, row.site_code, row.filename, row.status, row.total_rows, row.rows_done, row.rows_stored, row.rows_rejected,
        row.rows_warned, row.patients_created, row.doses_created, row.doses_existing, row.error,
        row.created_at.isoformat() + "Z", row.finished_at.isoformat() + "Z" if row.finished_at else None,
    )


def _phone_digits(cells: list[object], sheet: Sheet) -> str | None:
    column = sheet.columns.person.get("phone")
    if column is None or column.index >= len(cells) or cells[column.index] in (None, ""):
        return None
    digits = "".join(ch for ch in str(cells[column.index]).split(".")[0] if ch.isdigit())
    return digits[-9:] if len(digits) >= 9 else None


IMPORT_SCOPES = tuple(parse_scopes("system/Patient.crus system/Immunization.crus"))


class ImportJobs:
    def __init__(self, store: FhirStore, *, base: str = "urn:vaxhub:import", batch_rows: int = BATCH_ROWS, clock: Callable[[], datetime] = utcnow, today: Callable[[], date] | None = None):
        self.store = store
        self.base = base
        self.batch_rows = batch_rows
        self.clock = clock
        self.today = today or (lambda: datetime.now(_VIET_NAM).date())
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    # ----------------------------------------------------------------- jobs

    def create(self, *, site_code: str, filename: str, content: bytes) -> JobStatus:
        """A queued job holding the file; refuses a file that cannot be read at all."""
        if not SITE_CODE.match(site_code or ""):
            raise InputError("site must be the uploading site's code (letters, digits, '.', '-')", [Issue("Bad site code", "site", "invalid")])
        open_sheet(filename, content)  # MalformedInput now rather than a failed job later
        now = self.clock()
        job_id = str(uuid.uuid4())
        row = {
            "id": job_id, "site_code": site_code, "filename": os.path.basename(filename)[:255] or "upload",
            "file_sha256": hashlib.sha256(content).hexdigest(), "content": content, "status": "queued",
            "total_rows": 0, "next_row": 0, "rows_done": 0, "rows_stored": 0, "rows_rejected": 0, "rows_warned": 0,
            "patients_created": 0, "doses_created": 0, "doses_existing": 0, "error": None, "owner": None,
            "created_at": now, "updated_at": now, "heartbeat_at": None, "finished_at": None,
        }
        self.store.run_unit(lambda w: w.conn.execute(insert(JOBS).values(**row)))
        return self.status(job_id)

    def status(self, job_id: str) -> JobStatus:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"Import job {job_id!r} is not known")
        return _status(row)

    def unfinished(self, sha256: str, site_code: str) -> str | None:
        """The newest unfinished job for the same file and site, to resume."""
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(JOBS.c.id)
                .where(JOBS.c.file_sha256 == sha256, JOBS.c.site_code == site_code, JOBS.c.status.in_(("queued", "running")))
                .order_by(JOBS.c.created_at.desc())
            ).scalar()

    def _claim(self, job_id: str) -> None:
        now = self.clock()
        stale = now - STALE_AFTER
        claimable = or_(JOBS.c.status == "queued", and_(JOBS.c.status == "running", or_(JOBS.c.heartbeat_at.is_(None), JOBS.c.heartbeat_at < stale, JOBS.c.owner == self.owner)))
        changed = self.store.run_unit(
            lambda w: w.conn.execute(
                update(JOBS).where(JOBS.c.id == job_id, claimable).values(status="running", owner=self.owner, heartbeat_at=now, updated_at=now)
            ).rowcount
        )
        if changed != 1:
            current = self.status(job_id)
            if current.status == "running":
                raise JobBusy(f"Import job {job_id} is being run by another process; it can be resumed once that stops (no heartbeat for {STALE_AFTER.seconds} s)")
            raise Conflict(f"Import job {job_id} is {current.status}; it cannot be run again")

    # ------------------------------------------------------------------ run

    def run(self, job_id: str, *, progress: Progress | None = None) -> JobStatus:
        """Run (or resume) a job to its end. Bad rows are reported, never raised;
        a file that cannot be read fails the job with its reason."""
        self._claim(job_id)
        with self.store.engine.connect() as conn:
            job = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        # The job writes as its site, with the site's rights, and each batch is audited.
        self._writer = Principal(SYSTEM, f"import:{job_id}", client_id=f"import:{job_id}", site_code=job.site_code, scopes=IMPORT_SCOPES)
        try:
            sheet = open_sheet(job.filename, job.content)
        except VaxhubError as exc:
            self._finish(job_id, "failed", exc.message)
            return self.status(job_id)
        self._update(job_id, total_rows=sheet.total_rows)
        phones: dict[str, dict[str, list[int]]] = {}
        resume_from = job.next_row
        done = job.rows_done
        batch: list[RowResult] = []
        last_row = sheet.header_row
        for number, cells in sheet.rows():
            last_row = number
            if number < resume_from:
                # Stored before an interruption: only the phone column is needed again.
                if _phone_digits(cells, sheet):
                    result = map_row(sheet.columns, number, cells, site_code=job.site_code, today=self.today(), legacy_encoding=sheet.legacy_encoding)
                    if result.phone and not result.rejected:
                        phones.setdefault(result.phone, {}).setdefault(result.person_key, []).append(number)
                continue
            result = map_row(sheet.columns, number, cells, site_code=job.site_code, today=self.today(), legacy_encoding=sheet.legacy_encoding)
            if result.phone and not result.rejected:
                phones.setdefault(result.phone, {}).setdefault(result.person_key, []).append(number)
            batch.append(result)
            if len(batch) >= self.batch_rows:
                done += self._store_batch(job_id, batch, next_row=number + 1)
                batch = []
                if progress:
                    progress(done, sheet.total_rows)
        if batch:
            done += self._store_batch(job_id, batch, next_row=last_row + 1)
            if progress:
                progress(done, sheet.total_rows)
        shared = phone_sharing_warnings(phones, sheet.columns)
        self._write_issues(job_id, shared)
        self._finish(job_id, "done", None)
        return self.status(job_id)

    def _store_batch(self, job_id: str, batch: list[RowResult], *, next_row: int) -> int:
        counts = {"rows_stored": 0, "rows_rejected": 0, "rows_warned": 0, "patients_created": 0, "doses_created": 0, "doses_existing": 0}
        issues: list[RowIssue] = []
        good = [r for r in batch if not r.empty and not r.rejected]
        try:
            self._store_rows(good, counts, widen=False)
        except VaxhubError:
            for result in good:
                try:
                    self._store_rows([result], counts, widen=True)
                except VaxhubError as exc:
                    message = exc.issues[0].message if exc.issues else exc.message
                    result.issues.append(RowIssue(result.row, "", f"not stored: {message}"))
        for result in batch:
            if result.empty:
                continue
            issues += result.issues
            if result.rejected:
                counts["rows_rejected"] += 1
            else:
                counts["rows_stored"] += 1
                if result.warned:
                    counts["rows_warned"] += 1
        rows = sum(1 for r in batch if not r.empty)
        self._checkpoint(job_id, next_row, rows, counts, issues)
        return rows

    def _store_rows(self, results: list[RowResult], counts: dict[str, int], *, widen: bool) -> None:
        entries = []
        for result in results:
            row_entries = result.entries
            if widen:
                patient = row_entries[0]
                row_entries = [post_entry(patient["resource"], patient["resource"]["identifier"], patient["fullUrl"]), *row_entries[1:]]
            entries += row_entries
        if not entries:
            return
        # A copy: the transaction rewrites references in place, and a row-by-row retry needs the originals.
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": orjson.loads(orjson.dumps(entries))}
        audit = Interaction("transaction", "IMPORT", f"/imports/{self._writer.subject.removeprefix('import:')}", principal=self._writer)
        response = process_bundle(self.store, bundle, base=self.base, max_entries=len(entries) + 1, guard=SiteWriteGuard(self._writer), interaction=audit)
        for entry, answer in zip(entries, response["entry"]):
            created = answer["response"]["status"].startswith("201")
            if entry["resource"]["resourceType"] == "Patient":
                counts["patients_created"] += created
            else:
                counts["doses_created" if created else "doses_existing"] += 1

    # ------------------------------------------------------------- bookkeeping

    def _checkpoint(self, job_id: str, next_row: int, rows: int, counts: dict[str, int], issues: list[RowIssue]) -> None:
        now = self.clock()

        def work(w) -> None:
            values = {name: getattr(JOBS.c, name) + value for name, value in counts.items()}
            w.conn.execute(
                update(JOBS).where(JOBS.c.id == job_id).values(
                    next_row=next_row, rows_done=JOBS.c.rows_done + rows, heartbeat_at=now, updated_at=now, **values
                )
            )
            self._insert_issues(w.conn, job_id, issues)

        self.store.run_unit(work)

    def _insert_issues(self, conn, job_id: str, issues: list[RowIssue]) -> None:
        if not issues:
            return
        rows = {i.row for i in issues}
        existing = dict(
            conn.execute(
                select(ISSUES.c.row, func.max(ISSUES.c.seq)).where(ISSUES.c.job_id == job_id, ISSUES.c.row.in_(rows)).group_by(ISSUES.c.row)
            ).all()
        )
        seqs: dict[int, int] = {}
        values = []
        for issue in issues:
            seq = seqs.get(issue.row, existing.get(issue.row, -1)) + 1
            seqs[issue.row] = seq
            values.append({"job_id": job_id, "row": issue.row, "seq": seq, "column_name": issue.column[:255], "severity": issue.severity, "message": issue.message})
        conn.execute(insert(ISSUES), values)

    def _write_issues(self, job_id: str, issues: list[RowIssue]) -> None:
        if not issues:
            return
        warned_rows = {i.row for i in issues}

        def work(w) -> None:
            # Rows warned only now (a shared phone) count as warned rows.
            already = {r for (r,) in w.conn.execute(select(ISSUES.c.row).where(ISSUES.c.job_id == job_id, ISSUES.c.row.in_(warned_rows))).all()}
            self._insert_issues(w.conn, job_id, issues)
            newly = len(warned_rows - already)
            if newly:
                w.conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(rows_warned=JOBS.c.rows_warned + newly))

        self.store.run_unit(work)

    def _update(self, job_id: str, **values) -> None:
        now = self.clock()
        self.store.run_unit(lambda w: w.conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(updated_at=now, heartbeat_at=now, **values)))

    def _finish(self, job_id: str, status: str, error: str | None) -> None:
        now = self.clock()
        self._update(job_id, status=status, error=error, finished_at=now)

    # ---------------------------------------------------------------- report

    def issues(self, job_id: str) -> dict[int, list[RowIssue]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(ISSUES).where(ISSUES.c.job_id == job_id).order_by(ISSUES.c.row, ISSUES.c.seq)).all()
        out: dict[int, list[RowIssue]] = {}
        for r in rows:
            out.setdefault(r.row, []).append(RowIssue(r.row, r.column_name, r.message, r.severity))
        return out

    def report(self, job_id: str, fmt: str | None = None) -> tuple[bytes, str, str]:
        """(content, media type, file name) of the row report, as .xlsx or .csv
        (by default the uploaded file's own format)."""
        with self.store.engine.connect() as conn:
            job = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if job is None:
            raise NotFound(f"Import job {job_id!r} is not known")
        issues = self.issues(job_id)
        stem = os.path.splitext(job.filename)[0] or "import"
        try:
            sheet = open_sheet(job.filename, job.content)
            headers, rows = sheet.headers, report_rows(sheet.rows(), issues)
            kind = fmt or sheet.kind
            file_issues: list[RowIssue] = []
        except VaxhubError as exc:
            headers, rows, kind = [], iter(()), fmt or "csv"
            file_issues = [RowIssue(0, "", i.message) for i in exc.issues]
        if kind == "xlsx":
            media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            return write_xlsx(headers, rows, file_issues), media, f"{stem}.report.xlsx"
        return write_csv(headers, rows, file_issues), "text/csv; charset=utf-8", f"{stem}.report.csv"


def import_file(jobs: ImportJobs, *, site_code: str, filename: str, content: bytes, progress: Progress | None = None) -> JobStatus:
    """Create a job for the file, or resume the unfinished one for the same
    file and site, and run it (the `vaxhub import` command)."""
    existing = jobs.unfinished(hashlib.sha256(content).hexdigest(), site_code)
    job_id = existing or jobs.create(site_code=site_code, filename=filename, content=content).id
    return jobs.run(job_id, progress=progress)

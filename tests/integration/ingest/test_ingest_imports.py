"""Backlog imports: upload and poll, row report, re-import, interrupted jobs (SQLite and PostgreSQL)."""

import csv
import io
import time
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select

from tests.tabular_files import csv_bytes, messy_rows, person, xlsx_bytes
from vaxhub.hub.ingest.imports import ImportJobs, JobBusy, import_file
from vaxhub.hub.storage.tables import ResourceRow

TODAY = date(2022, 6, 1)


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(ResourceRow.res_type, func.count()).group_by(ResourceRow.res_type)).all())


def _wait(client, job_id: str) -> dict:
    for _ in range(200):
        body = client.get(f"/imports/{job_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(body)


def _post_file(client, name: str, content: bytes):
    # The fixture's client sends a FHIR content type by default; a multipart body needs its own.
    request = httpx.Request("POST", "http://hub.test/imports", files={"file": (name, content)}, data={"site": "79001"})
    return client.post("/imports", content=request.read(), headers={"content-type": request.headers["content-type"]})


def _upload(client, name: str, content: bytes) -> dict:
    r = _post_file(client, name, content)
    assert r.status_code == 202, r.text
    assert r.headers["location"].endswith(r.json()["id"])
    return r.json()


def test_upload_then_poll_then_report(client, engine):
    job = _wait(client, _upload(client, "backlog.csv", csv_bytes(messy_rows()))["id"])
    assert job["status"] == "done" and job["rows_done"] == 6
    assert (job["rows_stored"], job["rows_rejected"]) == (3, 3)
    assert job["doses_created"] == 6
    report = client.get(f"/imports/{job['id']}/report")
    assert report.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0][-3:] == ["Dòng gốc / Source row", "Kết quả / Result", "Lỗi cần sửa / Problems"]
    by_row = {line[-3]: line for line in lines[1:]}
    assert set(by_row) == {"3", "4", "5", "6", "7", "8"}  # the good row too: its phone is shared
    assert "swapped" in by_row["6"][-1] and by_row["6"][-2].startswith("bị từ chối")
    assert "Sinovac XYZ" in by_row["7"][-1]
    assert "shared by 3 people" in by_row["4"][-1]
    xlsx = client.get(f"/imports/{job['id']}/report", params={"format": "xlsx"})
    assert xlsx.content.startswith(b"PK")


def test_reimport_and_fixed_file_never_duplicate_doses(client, engine):
    first = _wait(client, _upload(client, "backlog.csv", csv_bytes(messy_rows()))["id"])
    stored = _counts(engine)
    again = _wait(client, _upload(client, "backlog.csv", csv_bytes(messy_rows()))["id"])
    assert _counts(engine) == stored and again["doses_created"] == 0 and again["doses_existing"] == first["doses_created"]
    # the site fixes the report's rows and sends them back
    report = client.get(f"/imports/{first['id']}/report").content.decode("utf-8-sig")
    fixed = report.replace("07/25/2021", "25/07/2021").replace("Sinovac XYZ", "Vero Cell").replace("NguyÔn V¨n Em", "Nguyễn Văn Em")
    fixed = fixed.replace("Tran Van Binh", "Trần Văn Bình")
    third = _wait(client, _upload(client, "backlog.report.csv", fixed.encode("utf-8"))["id"])
    assert third["rows_rejected"] == 0
    after = _counts(engine)
    assert after["Immunization"] == stored["Immunization"] + 3  # the three rejected rows' doses, once each


def test_xlsx_upload_with_excel_cells(client, engine):
    from datetime import datetime

    row = person(1)
    row[3], row[5], row[14] = datetime(1990, 5, 4), 79090012345, datetime(2021, 7, 15)
    job = _wait(client, _upload(client, "backlog.xlsx", xlsx_bytes([row]))["id"])
    assert job["rows_stored"] == 1 and job["rows_warned"] == 1 and job["doses_created"] == 2


def test_unreadable_upload_is_refused_with_an_outcome(client):
    r = _post_file(client, "x.csv", b"a,b\n1,2\n")
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert client.get("/imports/no-such-job").status_code == 404


class Killed(Exception):
    pass


def test_an_import_killed_half_way_resumes_without_duplicates_or_losses(store):
    rows = [person(i, f"Nguyễn Văn Người {chr(65 + i % 26)}{i}", birth=str(1950 + i % 50), cccd="", phone=f"09{i:08d}") for i in range(1, 121)]
    content = csv_bytes(rows)
    clock = [__import__("datetime").datetime(2022, 6, 1, 8, 0)]
    jobs = ImportJobs(store, batch_rows=25, clock=lambda: clock[0], today=lambda: TODAY)
    job = jobs.create(site_code="79001", filename="big.csv", content=content)

    def die_after_two_batches(done: int, total: int) -> None:
        if done >= 50:
            raise Killed

    with pytest.raises(Killed):
        jobs.run(job.id, progress=die_after_two_batches)
    assert jobs.status(job.id).status == "running"
    other = ImportJobs(store, clock=lambda: clock[0], today=lambda: TODAY)
    with pytest.raises(JobBusy):
        other.run(job.id)
    clock[0] += __import__("datetime").timedelta(minutes=5)  # the dead process's heartbeat is stale now
    status = import_file(other, site_code="79001", filename="big.csv", content=content)
    assert status.id == job.id and status.status == "done"
    assert status.rows_done == 120 and status.rows_stored == 120
    assert _counts(store.engine) == {"Patient": 120, "Immunization": 240}


def test_the_import_command_audits_its_batches_and_sends_its_new_people_to_be_verified_and_linked(engine, tmp_path):
    from typer.testing import CliRunner

    from vaxhub.hub.audit.tables import AuditEventRow
    from vaxhub.hub.cli import app as cli
    from vaxhub.hub.storage.mpi_tables import MpiRecordRow
    from vaxhub.hub.storage.outbox_tables import VerificationJobRow

    sheet = tmp_path / "backlog.csv"
    sheet.write_bytes(csv_bytes([person(1), person(2, "Trần Thị Hoa", sex="Nữ", cccd="079190000222")]))
    env = {"VAXHUB_DATABASE_URL": engine.url.render_as_string(hide_password=False), "VAXHUB_DATA_DIR": str(tmp_path / "data"),
           "VAXHUB_AUTO_MIGRATE": "false"}
    result = CliRunner().invoke(cli, ["import", str(sheet), "--site", "79001"], env=env)
    assert result.exit_code == 0, result.output
    assert _counts(engine) == {"Patient": 2, "Immunization": 4}
    with engine.connect() as conn:
        patients = set(conn.execute(select(ResourceRow.res_id).where(ResourceRow.res_type == "Patient")).scalars())
        assert set(conn.execute(select(VerificationJobRow.patient_id)).scalars()) == patients
        assert set(conn.execute(select(MpiRecordRow.record_id)).scalars()) == patients
        writers = set(conn.execute(select(AuditEventRow.client_id).where(AuditEventRow.action == "transaction")).scalars())
    assert len(writers) == 1 and next(iter(writers)).startswith("import:")

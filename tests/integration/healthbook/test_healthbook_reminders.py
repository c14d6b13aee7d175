"""Dose reminders: due and overdue from the vaccine table's intervals, exported
by site and province, and each dose texted once however many senders run."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.integration.healthbook.conftest import COMIRNATY, JANSSEN, dose, person
from vaxhub.adapters.sms import RecordingSms
from vaxhub.hub.healthbook.reminders import due_doses, send_reminders

AS_OF = date(2021, 10, 1)


@pytest.fixture
def people(sites):
    hcm, hn = sites["79001"], sites["01001"]
    an = person(hcm, "079090012345", "0912345678", state="Hồ Chí Minh")
    binh = person(hn, "001185067890", "0987654321", state="Hà Nội", family="Lê", given=("Thị", "Bình"))
    cuong = person(hcm, "079088000111", "0903000111", state="Hồ Chí Minh", family="Phạm", given=("Văn", "Cường"))
    dung = person(hcm, "079075000222", "0903000222", state="Hồ Chí Minh", family="Võ", given=("Thị", "Dung"))
    em = person(hn, "001199000333", "0983000333", state="Hà Nội", family="Đỗ", given=("Văn", "Em"))
    dose(hcm, "79001", an, "AN-1", cvx=COMIRNATY, days_ago=30, today=AS_OF)       # due day 21: overdue
    dose(hn, "01001", binh, "BINH-1", cvx=COMIRNATY, days_ago=5, today=AS_OF)     # not yet due
    dose(hcm, "79001", cuong, "CUONG-1", cvx=COMIRNATY, days_ago=60, today=AS_OF)
    dose(hcm, "79001", cuong, "CUONG-2", cvx=COMIRNATY, days_ago=30, today=AS_OF)  # complete
    dose(hcm, "79001", dung, "DUNG-1", cvx=JANSSEN, days_ago=100, today=AS_OF)     # one-dose series: complete
    dose(hn, "01001", em, "EM-1", cvx=COMIRNATY, days_ago=23, today=AS_OF)         # due two days ago
    return {"an": an, "binh": binh, "cuong": cuong, "dung": dung, "em": em}


def test_due_and_overdue_follow_the_vaccine_intervals(engine, people):
    with engine.connect() as conn:
        found = {d.patient_id: d for d in due_doses(conn, AS_OF)}
    assert set(found) == {people["an"], people["em"]}
    an, em = found[people["an"]], found[people["em"]]
    assert (an.status, an.vaccine, an.doses_given, an.next_dose, an.due_date, an.site, an.province) == (
        "overdue", "COMIRNATY", 1, 2, date(2021, 9, 22), "79001", "79")
    assert (em.status, em.days_overdue, em.site, em.phone) == ("due", 2, "01001", "+84983000333")


def test_nobody_is_due_before_the_interval_has_passed(engine, people):
    with engine.connect() as conn:
        assert due_doses(conn, date(2021, 9, 20)) == []


def test_filters_by_site_and_province(engine, people):
    with engine.connect() as conn:
        assert [d.patient_id for d in due_doses(conn, AS_OF, site="79001")] == [people["an"]]
        assert [d.patient_id for d in due_doses(conn, AS_OF, province="01")] == [people["em"]]
        assert [d.patient_id for d in due_doses(conn, AS_OF, province="Hà Nội")] == [people["em"]]


@pytest.fixture
def national_desk(hub):
    app, _raw, login = hub
    with TestClient(app, headers=login("national-desk", "system/Patient.rs", kind="operator", roles="reminders")) as c:
        yield c


def test_csv_export_has_the_rows(national_desk, people):
    r = national_desk.get("/ops/reminders", params={"as_of": AS_OF.isoformat(), "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(row["patient_id"], row["status"], row["site"], row["next_dose"]) for row in rows} == {
        (people["an"], "overdue", "79001", "2"), (people["em"], "due", "01001", "2")}


def test_site_operator_sees_only_their_site(hub, people):
    app, _raw, login = hub
    with TestClient(app, headers=login("hcm-desk", "system/Patient.rs", kind="operator", roles="reminders", site="79001")) as desk:
        mine = desk.get("/ops/reminders", params={"as_of": AS_OF.isoformat()}).json()
        assert [r["patient_id"] for r in mine["reminders"]] == [people["an"]]
        assert desk.get("/ops/reminders", params={"as_of": AS_OF.isoformat(), "site": "01001"}).status_code == 403


def test_reminders_need_the_role_and_good_input(hub, national_desk, people):
    app, _raw, login = hub
    with TestClient(app, headers=login("clerk", "system/Patient.rs", kind="operator")) as clerk:
        assert clerk.get("/ops/reminders").status_code == 403
    for params in ({"as_of": "01/10/2021"}, {"province": "Atlantis"}, {"format": "xml"}):
        r = national_desk.get("/ops/reminders", params=params)
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", (params, r.text)


def test_reminder_list_is_audited(national_desk, client, people):
    national_desk.get("/ops/reminders", params={"as_of": AS_OF.isoformat()})
    events = client.get(f"/fhir/AuditEvent?patient=Patient/{people['an']}&subtype=search").json()
    assert any("/ops/reminders" in str(e["resource"]) for e in events.get("entry", [])), events


def test_sending_twice_texts_each_dose_once(engine, people):
    pass
    sms = RecordingSms()
    first = send_reminders(engine, sms, AS_OF)
    second = send_reminders(engine, sms, AS_OF)
    assert (first.due, first.sent, second.sent, second.already_sent) == (2, 2, 0, 2)
    assert sorted(phone for phone, _ in sms.messages) == ["+84912345678", "+84983000333"]
    assert "mũi 2" in sms.last_to("+84912345678") and "Comirnaty" in sms.last_to("+84912345678")


class SlowSms(RecordingSms):
    def send(self, phone: str, text: str) -> None:
        time.sleep(0.2)  # holds the claim while the other sender reaches the same dose
        super().send(phone, text)


def test_two_concurrent_senders_still_text_once(engine, people):
    sms = SlowSms()
    start = threading.Barrier(2)
    reports = []

    def sender() -> None:
        start.wait()
        reports.append(send_reminders(engine, sms, AS_OF))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(sms.messages) == 2
    assert sum(r.sent for r in reports) == 2 and sum(r.already_sent for r in reports) == 2


def test_a_failed_sms_leaves_the_dose_for_the_next_run(engine, people):
    class DownGateway:
        def send(self, phone: str, text: str) -> None:
            raise ConnectionError("gateway down")

    with pytest.raises(ConnectionError):
        send_reminders(engine, DownGateway(), AS_OF)
    sms = RecordingSms()
    assert send_reminders(engine, sms, AS_OF).sent == 2


def test_cli_send_shows_progress_and_sends_once(engine, people, monkeypatch, tmp_path):
    from vaxhub.hub import cli_reminders
    from vaxhub.hub.cli import app

    sms = RecordingSms()
    monkeypatch.setattr(cli_reminders, "sms_gateway", lambda: sms)
    monkeypatch.setenv("VAXHUB_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VAXHUB_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["reminders", "send", "--as-of", AS_OF.isoformat()])
        assert result.exit_code == 0, result.output
    assert len(sms.messages) == 2
    assert "already sent: 2" in result.output

"""Back up a populated hub, destroy it, restore it, and find everything again:
every row of every table (resources and their versions, MPI links, verification
jobs, certificates, audit events), an audit chain that still verifies, and a
certificate issued before the backup still verifying with the restored keys."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import running_hub
from tests.integration.backup.hub_population import populate, snapshot
from vaxhub.adapters.sms import RecordingSms
from vaxhub.hub.audit.tables import AuditEventRow
from vaxhub.hub.audit.trail import AuditTrail
from vaxhub.hub.cli import app as cli


def _active_signer(app) -> bytes:  # noqa: ANN001
    return app.state.certificates.keys.active_signer().certificate.fingerprint(hashes.SHA256())


def _must_hold_rows(tables: dict[str, list[tuple]]) -> None:
    """The population really made what the comparison is about."""
    for name in ("resource", "resource_version", "mpi_person", "mpi_record", "verification_job", "verification_result",
                 "certificate", "audit_event", "audit_chain_head", "auth_client"):
        assert tables[name], f"nothing in {name}: the test would prove nothing about it"


def test_backup_destroy_restore_finds_everything_again(place, tmp_path):
    engine = place.engine()
    with running_hub(engine, place.data_dir, RecordingSms()) as (app, raw, login):
        stored = populate(app, raw, login)
        signer_before = _active_signer(app)
    engine.dispose()
    engine = place.engine(migrate=False)
    before = snapshot(engine)
    _must_hold_rows(before)
    versions = {tuple(r[:3]) for r in before["resource_version"]}
    assert len([v for v in versions if stored.updated_dose in v]) == 3
    audit_before = AuditTrail(engine).verify()
    assert audit_before.ok and audit_before.events >= 15
    engine.dispose()

    archive = tmp_path / "hub.tar.gz"
    runner = CliRunner()
    made = runner.invoke(cli, ["backup", str(archive)], env=place.env())
    assert made.exit_code == 0, made.output
    assert archive.is_file() and oct(archive.stat().st_mode & 0o777) == "0o600"

    place.destroy()
    restored = runner.invoke(cli, ["restore", str(archive)], env=place.env())
    assert restored.exit_code == 0, restored.output
    assert "key files" in restored.output

    engine = place.engine(migrate=False)
    after = snapshot(engine)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], f"table {name} differs after the restore"
    audit_after = AuditTrail(engine).verify()
    assert audit_after.ok, audit_after.problems
    assert audit_after.events == audit_before.events

    with running_hub(engine, place.data_dir, RecordingSms()) as (app, raw, login):
        reader = login("site-79001-again", "system/Patient.rs system/Immunization.rs", site="79001")
        for path, body in stored.reads.items():
            r = raw.get(path, headers=reader)
            assert r.status_code == 200, (path, r.text)
            if "_history" in path and not path.endswith("_history"):
                assert r.json() == body
        assert raw.get(f"/fhir/Patient/{stored.an}", headers=reader).json()["id"] == stored.an
        assert raw.get(f"/fhir/Immunization/{stored.deleted_dose}", headers=reader).status_code == 410
        # Issued before the backup, verified by the restored hub with the restored keys.
        assert _active_signer(app) == signer_before
        report = raw.post("/certificates/verify", json={"qr": stored.hc1}, headers=reader)
        assert report.status_code == 200, report.text
        assert report.json()["valid"] is True and report.json()["certificate_id"] == stored.uvci
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one() > audit_before.events
    assert AuditTrail(engine).verify().ok  # new events chain on from the restored heads
    engine.dispose()

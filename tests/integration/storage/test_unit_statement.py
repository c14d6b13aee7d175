"""A transaction Bundle's rows go to PostgreSQL in one statement: its
resources, their history and index rows, its AuditEvent and the new Patient's
outbox rows. Rows one statement inserted share the command id (`cmin`) of
the transaction that inserted them (`xmin`)."""

import pytest
from sqlalchemy import text

from tests.builders import person_with_doses, transaction
from vaxhub.hub.audit.listener import AuditListener
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.operations.transaction import process_bundle
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.verification.enqueue import VerificationEnqueuer

ROWS = """
SELECT 'resource', xmin::text, cmin::text FROM resource WHERE res_id = ANY(:ids)
UNION ALL SELECT 'resource_version', xmin::text, cmin::text FROM resource_version WHERE res_id = ANY(:ids)
UNION ALL SELECT 'sp_token', xmin::text, cmin::text FROM sp_token WHERE res_id = ANY(:ids)
UNION ALL SELECT 'audit_event', xmin::text, cmin::text FROM audit_event WHERE content->'entity' @> CAST(:entity AS jsonb)
UNION ALL SELECT 'verification_job', xmin::text, cmin::text FROM verification_job WHERE patient_id = ANY(:ids)
UNION ALL SELECT 'mpi_record', xmin::text, cmin::text FROM mpi_record WHERE record_id = ANY(:ids)
"""


def test_a_transaction_writes_its_resources_audit_and_outbox_rows_in_one_statement(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("command ids are PostgreSQL's; SQLite inserts table by table")
    trail = AuditTrail(engine)
    store = FhirStore(engine, listeners=[AuditListener(trail), VerificationEnqueuer(), LinkEnqueuer()])
    audit = Interaction("transaction", "POST", "/fhir")
    response = process_bundle(store, transaction(*person_with_doses("079090066666", doses=2)), base="urn:test", interaction=audit)
    ids = [entry["response"]["location"].split("/")[1] for entry in response["entry"]]
    patient_id = ids[0]
    with engine.connect() as conn:
        rows = conn.execute(text(ROWS), {"ids": ids, "entity": f'[{{"what": {{"reference": "Patient/{patient_id}"}}}}]'}).all()
    tables = {table for table, _xmin, _cmin in rows}
    assert tables == {"resource", "resource_version", "sp_token", "audit_event", "verification_job", "mpi_record"}, rows
    assert len({(xmin, cmin) for _table, xmin, cmin in rows}) == 1, rows
    assert trail.verify().ok

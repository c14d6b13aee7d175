"""The verifier's Trust is built once and kept until something it holds
changes, whichever process changed it (`CertificateTrust.verifier_trust`)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text

from vaxhub.certificates.dcc import DccPerson, DccVaccination, issue_dcc, new_uvci
from vaxhub.certificates.keys import Signer, create_csca, create_document_signer
from vaxhub.certificates.trust_list import TrustList
from vaxhub.certificates.verify import verify_text
from vaxhub.hub.certificates.signing_keys import HubSigningKeys
from vaxhub.hub.certificates.trust_store import _TRUST_STAMP, CertificateTrust

NOW = dt.datetime.now(dt.timezone.utc)


def _other_process(certs) -> CertificateTrust:
    """The trust as another hub process holds it: its own key store reader, the same database."""
    settings = certs.app.state.settings
    return CertificateTrust(certs.app.state.engine, HubSigningKeys.from_settings(settings), country=settings.cert_country)


def _foreign() -> tuple[bytes, str]:
    key, cert = create_document_signer(*create_csca("FR", "Ministère de la Santé", now=NOW - dt.timedelta(days=10)), now=NOW - dt.timedelta(days=1))
    signer = Signer(cert, key)
    dose = DccVaccination("1119349007", "EU/1/20/1507", "ORG-100031184", 2, 2, dt.date(2021, 6, 1), "Santé publique", new_uvci("FR"), country="FR")
    dcc = issue_dcc(DccPerson("Dupont", "Marie", "1980-03-01"), dose, signer, issued_at=NOW - dt.timedelta(hours=1), issuer_country="FR")
    listed = TrustList()
    listed.add(signer.certificate)
    return json.dumps(listed.to_gateway_json()).encode(), dcc


def test_trust_is_kept_while_nothing_changes_and_rebuilt_after_each_change(certs, an):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    trust = _other_process(certs)
    first = trust.verifier_trust()
    assert trust.verifier_trust() is first
    assert verify_text(hc1, first).valid

    operator = certs.operator()
    assert certs.raw.post("/certificates/revocations", json={"uvci": uvci, "reason": "wrong person"}, headers=operator).status_code == 200
    revoked = trust.verifier_trust()
    assert revoked is not first
    assert verify_text(hc1, revoked).revoked
    assert not verify_text(hc1, first).revoked  # what a kept Trust would still have said
    assert trust.verifier_trust() is revoked

    document, foreign = _foreign()
    assert not verify_text(foreign, revoked).valid
    assert certs.raw.put("/certificates/trust-lists/fr", content=document, headers=operator).status_code == 200
    imported = trust.verifier_trust()
    assert verify_text(foreign, imported).valid
    assert certs.raw.delete("/certificates/trust-lists/fr", headers=operator).status_code == 204
    assert not verify_text(foreign, trust.verifier_trust()).valid


def test_a_new_signing_key_is_trusted_at_once(certs, an):
    trust = _other_process(certs)
    before = trust.verifier_trust()
    certs.app.state.certificates.keys.rotate()
    fresh = certs.issue(an)
    text_ = certs.download(fresh["uvci"], "dcc.txt").text
    assert not verify_text(text_, before).valid
    after = trust.verifier_trust()
    assert after is not before and verify_text(text_, after).valid


def test_the_stamp_reads_revoked_certificates_through_their_index(engine):
    """The stamp is read on every verification: it must not scan every certificate issued."""
    compiled = str(_TRUST_STAMP.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
        else:
            plan = "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_certificate_revoked" in plan, plan

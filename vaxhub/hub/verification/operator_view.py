"""What operators (and apps) ask of the verification queue.

Plain functions over an engine returning plain data; the API and the CLI are
thin layers over them. A Patient's verification status is one of:
`pending` (queued, including a re-check of a changed Patient: the previous
result is still reported beside it), `verified`, `mismatch`, `not_found`,
`unverifiable` (the claim cannot be put to the registry: no well-formed CCCD
or CMND, no name or birth date) and `dead` (the queue gave up; an operator
can requeue it). Beside the population result stands the social insurance
cross-check, when the worker made one: `consistent`, `mismatch`,
`not_enrolled`, `skipped` (nothing to look the person up by) or `error`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select, update

from vaxhub.hub.storage.engine import WRITE_OPTION
from vaxhub.hub.storage.outbox_tables import RegistryCircuitRow, VerificationJobRow, VerificationResultRow
from vaxhub.hub.storage.store import format_instant, utcnow

JOB = VerificationJobRow.__table__
RESULT = VerificationResultRow.__table__
CIRCUIT = RegistryCircuitRow.__table__

STATUSES = ("pending", "verified", "mismatch", "not_found", "unverifiable", "dead")
REQUEUEABLE = frozenset(STATUSES) - {"pending"}
VERIFICATION_SYSTEM = "https://vaxhub.vn/fhir/CodeSystem/identity-verification"
VERIFICATION_EXTENSION = "https://vaxhub.vn/fhir/StructureDefinition/identity-verification"
REGISTRY_DISPLAY = {
    "population-registry": "Cơ sở dữ liệu quốc gia về dân cư (national population registry)",
    "social-insurance": "Cơ sở dữ liệu quốc gia về bảo hiểm (social insurance registry)",
}
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _instant(moment: datetime | None) -> str | None:
    return format_instant(moment) if moment else None


def _status_of(state: str, result_status: str | None) -> str:
    if state == "queued":
        return "pending"
    if state == "dead":
        return "dead"
    return result_status or "pending"


def _status_condition(status: str):
    if status == "pending":
        return JOB.c.state == "queued"
    if status == "dead":
        return JOB.c.state == "dead"
    return and_(JOB.c.state == "done", JOB.c.result_status == status)


def _of_site(site_code: str | None) -> list:
    """The condition limiting a view to one site's Patients (none for national views)."""
    return [] if site_code is None else [JOB.c.site_code == site_code]


def status_counts(engine: Engine, *, now: datetime | None = None, site_code: str | None = None) -> dict[str, Any]:
    """Patients per status, jobs in flight, and each registry's circuit breaker;
    with `site_code`, only the Patients that site wrote."""
    now = now or utcnow()
    counts = dict.fromkeys(STATUSES, 0)
    scope = _of_site(site_code)
    with engine.connect() as conn:
        for state, result_status, count in conn.execute(
            select(JOB.c.state, JOB.c.result_status, func.count()).where(*scope).group_by(JOB.c.state, JOB.c.result_status)
        ):
            counts[_status_of(state, result_status)] += count
        in_flight = conn.execute(
            select(func.count()).select_from(JOB).where(
                JOB.c.state == "queued", JOB.c.lease_token.is_not(None), JOB.c.available_at > now, *scope
            )
        ).scalar_one()
        retrying = conn.execute(
            select(func.count()).select_from(JOB).where(
                JOB.c.state == "queued", JOB.c.lease_token.is_(None), JOB.c.attempts > 0, *scope
            )
        ).scalar_one()
        circuits = [
            {
                "registry": row.registry_name, "state": row.state, "open_until": _instant(row.open_until),
                "opened_count": row.opened_count, "reason": row.reason, "updated_at": _instant(row.updated_at),
            }
            for row in conn.execute(select(CIRCUIT).order_by(CIRCUIT.c.registry_name))
        ]
    return {"counts": counts, "total": sum(counts.values()), "in_flight": in_flight,
            "retrying": retrying, "circuits": circuits}


def mismatches(engine: Engine, *, site: str | None = None, field: str | None = None,
               limit: int = 100, offset: int = 0, site_code: str | None = None) -> dict[str, Any]:
    """Mismatching Patients, counted by site and field, and listed (filtered by
    site reference and/or field name; with `site_code`, one site's Patients)."""
    stmt = select(
        JOB.c.patient_id, JOB.c.result_version, JOB.c.site_ref, JOB.c.site_name, JOB.c.mismatches, JOB.c.checked_at
    ).where(JOB.c.state == "done", JOB.c.result_status == "mismatch", *_of_site(site_code))
    if site:
        stmt = stmt.where(JOB.c.site_ref == site)
    by_site_field: Counter[tuple[str | None, str | None, str]] = Counter()
    items = []
    with engine.connect() as conn:
        for row in conn.execute(stmt.order_by(JOB.c.site_ref, JOB.c.patient_id)):
            fields = row.mismatches or {}
            for name in fields:
                by_site_field[(row.site_ref, row.site_name, name)] += 1
            if field and field not in fields:
                continue
            items.append({
                "patient": f"Patient/{row.patient_id}", "version": row.result_version,
                "site": row.site_ref, "site_name": row.site_name, "fields": fields,
                "checked_at": _instant(row.checked_at),
            })
    summary = [
        {"site": s, "site_name": n, "field": f, "count": c}
        for (s, n, f), c in sorted(by_site_field.items(), key=lambda kv: (-kv[1], kv[0][0] or "", kv[0][2]))
        if (not field or f == field)
    ]
    return {"by_site_and_field": summary, "total": len(items), "items": items[offset: offset + limit]}


def dead_letters(engine: Engine, *, limit: int = 100, offset: int = 0, site_code: str | None = None) -> dict[str, Any]:
    scope = _of_site(site_code)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(JOB).where(JOB.c.state == "dead", *scope)).scalar_one()
        rows = conn.execute(
            select(JOB.c.patient_id, JOB.c.patient_version, JOB.c.site_ref, JOB.c.attempts, JOB.c.last_error,
                   JOB.c.available_at, JOB.c.enqueued_at)
            .where(JOB.c.state == "dead", *scope).order_by(JOB.c.available_at, JOB.c.patient_id).offset(offset).limit(limit)
        ).all()
    return {
        "total": total,
        "items": [
            {"patient": f"Patient/{r.patient_id}", "version": r.patient_version, "site": r.site_ref,
             "attempts": r.attempts, "error": r.last_error, "died_at": _instant(r.available_at),
             "enqueued_at": _instant(r.enqueued_at)}
            for r in rows
        ],
    }


def requeue(engine: Engine, *, patients: list[str] | None = None, status: str | None = None,
            site: str | None = None, now: datetime | None = None, site_code: str | None = None) -> int:
    """Queue again the selected Patients' jobs (attempts reset); jobs already
    queued are left alone, and with `site_code` only that site's. Returns how
    many were requeued."""
    if status is not None and status not in REQUEUEABLE:
        raise ValueError(f"cannot requeue status {status!r}; one of {', '.join(sorted(REQUEUEABLE))}")
    if not (patients or status or site):
        raise ValueError("say which jobs to requeue: patients, a status or a site")
    now = now or utcnow()
    conditions = [JOB.c.state != "queued", *_of_site(site_code)]
    if patients:
        conditions.append(JOB.c.patient_id.in_([p.removeprefix("Patient/") for p in patients]))
    if status:
        conditions.append(_status_condition(status))
    if site:
        conditions.append(JOB.c.site_ref == site)
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        return conn.execute(
            update(JOB).where(*conditions).values(
                state="queued", attempts=0, available_at=now, enqueued_at=now,
                lease_token=None, leased_by=None, last_error=None,
            )
        ).rowcount


def _verifier(registry_name: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "verifier"}]},
        "who": {"display": REGISTRY_DISPLAY.get(registry_name, registry_name)},
    }


def provenance(patient_id: str, result: Any) -> dict[str, Any]:
    """A recorded result as a FHIR R4 Provenance: which registry said what about
    which Patient version, and when (hl7.org/fhir/R4/provenance.html). The
    social insurance cross-check, when made, is a second verifier agent and a
    nested `insurance` extension, so each registry's word stays apart."""
    extension: list[dict[str, Any]] = [{"url": "status", "valueCode": result.status}]
    for name in sorted(result.mismatches or {}):
        extension.append({"url": "mismatch", "valueString": name})
    if result.registry_id:
        extension.append({"url": "registryId", "valueString": result.registry_id})
    agents = [_verifier(result.registry_name)]
    if result.insurance_status:
        insurance: list[dict[str, Any]] = [{"url": "status", "valueCode": result.insurance_status}]
        insurance += [{"url": "mismatch", "valueString": name} for name in sorted(result.insurance_mismatches or {})]
        extension.append({"url": "insurance", "extension": insurance})
        agents.append(_verifier("social-insurance"))
    return {
        "resourceType": "Provenance",
        "id": f"verification-{result.id}",
        "target": [{"reference": f"Patient/{patient_id}/_history/{result.patient_version}"}],
        "recorded": format_instant(result.recorded_at),
        "activity": {"coding": [{"system": VERIFICATION_SYSTEM, "code": result.status}]},
        "agent": [
            *agents,
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "performer"}]},
                "who": {"display": f"vaxhub verification worker {result.worker}"},
            },
        ],
        "extension": [{"url": VERIFICATION_EXTENSION, "extension": extension}],
    }


def patient_verification(engine: Engine, patient_id: str) -> dict[str, Any] | None:
    """A Patient's verification status, the mismatching fields, and every result
    recorded for it as FHIR Provenance (newest first); None when never queued."""
    with engine.connect() as conn:
        job = conn.execute(select(JOB).where(JOB.c.patient_id == patient_id)).first()
        if job is None:
            return None
        results = conn.execute(
            select(RESULT).where(RESULT.c.patient_id == patient_id).order_by(RESULT.c.id.desc())
        ).all()
    return {
        "patient": f"Patient/{patient_id}",
        "status": _status_of(job.state, job.result_status),
        "version": job.patient_version,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "result": None if job.result_status is None else {
            "status": job.result_status, "version": job.result_version, "mismatches": job.mismatches or {},
            "registry_id": job.registry_id, "checked_at": _instant(job.checked_at),
            "insurance": None if job.insurance_status is None else {
                "status": job.insurance_status, "mismatches": job.insurance_mismatches or {},
                "message": results[0].insurance_message if results else None,
            },
        },
        "provenance": [provenance(patient_id, r) for r in results],
    }


__all__ = ["STATUSES", "dead_letters", "mismatches", "patient_verification", "provenance", "requeue", "status_counts"]

"""What a checker sees of a verified certificate, and nothing more.

A verification report carries the whole signed payload; a person at a door
needs only: valid or not and why, the holder's name and birth date (to
compare with an ID card), the vaccine, dose n of m, the date of the last
dose and who issued it. Identity numbers, lot numbers and places stay out.
The fields are read from either format: the EU DCC `hcert` (`nam`, `dob`,
`v[0]`) or the SMART Health Card's FHIR Bundle (Patient and Immunizations).
Anything unexpected in a payload simply leaves a field empty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vaxhub.certificates.verify import VerificationReport
from vaxhub.errors import InvalidResource
from vaxhub.fhir.vaccines import CVX_SYSTEM, by_cvx, by_dcc_product


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass
class CheckerView:
    valid: bool
    format: str | None
    reasons: list[Reason] = field(default_factory=list)
    name: str | None = None
    birth_date: str | None = None
    vaccine: str | None = None
    dose_number: int | None = None
    total_doses: int | None = None
    dose_date: str | None = None
    issuer: str | None = None
    expires_at: dt.datetime | None = None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else None


def _dcc_fields(view: CheckerView, hcert: Any) -> None:
    if not isinstance(hcert, dict):
        return
    nam = hcert.get("nam") if isinstance(hcert.get("nam"), dict) else {}
    view.name = " ".join(p for p in (_text(nam.get("fn")), _text(nam.get("gn"))) if p) or None
    view.birth_date = _text(hcert.get("dob"))
    entries = hcert.get("v") if isinstance(hcert.get("v"), list) else []
    entry = entries[0] if entries and isinstance(entries[0], dict) else {}
    product = _text(entry.get("mp"))
    if product:
        try:
            view.vaccine = by_dcc_product(product).display
        except InvalidResource:
            view.vaccine = product
    view.dose_number, view.total_doses = _whole(entry.get("dn")), _whole(entry.get("sd"))
    view.dose_date = _text(entry.get("dt"))
    view.issuer = _text(entry.get("co")) or view.issuer


def _card_fields(view: CheckerView, payload: Any) -> None:
    try:
        bundle = payload["vc"]["credentialSubject"]["fhirBundle"]
        resources = [e["resource"] for e in bundle["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    except (KeyError, TypeError):
        return
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    names = patient.get("name") if isinstance(patient.get("name"), list) else []
    name = names[0] if names and isinstance(names[0], dict) else {}
    given = name.get("given") if isinstance(name.get("given"), list) else []
    view.name = _text(name.get("text")) or " ".join(p for p in [_text(name.get("family")), *map(_text, given)] if p) or None
    view.birth_date = _text(patient.get("birthDate"))
    doses = [r for r in resources if r.get("resourceType") == "Immunization" and r.get("status", "completed") == "completed"]
    doses.sort(key=lambda r: str(r.get("occurrenceDateTime") or ""))
    if doses:
        view.dose_number = len(doses)
        latest = doses[-1]
        view.dose_date = _text(latest.get("occurrenceDateTime"))
        codings = (latest.get("vaccineCode") or {}).get("coding") if isinstance(latest.get("vaccineCode"), dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and coding.get("system") == CVX_SYSTEM and isinstance(coding.get("code"), str):
                try:
                    vaccine = by_cvx(coding["code"])
                except InvalidResource:
                    continue
                view.vaccine = vaccine.display
                view.total_doses = max(vaccine.primary_doses, len(doses))
                break
    host = urlsplit(view.issuer).hostname if view.issuer else None
    view.issuer = host or view.issuer


def checker_view(report: VerificationReport) -> CheckerView:
    view = CheckerView(
        valid=report.valid,
        format=report.format,
        reasons=[Reason(p.code, p.message) for p in report.errors],
        issuer=report.issuer,
        expires_at=report.expires_at,
    )
    if not report.valid and not view.reasons:
        view.reasons.append(Reason("bad-signature", f"signature {report.signature.value}"))
    if report.format == "dcc":
        _dcc_fields(view, report.payload)
    elif report.format == "shc":
        _card_fields(view, report.payload)
    return view

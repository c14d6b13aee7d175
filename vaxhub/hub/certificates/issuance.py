"""Issue a person's vaccination certificate from the records the hub holds.

One issuance signs three representations of the same vaccination status,
all under one UVCI (eHN guidelines, Annex 2):

- EU DCC (HCERT 1.0.5): one `v` entry, the latest dose, with `dn`/`sd` of the
  whole course and the EU value-set codes (`vp`, `mp`, `ma`);
- SMART Health Card (SMART Health Cards and Links IG 1.0.0): every dose in a
  minimal Bundle, `exp` = the certificate's expiry and `vc.rid` (SHC
  "Revocation") derived from the UVCI;
- WHO DDCC:VS core data set as a FHIR Bundle, `hcid` = the UVCI.

Steps: the Patient and its identity check (the population registry's verdict;
an operator with the `certificates` role may override it with a reason, which
is audited); the completed doses of every record of the person
(`linked_patient_ids`); signing with the active document signer (refused if
it was withdrawn); then the rows and the AuditEvent in one transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import Engine, insert, select

from vaxhub.certificates import dcc, shc
from vaxhub.certificates.ddcc import COVID19_ICD11, ICD11, ISO3166, DdccVaccinationEvent, ddcc_bundle
from vaxhub.certificates.keys import Signer
from vaxhub.errors import Conflict, Forbidden, Gone, InvalidResource, Issue, NotFound
from vaxhub.fhir.normalise import CCCD_SYSTEM
from vaxhub.fhir.vaccines import VACCINE_SYSTEM
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.certificates.doses import VaccinationCourse, vaccination_course
from vaxhub.hub.certificates.identity_check import IdentityStatus, identity_status
from vaxhub.hub.certificates.linked_records import linked_patient_ids
from vaxhub.hub.certificates.signing_keys import HubSigningKeys
from vaxhub.hub.certificates.tables import CertificateRow, SignerRevocationRow
from vaxhub.hub.security.principal import OPERATOR, Principal
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.store import FhirStore

CERTIFICATE = CertificateRow.__table__
SIGNER_REVOCATION = SignerRevocationRow.__table__
CERTIFICATES_ROLE = "certificates"
FORMATS = ("dcc", "shc", "ddcc")
_SHA256 = hashes.SHA256()

#: ICD-11 MMS vaccine codes (WHO DDCC:VS `vaccine`) by EU DCC prophylaxis (`vp`).
ICD11_BY_PROPHYLAXIS = {
    "1119349007": ("XM0GQ8", "COVID-19 vaccine, RNA based"),
    "29061000087103": ("XM9QW8", "COVID-19 vaccine, non-replicating viral vector"),
    "1157024006": ("XM1NL1", "COVID-19 vaccine, inactivated virus"),
    "28531000087107": ("XM5JC5", "COVID-19 vaccine, virus protein subunit"),
}
EU_PRODUCT_SYSTEM = "https://ec.europa.eu/health/documents/community-register/html/"
EMA_ORGANISATION_SYSTEM = "https://spor.ema.europa.eu/v1/organisations"


@dataclass(frozen=True)
class IssuerProfile:
    """Who issues, from Settings: country, issuer name, validity, SHC `iss`."""

    country: str
    issuer_name: str
    valid_days: int
    card_issuer: str


@dataclass(frozen=True)
class Holder:
    family: str
    given: list[str]
    birth_date: str
    identifier: str | None
    gender: str | None

    @property
    def full_name(self) -> str:
        return " ".join([self.family, *self.given]).strip()


@dataclass(frozen=True)
class IssuedCertificate:
    uvci: str
    patient_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    colour: str
    dose_number: int
    total_doses: int
    signer_kid: str
    card_kid: str
    identity_override: str | None


def card_revocation_id(uvci: str) -> str:
    """SHC `vc.rid`: 64 bits of SHA-256 over the UVCI, base64url (SHC "Revocation":
    at most 24 characters, not revealing the identifier)."""
    return base64.urlsafe_b64encode(hashlib.sha256(uvci.encode("utf-8")).digest()[:8]).rstrip(b"=").decode("ascii")


def holder_of(patient: dict[str, Any]) -> Holder:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = name.get("family") if isinstance(name.get("family"), str) else ""
    given = [g for g in name.get("given") or [] if isinstance(g, str)]
    if not family and not given:
        raise InvalidResource("The Patient has no name to put on a certificate", [Issue("no name", "Patient.name", "business-rule")])
    identifier = next(
        (i.get("value") for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("system") == CCCD_SYSTEM),
        None,
    )
    birth = patient.get("birthDate") if isinstance(patient.get("birthDate"), str) else ""
    return Holder(family, given, birth, identifier, patient.get("gender"))


def _details(holder: Holder, course: VaccinationCourse, issuer_name: str) -> dict[str, Any]:
    """What the PDF and the listings show, frozen as issued."""
    return {
        "full_name": holder.full_name,
        "name_icao": "<".join(filter(None, [dcc.transliterate_icao(holder.family), dcc.transliterate_icao(" ".join(holder.given))])),
        "birth_date": holder.birth_date,
        "identifier": holder.identifier,
        "issuer": issuer_name,
        "complete": course.complete,
        "doses": [
            {"number": d.number, "date": d.date.isoformat(), "vaccine": d.vaccine.display, "vaccine_code": d.vaccine.code, "lot": d.lot, "place": d.place}
            for d in course.doses
        ],
    }


def _card_bundle(holder: Holder, course: VaccinationCourse, issuer_name: str) -> dict[str, Any]:
    """Minimal SHC Bundle; a vaccine without a CVX code (Abdala, Hayat-Vax) keeps our own code."""
    bundle = shc.build_bundle(
        shc.ShcPatient(holder.family, holder.given, holder.birth_date),
        [shc.ShcImmunization(d.vaccine.cvx or "", d.date, d.place or issuer_name, d.lot) for d in course.doses],
    )
    if not holder.birth_date:
        del bundle["entry"][0]["resource"]["birthDate"]
    for entry, dose in zip(bundle["entry"][1:], course.doses):
        if dose.vaccine.cvx is None:
            entry["resource"]["vaccineCode"] = {"coding": [{"system": VACCINE_SYSTEM, "code": dose.vaccine.code}]}
    return bundle


def _ddcc(holder: Holder, course: VaccinationCourse, profile: IssuerProfile, uvci: str, issued: dt.datetime, expires: dt.datetime) -> dict[str, Any]:
    dose = course.latest
    vaccine = dose.vaccine
    icd = ICD11_BY_PROPHYLAXIS.get(vaccine.dcc_vp, ("XM68M6", "COVID-19 vaccines"))
    return ddcc_bundle(
        DdccVaccinationEvent(
            name=holder.full_name,
            birth_date=holder.birth_date or None,
            identifier=holder.identifier,
            identifier_system=CCCD_SYSTEM if holder.identifier else None,
            sex=holder.gender if holder.gender in ("male", "female", "other", "unknown") else None,
            vaccine={"system": ICD11, "code": icd[0], "display": icd[1]},
            brand={"system": EU_PRODUCT_SYSTEM, "code": vaccine.dcc_mp, "display": vaccine.display},
            manufacturer={"system": EMA_ORGANISATION_SYSTEM, "code": vaccine.dcc_ma, "display": vaccine.manufacturer},
            lot=dose.lot or "unknown",
            date=dose.date,
            dose=course.dose_number,
            total_doses=course.total_doses,
            country={"system": ISO3166, "code": profile.country},
            centre=dose.place,
            certificate_issuer=profile.issuer_name,
            certificate_issuer_identifier=profile.card_issuer,
            certificate_id=uvci,
            certificate_valid_from=issued.isoformat(),
            certificate_valid_until=expires.isoformat(),
            disease=COVID19_ICD11,
        )
    )


def sign_certificates(
    holder: Holder, course: VaccinationCourse, signer: Signer, profile: IssuerProfile, *, uvci: str, issued: dt.datetime, expires: dt.datetime
) -> dict[str, str]:
    """The three signed or built artefacts, by format."""
    latest = course.latest
    hc1 = dcc.encode_hc1(
        dcc.build_hcert(
            dcc.DccPerson(holder.family, " ".join(holder.given) or None, holder.birth_date),
            dcc.DccVaccination(
                vaccine=latest.vaccine.dcc_vp,
                product=latest.vaccine.dcc_mp,
                manufacturer=latest.vaccine.dcc_ma,
                dose_number=course.dose_number,
                total_doses=course.total_doses,
                date=latest.date,
                issuer=profile.issuer_name,
                certificate_id=uvci,
                country=profile.country,
            ),
        ),
        signer,
        issuer_country=profile.country,
        issued_at=issued,
        expires_at=expires,
    )
    credential = shc.build_credential(_card_bundle(holder, course, profile.issuer_name), issuer=profile.card_issuer, issued_at=issued)
    credential["exp"] = int(expires.timestamp())
    credential["vc"]["rid"] = card_revocation_id(uvci)
    card = shc.sign_card(credential, signer)
    bundle = _ddcc(holder, course, profile, uvci, issued, expires)
    return {"dcc": hc1, "shc": card, "ddcc": json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))}


def may_override(who: Principal) -> bool:
    return who.kind == OPERATOR and CERTIFICATES_ROLE in who.roles


class CertificateIssuer:
    def __init__(self, engine: Engine, store: FhirStore, keys: HubSigningKeys, trail: AuditTrail):
        self.engine = engine
        self.store = store
        self.keys = keys
        self.trail = trail

    def _name_of(self, reference: str) -> str | None:
        rtype, _, rid = reference.partition("/")
        if rtype not in ("Location", "Organization", "Practitioner") or not rid:
            return None
        try:
            content = self.store.read(rtype, rid).content or {}
        except (NotFound, Gone):
            return None
        name = content.get("name")
        if isinstance(name, list):  # Practitioner.name is a list of HumanName
            name = (name[0] or {}).get("text") if name and isinstance(name[0], dict) else None
        return name if isinstance(name, str) else None

    def _identity(self, patient_id: str, who: Principal, override_reason: str | None) -> tuple[IdentityStatus, str | None]:
        with self.engine.connect() as conn:
            status = identity_status(conn, patient_id)
        if override_reason is not None and not may_override(who):
            raise Forbidden(f"Only an operator with the '{CERTIFICATES_ROLE}' role may override the identity check")
        if status.verified:
            return status, None
        if override_reason is None:
            message = (
                f"Patient/{patient_id}'s identity is not verified by the population registry ({status.status}: "
                f"{status.explanation}); an operator with the '{CERTIFICATES_ROLE}' role may issue with a reason"
            )
            raise InvalidResource(message, [Issue(message, "Patient", "business-rule")])
        if not override_reason.strip():
            raise InvalidResource("An identity check override needs a reason", [Issue("empty reason", "override_reason", "required")])
        return status, f"identity {status.status}; overridden by {who.display}: {override_reason.strip()[:500]}"

    def issue(
        self,
        patient_id: str,
        *,
        who: Principal,
        profile: IssuerProfile,
        interaction: Interaction,
        override_reason: str | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Issue and store; the AuditEvent is written in the same transaction."""
        try:
            patient = self.store.read("Patient", patient_id)
        except Gone:
            raise NotFound(f"Patient/{patient_id} is not known") from None
        interaction.action = "issue-certificate"
        interaction.touched("Patient", patient_id, patient.version, patient.content)
        _identity, override = self._identity(patient_id, who, override_reason)
        holder = holder_of(patient.content or {})
        records = [
            (pid, s.id, s.content or {})
            for pid in linked_patient_ids(self.store, patient_id)
            for s in self.store.compartment(pid, ("Immunization",))
        ]
        course = vaccination_course(patient_id, records, name_of=self._name_of)
        signer = self.keys.active_signer()
        fingerprint = signer.certificate.fingerprint(_SHA256).hex()
        issued = now or dt.datetime.now(dt.timezone.utc)
        expires = min(issued + dt.timedelta(days=profile.valid_days), signer.not_valid_after)
        if expires <= issued:
            raise Conflict("The active document signer has expired: rotate the keys (`vaxhub keys rotate`)")
        uvci = dcc.new_uvci(profile.country)
        artefacts = sign_certificates(holder, course, signer, profile, uvci=uvci, issued=issued, expires=expires)
        kids = {"dcc": base64.b64encode(signer.kid).decode("ascii"), "shc": signer.jwk_kid, "ddcc": None}
        details = _details(holder, course, profile.issuer_name)
        issued_by = who.client_id or who.subject
        rows = [
            {
                "id": uuid.uuid4().hex, "uvci": uvci, "patient_id": patient_id, "format": fmt,
                "signer_kid": kids[fmt], "signer_fingerprint": fingerprint,
                "issued_at": _naive(issued), "expires_at": _naive(expires), "status": course.colour.value,
                "dose_number": course.dose_number, "total_doses": course.total_doses, "content": artefacts[fmt],
                "details": details, "issued_by": issued_by, "identity_override": override, "revoked": False,
            }
            for fmt in FORMATS
        ]
        for dose in course.doses:
            interaction.touched("Immunization", dose.immunization_id, None, {"resourceType": "Immunization", "patient": {"reference": f"Patient/{dose.patient_id}"}})
        interaction.description = f"issued {uvci} ({', '.join(FORMATS)}; {course.colour.value}, dose {course.dose_number}/{course.total_doses})" + (
            f"; {override}" if override else ""
        )
        with write_transaction(self.engine) as conn:
            if conn.execute(select(SIGNER_REVOCATION.c.fingerprint).where(SIGNER_REVOCATION.c.fingerprint == fingerprint)).first():
                raise Conflict("The active document signer has been withdrawn: rotate the keys (`vaxhub keys rotate`) before issuing")
            if override is None and not identity_status(conn, patient_id).verified:
                raise Conflict(f"Patient/{patient_id}'s identity verification changed while issuing; try again")
            conn.execute(insert(CERTIFICATE), rows)
            self.trail.append(conn, interaction)
        interaction.recorded = True
        return IssuedCertificate(
            uvci, patient_id, issued, expires, course.colour.value, course.dose_number, course.total_doses,
            kids["dcc"], signer.jwk_kid, override,
        )


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)

"""Citizen login: a one-time code to the phone on record, or a national e-ID token.

Either way the result is a token bound to one Patient with `patient/*.rs`
scopes. Codes are six digits, valid five minutes, tried five times at most,
and stored only as an HMAC; a phone gets at most three codes per quarter
hour. Starting a login never reveals whether the person is known.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
from sqlalchemy import Engine, func, insert, select, update

from vaxhub.adapters.sms import SmsSender
from vaxhub.errors import AuthenticationFailed, RateLimited
from vaxhub.fhir.search_params import normalise_phone
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.security.clients import decode_with_keys
from vaxhub.hub.security.principal import PATIENT, Principal
from vaxhub.hub.security.scopes import parse_scopes
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.security.tables import OtpChallengeRow
from vaxhub.hub.storage.store import FhirStore

CCCD_SYSTEM = "https://vaxhub.vn/fhir/sid/cccd"
PATIENT_SCOPES = tuple(parse_scopes(
    "patient/Patient.rs patient/Immunization.rs patient/Organization.rs patient/Location.rs"
    " patient/AdverseEvent.crs"  # the health book reports reactions (vaxhub.hub.healthbook.citizen_reports)
    " patient/Task.crs"  # and asks for corrections (vaxhub.hub.healthbook.corrections)
))
CODE_SECONDS = 300
MAX_ATTEMPTS = 5
MAX_CODES_PER_WINDOW = 3
WINDOW = timedelta(minutes=15)


def patient_principal(patient_id: str, via: str) -> Principal:
    return Principal(PATIENT, patient_id, client_id=via, patient_id=patient_id, scopes=PATIENT_SCOPES)


def _utcnow(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), timezone.utc).replace(tzinfo=None)


def find_patient_by_cccd(store: FhirStore, cccd: str) -> str | None:
    page = store.search(parse_search("Patient", [("identifier", f"{CCCD_SYSTEM}|{cccd}")]))
    return page.resources[0].id if len(page.resources) == 1 else None


@dataclass
class OtpLogin:
    engine: Engine
    store: FhirStore
    sms: SmsSender
    secret: bytes
    clock: Callable[[], float] = time.time

    def _hash(self, challenge_id: str, code: str) -> str:
        return hmac.new(self.secret, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def start(self, cccd: str, phone: str) -> str:
        """Send a code if the CCCD's Patient has this phone on record; always return a challenge id."""
        return self.start_for_patient(lambda: find_patient_by_cccd(self.store, cccd.strip()), phone)

    def start_for_patient(self, find_patient: Callable[[], str | None], phone: str) -> str:
        """Send a code if the Patient `find_patient` names (from what the person
        typed: a CCCD, or name, birth date and phone in the web portal) has this
        phone on record; always return a challenge id."""
        challenge_id = uuid.uuid4().hex
        phone = normalise_phone(phone)
        now = _utcnow(self.clock)
        with write_transaction(self.engine) as conn:
            recent = conn.execute(
                select(func.count()).select_from(OtpChallengeRow).where(OtpChallengeRow.phone == phone, OtpChallengeRow.created > now - WINDOW)
            ).scalar_one()
            if recent >= MAX_CODES_PER_WINDOW:
                raise RateLimited("Too many codes requested for this phone; try again later", retry_after=int(WINDOW.total_seconds()))
            patient_id = find_patient()
            on_record = patient_id is not None and phone in self._phones(patient_id)
            code = f"{secrets.randbelow(10**6):06d}"
            conn.execute(
                insert(OtpChallengeRow).values(
                    challenge_id=challenge_id,
                    patient_id=patient_id if on_record else "",
                    phone=phone,
                    code_hash=self._hash(challenge_id, code) if on_record else "",
                    expires=now + timedelta(seconds=CODE_SECONDS),
                    attempts=0,
                    used=not on_record,
                    created=now,
                )
            )
        if on_record:
            self.sms.send(phone, f"vaxhub: ma xac thuc cua ban la {code} (hieu luc 5 phut). Your code: {code}")
        return challenge_id

    def _phones(self, patient_id: str) -> set[str]:
        patient = self.store.read("Patient", patient_id).content or {}
        return {normalise_phone(cp["value"]) for cp in patient.get("telecom", []) if cp.get("system") in ("phone", "sms") and cp.get("value")}

    def verify(self, challenge_id: str, code: str) -> Principal:
        now = _utcnow(self.clock)
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(OtpChallengeRow).where(OtpChallengeRow.challenge_id == challenge_id)).first()
            if row is None or row.used or row.expires < now or row.attempts >= MAX_ATTEMPTS:
                raise AuthenticationFailed("The code is wrong, expired or used up")
            good = hmac.compare_digest(row.code_hash, self._hash(challenge_id, code.strip()))
            conn.execute(
                update(OtpChallengeRow)
                .where(OtpChallengeRow.challenge_id == challenge_id)
                .values(attempts=OtpChallengeRow.attempts + 1, used=good)
            )
            patient_id = row.patient_id
        if not good:
            raise AuthenticationFailed("The code is wrong, expired or used up")
        return patient_principal(patient_id, "otp")


@dataclass
class ExternalIdentityProvider:
    """The national e-ID: its ID tokens, verified against its JWKS, name a CCCD."""

    issuer: str
    audience: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    id_claim: str = "cccd"
    leeway: int = 60
    cache_seconds: int = 300
    clock: Callable[[], float] = time.time
    _fetched: float = 0.0

    def _keys(self) -> list[dict[str, Any]]:
        if self.jwks_url and (self.jwks is None or self.clock() - self._fetched > self.cache_seconds):
            response = httpx.get(self.jwks_url, timeout=5)
            response.raise_for_status()
            self.jwks, self._fetched = response.json(), self.clock()
        return list((self.jwks or {}).get("keys", []))

    def person_id(self, token: str) -> str:
        claims = decode_with_keys(
            token, self._keys(), what="e-ID token", audience=self.audience, issuer=self.issuer,
            leeway=self.leeway, require=["exp", "iat", "iss", "aud", self.id_claim],
        )
        return str(claims[self.id_claim])

"""Logins as security events in the audit trail, and in the login metrics.

Every token issued (`/auth/token`, the OTP verify, the portal's code form) and
every login refused (an unknown client, a bad or replayed assertion, a wrong
one-time code, a refused e-ID token, a malformed token request) appends one
AuditEvent of type DICOM 110114 User Authentication, subtype 110122 Login:
outcome 0 when a token was issued, 8 when credentials were refused, 4 when
the request itself was malformed. The agent is who logged in (the client, or
the patient once known) or, when refused, the client id the request claimed,
so that `AuditEvent?agent=CLIENT&subtype=login` lists the attempts made in a
client's name. Secrets (assertions, codes, tokens) never go into the event.
"""

from __future__ import annotations

import logging

import jwt

from vaxhub.hub.audit.trail import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, AuditTrail, Interaction
from vaxhub.hub.observability.metrics import LOGINS
from vaxhub.hub.security.principal import ANONYMOUS, NOBODY, Principal

log = logging.getLogger(__name__)

MAX_CLAIMED_ID = 128
_OUTCOME_LABEL = {SUCCESS: "success", MINOR_FAILURE: "malformed", SERIOUS_FAILURE: "refused"}


def claimed_client(assertion: str | None) -> Principal:
    """The caller an unverified assertion names (for the record only; nothing is trusted from it)."""
    if not assertion:
        return NOBODY
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return NOBODY
    if not isinstance(issuer, str) or not issuer.strip():
        return NOBODY
    claimed = issuer.strip()[:MAX_CLAIMED_ID]
    return Principal(ANONYMOUS, claimed, client_id=claimed)


def record_login(
    trail: AuditTrail | None,
    *,
    method: str,
    outcome: str,
    who: Principal,
    path: str,
    source_ip: str | None,
    detail: str,
) -> None:
    """Append the login's AuditEvent and count it. `method`: client_credentials, token-exchange, otp, portal-otp."""
    LOGINS.labels(method, _OUTCOME_LABEL.get(outcome, "refused")).inc()
    if outcome != SUCCESS:
        log.info("login refused (%s) for %s: %s", method, who.display, detail)
    if trail is None:
        return
    event = Interaction(action="login", method="POST", path=path, source_ip=source_ip, principal=who, outcome=outcome)
    event.description = f"{method}: {detail}"
    if who.patient_id:
        event.patients.add(who.patient_id)
    trail.record(event)

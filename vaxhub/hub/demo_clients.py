"""The demo's sample callers: a hospital, an operator console, a verifier, and a citizen.

Keys are generated into the demo folder; the printed commands are what a
hospital integrator, an operator, a border checker and an app developer run
to get a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine

from vaxhub.hub.bulk_export.access import BULK_EXPORT_ROLE
from vaxhub.hub.security.client_tools import generate_key
from vaxhub.hub.security.clients import ClientRegistry


# The national registry takes whole data sets with FHIR Bulk Data `$export`.
DEMO_SYSTEM_ROLES = {"national-registry": BULK_EXPORT_ROLE}


@dataclass(frozen=True)
class DemoCaller:
    client_id: str
    kind: str
    key_file: Path
    site: str | None
    scopes: str


def register_demo_clients(engine: Engine, folder: Path, hospital_site: str) -> list[DemoCaller]:
    registry = ClientRegistry(engine)
    callers = [
        DemoCaller(f"site-{hospital_site}", "system", folder / f"site-{hospital_site}.key.pem", hospital_site,
                   "system/Patient.cruds system/Immunization.cruds system/Organization.rs system/Location.rs system/Practitioner.rs"),
        DemoCaller("moh-operator", "operator", folder / "moh-operator.key.pem", None, "system/*.rs system/AuditEvent.rs"),
        DemoCaller("border-checker", "verifier", folder / "border-checker.key.pem", None, "system/Patient.rs"),
        DemoCaller("national-registry", "system", folder / "national-registry.key.pem", None, "system/*.rs"),
    ]
    for caller in callers:
        if not caller.key_file.exists():
            generate_key(folder, caller.key_file.name.removesuffix(".key.pem"))
        jwks = orjson.loads((folder / caller.key_file.name.replace(".key.pem", ".jwks.json")).read_bytes())
        registry.register(caller.client_id, name=caller.client_id, kind=caller.kind, jwks=jwks, scopes=caller.scopes,
                          site_code=caller.site, roles="auditor verification corrections" if caller.kind == "operator" else DEMO_SYSTEM_ROLES.get(caller.client_id, ""))
    return callers


def token_instructions(callers: list[DemoCaller], root: str, citizen_cccd: str | None, citizen_phone: str | None) -> str:
    lines = ["  getting a token (SMART Backend Services, private_key_jwt):"]
    for caller in callers:
        lines.append(f"    {caller.kind:9} .venv/bin/vaxhub token {caller.client_id} --key {caller.key_file} --url {root}/auth/token")
    if citizen_cccd and citizen_phone:
        lines += [
            "  a citizen (health-book app): one-time code to the phone on record, printed here as the demo's SMS",
            f"    curl -s -X POST {root}/auth/otp/start -H 'content-type: application/json' -d '{{\"cccd\": \"{citizen_cccd}\", \"phone\": \"{citizen_phone}\"}}'",
            f"    curl -s -X POST {root}/auth/otp/verify -H 'content-type: application/json' -d '{{\"challenge\": \"<challenge>\", \"code\": \"<code>\"}}'",
        ]
    lines.append("  then: curl -H \"Authorization: Bearer $TOKEN\" " + f"{root}/fhir/Immunization?_count=5")
    lines.append("  bulk export (national-registry's token): curl -i -H \"Authorization: Bearer $TOKEN\" -H 'Prefer: respond-async' "
                 + f"'{root}/fhir/$export?_type=Patient,Immunization', then poll the Content-Location it answers")
    return "\n".join(lines)


def web_page_instructions(root: str, name: str, birth_date: str, phone: str | None) -> str:
    """Where the demo's web pages are and how to use each (`vaxhub.hub.web`)."""
    return "\n".join([
        "  web pages (Vietnamese; add ?lang=en for English)",
        f"    citizen portal       {root}/portal  ({name}, born {birth_date}, phone {phone}; the SMS code is printed here)",
        f"    verifier page        {root}/verify  (upload the QR image the portal's 'Tải mã QR' downloads)",
        f"    operator dashboard   {root}/dashboard  (paste the token of: vaxhub token moh-operator …, below; it lasts 5 minutes)",
        "",
    ])

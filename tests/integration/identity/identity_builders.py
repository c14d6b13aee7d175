"""People and the site records of them, for the master patient index tests.

Thu Hương is vaccinated at three sites that type her three ways; her mother
and brother share the family phone; the registry knows all three and maps
her old 9-digit CMND to her CCCD.
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import select

from vaxhub.adapters.registry_data import Citizen
from vaxhub.fhir.normalise import CCCD_SYSTEM, CMND_SYSTEM
from vaxhub.hub.storage.mpi_tables import MpiRecordRow

RECORD = MpiRecordRow.__table__
CVX = "http://hl7.org/fhir/sid/cvx"
FAMILY_PHONE = "0987 000 111"

HUONG = Citizen(cccd="001190012345", cmnd="012987654", full_name="Nguyễn Thị Thu Hương", birth_date="1990-05-04", sex="female")
MAI = Citizen(cccd="001165004321", full_name="Trần Thị Mai", birth_date="1965-02-03", sex="female", cmnd="012111222")
NAM = Citizen(cccd="001093007777", full_name="Nguyễn Văn Nam", birth_date="1993-07-08", sex="male")
TWIN = Citizen(cccd="001190054321", full_name="Nguyễn Thị Thu Hà", birth_date="1990-05-04", sex="female")
FAMILY = (HUONG, MAI, NAM, TWIN)


def site_patient(name: str, *, birth: str, gender: str, cccd: str | None = None, cmnd: str | None = None,
                 phone: str | None = None, site: str = "79001", number: str | None = None, address: str = "Số 5 Hàng Bông, Hoàn Kiếm, Hà Nội",
                 **extra: Any) -> dict[str, Any]:
    """A Patient as a site types it (name as one text, Vietnamese order)."""
    identifiers = []
    if cccd:
        identifiers.append({"system": CCCD_SYSTEM, "value": cccd})
    if cmnd:
        identifiers.append({"system": CMND_SYSTEM, "value": cmnd, "use": "official" if not cccd else "old"})
    identifiers.append({"system": f"https://vaxhub.vn/fhir/sid/site/{site}/patient", "value": number or f"{site}-{zlib.crc32(f'{name}|{birth}'.encode()):010d}"})
    words = name.split()
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [{"use": "official", "family": words[0], "given": words[1:]}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"use": "home", "text": address}],
    }
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone}]
    patient.update(extra)
    return patient


def of(citizen: Citizen, **changes: Any) -> dict[str, Any]:
    """The citizen's record at a site, with `changes` to what the site typed."""
    args: dict[str, Any] = {"birth": citizen.birth_date, "gender": citizen.sex, "cccd": citizen.cccd}
    name = changes.pop("name", citizen.full_name)
    args.update(changes)
    return site_patient(name, **args)


def dose(patient_id: str, number: str, *, site: str = "79001", date: str = "2021-08-01T09:30:00+07:00", cvx: str = "210") -> dict[str, Any]:
    return {
        "resourceType": "Immunization",
        "identifier": [{"system": f"https://vaxhub.vn/fhir/sid/site/{site}/immunization", "value": number}],
        "status": "completed",
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "patient": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": date,
        "lotNumber": f"LOT-{number}",
    }


def person_of(engine, record_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id == record_id)).scalar()


def link_row(engine, record_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return conn.execute(select(RECORD).where(RECORD.c.record_id == record_id)).one()._asdict()

"""Before the load: clients and keys, the sites' resources, the people already
vaccinated once (so most of the load's doses are for people the hub knows),
and certificates for the citizens whose app the load opens and whose QR codes
the verifiers scan.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from sqlalchemy import Engine

from bench.ingest import post_all, register_sites
from bench.load import probes
from bench.load.workload import LoadPeople, dose_bundle_body, next_dose, site_resources
from vaxhub.adapters.registry_data import Citizen
from vaxhub.fhir.synthetic import CCCD_SYSTEM
from vaxhub.hub.security.client_tools import generate_key, load_key, request_token
from vaxhub.hub.security.clients import ClientRegistry

SITE_SCOPES = "system/Patient.cruds system/Immunization.cruds system/Organization.rs system/Location.rs system/Practitioner.rs"
PEOPLE_PER_SEED_BUNDLE = 50  # Patient + first dose each: Bundles of 100 entries, as a backlog upload


@dataclass(frozen=True)
class Clients:
    national: dict  # the national loader: site resources, the seeded people, certificates
    sites: list[dict]
    verifiers: list[dict]


def write_registry(people: LoadPeople, path: Path) -> int:
    """The population registry's (and social insurance's) data: everyone the load may send."""
    population = people.population
    citizens = [
        Citizen(cccd=p.cccd, full_name=p.full_name, birth_date=p.birth_date_text, sex=p.sex, cmnd=p.cmnd, bhxh=p.bhxh).to_json()
        for p in population.people if p.cccd
    ]
    path.write_text(json.dumps(citizens, ensure_ascii=False))
    return len(citizens)


def register_clients(engine: Engine, key_dir: Path, people: LoadPeople, verifiers: int) -> Clients:
    """Each site its own client (it may write only as that site); border posts as verifiers."""
    registry = ClientRegistry(engine)

    def add(client_id: str, kind: str, scopes: str, site: str | None = None) -> dict:
        private, public, _kid = generate_key(key_dir, client_id)
        registry.register(client_id, name=client_id, kind=kind, jwks=orjson.loads(public.read_bytes()), scopes=scopes, site_code=site)
        return {"client_id": client_id, "key": str(private), **({"code": site} if site else {})}

    national = add("load-national", "system", "system/*.cruds")
    sites = [add(f"load-site-{s.code}", "system", SITE_SCOPES, s.code) for s in people.sites]
    checkers = [add(f"load-verifier-{i}", "verifier", "system/Patient.rs") for i in range(verifiers)]
    return Clients(national, sites, checkers)


def bearer(root: str, client: dict) -> dict[str, str]:
    token = request_token(f"{root}/auth/token", client["client_id"], load_key(Path(client["key"])))["access_token"]
    return {"content-type": "application/fhir+json", "authorization": f"Bearer {token}"}


def seed_sites(root: str, headers: dict[str, str], people: LoadPeople) -> None:
    register_sites(f"{root}/fhir", headers, [r for site in people.sites for r in site_resources(site)])


def seed_known_people(root: str, headers: dict[str, str], people: LoadPeople) -> tuple[float, int, list[str]]:
    """Each known person's Patient and first dose, from their home site; returns (seconds, doses, failures)."""
    population = people.population
    bundles = []
    for code, persons in people.known.items():
        site = population.site(code)
        for start in range(0, len(persons), PEOPLE_PER_SEED_BUNDLE):
            group = persons[start:start + PEOPLE_PER_SEED_BUNDLE]
            bundles.append(dose_bundle_body([(p, next_dose(population, p, 1, site)) for p in group], site))
    elapsed, failures = post_all(f"{root}/fhir", headers, bundles, 4, "seeding known people")
    return elapsed, sum(len(v) for v in people.known.values()), failures


def wait_outbox_empty(engine: Engine, console: Console, limit: float, label: str) -> float:
    """Seconds until both outboxes are empty (and stay so for a second); raises after `limit`."""
    started = time.monotonic()
    empty_since = None
    last_print = 0.0
    while True:
        s = probes.sample(engine, time.monotonic())
        now = time.monotonic()
        if s.outbox_depth == 0:
            empty_since = empty_since or now
            if now - empty_since >= 1.0:
                return empty_since - started
        else:
            empty_since = None
        if now - started > limit:
            raise RuntimeError(f"{label}: outbox not empty after {limit:.0f} s: {s}")
        if now - last_print >= 10:
            console.print(f"  {label}: verification queued {s.verification_queued}, link queued {s.link_queued}, "
                          f"golden Patients to rebuild {s.goldens_stale} ({now - started:.0f} s)")
            last_print = now
        time.sleep(0.5)


def issue_certificates(root: str, headers: dict[str, str], engine: Engine, people: LoadPeople, count: int,
                       console: Console) -> tuple[list[dict], list[str]]:
    """Certificates for up to `count` verified known people: the app's citizens and the verifiers' QR codes."""
    candidates = people.known_people()[: count * 2]
    ids = probes.ids_by_identifier(engine, "Patient", [(CCCD_SYSTEM, p.cccd) for p in candidates])
    by_id = {ids[(CCCD_SYSTEM, p.cccd)]: p for p in candidates if (CCCD_SYSTEM, p.cccd) in ids}
    verified = probes.verified_patient_ids(engine, list(by_id))[:count]
    citizens, qr = [], []
    with httpx.Client(base_url=root, headers={"authorization": headers["authorization"]}, timeout=60) as client:
        for patient_id in verified:
            r = client.post(f"/certificates/patients/{patient_id}")
            if r.status_code != 201:
                console.print(f"[yellow]certificate for Patient/{patient_id} refused: {r.status_code} {r.text[:200]}")
                continue
            uvci = r.json()["uvci"]
            citizens.append({"patient": patient_id, "cccd": by_id[patient_id].cccd})
            for name in ("dcc.txt", "shc.txt"):
                download = client.get(f"/certificates/{uvci}/{name}")
                download.raise_for_status()
                qr.append(download.text.strip())
    return citizens, qr

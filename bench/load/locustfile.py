"""Locust users of the national load test; `bench/load/run.py` starts locust
on this file with `VAXHUB_LOAD_PLAN` naming the plan it wrote (addresses,
clients and keys, the population split, citizens and QR codes, how many users
of each kind and how fast each goes).

- `SiteBundleUser`: a vaccination site pushing transaction Bundles of
  Patients and Immunizations (conditional creates), as a site system does
  between sessions.
- `VxuSenderUser`: a hospital's HL7 engine sending one VXU^V04 per dose.
- `HealthBookUser`: the citizen app (national e-ID login) pulling
  `Patient/$everything` and certificate downloads.
- `VerifierUser`: a border or venue checker posting QR codes to
  `POST /certificates/verify`.

Each user paces itself to a timetable (`bench/load/pacing.py`) so the offered
load follows the plan's rate whatever the latency; when the hub is slower
than the pace, users go back to back and the latency shows it.

Acknowledged records go to `acks-<pid>.txt` in the plan's folder, one per
line: `imm <id>` and `pat <id>` from Bundle responses (2xx entries with a
location), `vxu-imm <system>|<value>` and `vxu-pat <CCCD>` from AA ACKs (an
ACK names no ids, so the business identifiers are kept).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import jwt
import orjson
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load.pacing import scheduled_pacing  # noqa: E402
from bench.load.workload import SitePeople, dose_bundle_body, split_people, vxu_message  # noqa: E402
from vaxhub.fhir.synthetic import CCCD_SYSTEM, site_immunization_system  # noqa: E402
from vaxhub.hub.security.client_tools import client_assertion, load_key  # noqa: E402
from vaxhub.hub.security.clients import ASSERTION_TYPE  # noqa: E402
from vaxhub.hub.security.tokens import thumbprint_kid  # noqa: E402

PLAN = json.loads(Path(os.environ["VAXHUB_LOAD_PLAN"]).read_text())
PEOPLE = split_people(PLAN["population"]["size"], PLAN["population"]["seed"], PLAN["population"]["known"])
SITES = {s.code: s for s in PEOPLE.sites}
# One per site, shared by the Bundle and VXU users sending for it (greenlets: no locking needed).
SITE_PEOPLE = {
    code: SitePeople(PEOPLE, site, PLAN["new_share"], random.Random(f"{PLAN['population']['seed']}-{code}"))
    for code, site in SITES.items()
}
FORM = {"content-type": "application/x-www-form-urlencoded"}
ER7 = "x-application/hl7-v2+er7"
REFRESH_BEFORE_EXPIRY = 30  # seconds

STATUSES: Counter = Counter()  # (request name, HTTP status; 0 = no answer)
COUNTS: Counter = Counter()
_acks_file = None


def _ack(line: str) -> None:
    global _acks_file
    if _acks_file is None:
        _acks_file = open(Path(PLAN["acks_dir"]) / f"acks-{os.getpid()}.txt", "a", encoding="utf-8")
    _acks_file.write(line + "\n")


@events.request.add_listener
def _count_status(request_type, name, response_time, response_length, response=None, exception=None, **_kw):
    status = getattr(response, "status_code", 0) or 0
    STATUSES[(name, int(status))] += 1


_window: dict[str, float] = {}


@events.test_start.add_listener
def _mark_start(environment, **_kw):
    _window["started"] = time.time()
    (Path(PLAN["acks_dir"]) / "load-started").write_text(repr(_window["started"]))


@events.test_stop.add_listener
def _write_summary(environment, **_kw):
    _window["stopped"] = time.time()
    COUNTS["new people wanted but none left"] = sum(p.fresh_exhausted for p in SITE_PEOPLE.values())
    if _acks_file is not None:
        _acks_file.flush()
    (Path(PLAN["acks_dir"]) / "load-window.json").write_text(json.dumps(_window))
    summary = {
        "statuses": [[name, status, count] for (name, status), count in sorted(STATUSES.items())],
        "counts": dict(COUNTS),
    }
    (Path(PLAN["acks_dir"]) / f"summary-{os.getpid()}.json").write_text(json.dumps(summary, indent=1))


class Token:
    """A bearer token, fetched again shortly before it expires."""

    def __init__(self, user: FastHttpUser, form: callable, name: str):
        self.user, self.form, self.name = user, form, name
        self.header: dict[str, str] = {}
        self.expires = 0.0
        self.patient: str | None = None

    def __call__(self) -> dict[str, str] | None:
        if time.monotonic() < self.expires - REFRESH_BEFORE_EXPIRY:
            return self.header
        with self.user.client.post("/auth/token", data=urlencode(self.form()), headers=FORM, name=self.name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"token refused: {r.status_code} {r.text[:200] if r.text else ''}")
                return None
            body = orjson.loads(r.content)
        self.header = {"authorization": f"Bearer {body['access_token']}"}
        self.expires = time.monotonic() + body["expires_in"]
        self.patient = body.get("patient")
        return self.header


def client_token(user: FastHttpUser, client_id: str, key_path: str, name: str) -> Token:
    key = load_key(Path(key_path))
    return Token(user, lambda: {
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, key, user.host + "/auth/token"),  # the pool it asks
    }, name)


_EID_KEY = load_key(Path(PLAN["eid"]["key"]))
_EID_KID = thumbprint_kid(_EID_KEY)


def eid_token(user: FastHttpUser, cccd: str) -> Token:
    """The national e-ID's ID token for `cccd`, exchanged for a citizen token (RFC 8693)."""
    def form() -> dict[str, str]:
        now = int(time.time())
        id_token = jwt.encode(
            {"iss": PLAN["eid"]["issuer"], "aud": PLAN["eid"]["audience"], "sub": f"eid-{cccd}", "iat": now, "exp": now + 300, "cccd": cccd},
            _EID_KEY, algorithm="ES256", headers={"kid": _EID_KID},
        )
        return {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": id_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
    return Token(user, form, "auth/token (e-ID)")


def _diagnostics(response) -> str:
    """The first issue of an OperationOutcome answer, to group failures by cause."""
    try:
        issue = response.json()["issue"][0]
        return f"{issue.get('code')}: {issue.get('diagnostics', '')[:150]} at {issue.get('expression', [''])[0]}"
    except Exception:  # noqa: BLE001 - not an OperationOutcome
        return (response.text or "")[:150]


class _HubUser(FastHttpUser):
    abstract = True
    host = PLAN["root"]
    network_timeout = 180.0
    connection_timeout = 30.0


class _SiteUser(_HubUser):
    """A site's system: its own client (it writes as that site) and its own people."""

    abstract = True
    host = PLAN.get("site_root") or PLAN["root"]  # the sites' pool, where there is one
    _order = itertools.count()

    def on_start(self) -> None:
        index = next(_SiteUser._order)
        entry = PLAN["sites"][index % len(PLAN["sites"])]
        self.site = SITES[entry["code"]]
        self.token = client_token(self, entry["client_id"], entry["key"], "auth/token (site)")
        self.picker = SITE_PEOPLE[self.site.code]


class SiteBundleUser(_SiteUser):
    fixed_count = PLAN["users"]["SiteBundleUser"]
    wait_time = scheduled_pacing(PLAN["pacing"]["SiteBundleUser"])

    @task
    def push_bundle(self) -> None:
        auth = self.token()
        if auth is None:
            return
        doses = self.picker.pick_distinct(PLAN["doses_per_bundle"])
        body = dose_bundle_body([(person, dose) for person, dose, _new in doses], self.site)
        headers = {**auth, "content-type": "application/fhir+json", "prefer": "return=minimal"}
        with self.client.post("/fhir", data=body, headers=headers, name="bundle", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {_diagnostics(r)}")
                return
            entries = orjson.loads(r.content).get("entry", [])
            if len(entries) != 2 * len(doses):
                r.failure(f"{len(entries)} response entries for {2 * len(doses)} sent")
                return
            for i, (_person, _dose, new) in enumerate(doses):
                self._acknowledge(entries[2 * i], "Patient", "pat", new)
                self._acknowledge(entries[2 * i + 1], "Immunization", "imm", new)

    @staticmethod
    def _acknowledge(entry: dict, res_type: str, tag: str, new: bool) -> None:
        response = entry.get("response", {})
        location = response.get("location", "")
        if response.get("status", "").startswith(("200", "201")) and location.startswith(res_type + "/"):
            _ack(f"{tag} {location.split('/')[1]}")
            COUNTS[f"{res_type} acknowledged ({'new' if new else 'known'} person)"] += 1


class VxuSenderUser(_SiteUser):
    fixed_count = PLAN["users"]["VxuSenderUser"]
    wait_time = scheduled_pacing(PLAN["pacing"]["VxuSenderUser"])

    @task
    def send_vxu(self) -> None:
        auth = self.token()
        if auth is None:
            return
        person, dose, new = self.picker.pick()
        message = vxu_message(person, dose, uuid.uuid4().hex)
        with self.client.post("/hl7v2", data=message.encode("utf-8"), headers={**auth, "content-type": ER7}, name="vxu", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            ack = r.content.decode("utf-8", "replace")  # r.text would guess the charset first
            msa = next((s for s in ack.split("\r") if s.startswith("MSA|")), "MSA|?")
            code = msa.split("|")[1]
            COUNTS[f"VXU ACK {code}"] += 1
            if code != "AA":
                r.failure(f"ACK {code}: {ack[:200]}")
                return
        _ack(f"vxu-imm {site_immunization_system(self.site.code)}|{dose.dose_id}")
        _ack(f"vxu-pat {CCCD_SYSTEM}|{person.cccd}")
        COUNTS[f"Immunization acknowledged by VXU ({'new' if new else 'known'} person)"] += 1


class HealthBookUser(_HubUser):
    fixed_count = PLAN["users"]["HealthBookUser"]
    wait_time = scheduled_pacing(PLAN["pacing"]["HealthBookUser"])
    _order = itertools.count()

    def on_start(self) -> None:
        self.rng = random.Random(next(HealthBookUser._order))
        self._login()

    def _login(self) -> None:
        citizen = self.rng.choice(PLAN["citizens"])
        self.patient_id = citizen["patient"]
        self.token = eid_token(self, citizen["cccd"])

    @task(3)
    def everything(self) -> None:
        auth = self.token()
        if auth is not None:
            self.client.get(f"/fhir/Patient/{self.patient_id}/$everything", headers=auth, name="$everything")

    @task(2)
    def certificate(self) -> None:
        auth = self.token()
        if auth is None:
            return
        name = self.rng.choices(list(PLAN["downloads"]), weights=list(PLAN["downloads"].values()))[0]
        self.client.get(f"/certificates/patients/{self.patient_id}/latest/{name}", headers=auth, name=f"certificate {name}")
        if self.rng.random() < 0.05:  # another person opens the app on this phone
            self._login()


class VerifierUser(_HubUser):
    fixed_count = PLAN["users"]["VerifierUser"]
    wait_time = scheduled_pacing(PLAN["pacing"]["VerifierUser"])
    _order = itertools.count()

    def on_start(self) -> None:
        index = next(VerifierUser._order)
        entry = PLAN["verifiers"][index % len(PLAN["verifiers"])]
        self.rng = random.Random(index)
        self.token = client_token(self, entry["client_id"], entry["key"], "auth/token (verifier)")

    @task
    def verify(self) -> None:
        auth = self.token()
        if auth is None:
            return
        qr = self.rng.choice(PLAN["qr"])
        with self.client.post("/certificates/verify", data=orjson.dumps({"qr": qr}), headers={**auth, "content-type": "application/json"},
                              name="verify QR", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
            elif not orjson.loads(r.content).get("valid"):
                r.failure(f"not valid: {r.text[:200]}")


# The plan and the population (tens of thousands of people) live as long as
# locust does: frozen, the cyclic collector no longer walks them each time
# building a Bundle's dicts sets it off, which had cost the load generator
# half the CPU of building one. The thresholds are the hub's own default.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 20, 100)

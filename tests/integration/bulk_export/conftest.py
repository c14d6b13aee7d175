"""Fixtures of the bulk export tests: a hub whose exports start at once, a
registry client allowed to export, and helpers that speak the Bulk Data
protocol over HTTP (kick-off, poll, download) as a registry would."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import running_hub
from tests.builders import immunization, patient

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}


def export_hub(engine, data_dir: Path, sms, **overrides):
    """The app with exports that start without the settle delay; yields (app, raw client, login)."""
    return running_hub(engine, data_dir, sms, settings_overrides={"export_settle_seconds": 0, "export_poll_seconds": 0.05, **overrides})


@pytest.fixture
def hub(engine, tmp_path, sms):
    with export_hub(engine, tmp_path / "hub-data", sms) as running:
        yield running


@pytest.fixture
def writer(hub):
    """A national system client that writes the records to export."""
    app, _raw, login = hub
    with TestClient(app, headers=login("national-admin", "system/*.cruds")) as c:
        yield c


@pytest.fixture
def registry(hub) -> dict[str, str]:
    """Bearer headers of a national registry registered for bulk export."""
    _app, _raw, login = hub
    return login("national-registry", "system/*.rs", roles="bulk-export")


def create(client: TestClient, resource: dict) -> dict:
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()


def person(client: TestClient, n: int, doses: int = 1) -> tuple[dict, list[dict]]:
    """Patient number `n` with `doses` Immunizations; returns the stored resources."""
    pat = create(client, patient(f"0790900{n:05d}", given=("Văn", f"Người{n}")))
    made = [create(client, immunization(f"Patient/{pat['id']}", f"IMM-{n}-{d}", date=f"2021-0{d + 6}-15")) for d in range(1, doses + 1)]
    return pat, made


def kick_off(raw: TestClient, path: str, headers: dict, **params) -> str:
    r = raw.get(path, params=params, headers={**ASYNC, **headers})
    assert r.status_code == 202, r.text
    return r.headers["content-location"]


def wait_done(raw: TestClient, status_url: str, headers: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = raw.get(status_url, headers=headers)
        if r.status_code == 200:
            assert r.headers["content-type"].startswith("application/json")
            return r.json()
        assert r.status_code == 202, r.text
        assert r.headers["x-progress"]
        time.sleep(0.05)
    raise AssertionError(f"export {status_url} did not finish in {timeout} s")


def download(raw: TestClient, manifest: dict, headers: dict) -> dict[str, list[dict]]:
    """Every output file, parsed line by line; checks each line's type and each file's count."""
    resources: dict[str, list[dict]] = {}
    for entry in manifest["output"]:
        r = raw.get(entry["url"], headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/fhir+ndjson"
        lines = r.content.decode("utf-8").splitlines()
        assert len(lines) == entry["count"]
        for line in lines:
            resource = orjson.loads(line)
            assert resource["resourceType"] == entry["type"]
            resources.setdefault(entry["type"], []).append(resource)
    return resources


def export(raw: TestClient, path: str, headers: dict, **params) -> tuple[dict, dict[str, list[dict]]]:
    manifest = wait_done(raw, kick_off(raw, path, headers, **params), headers)
    return manifest, download(raw, manifest, headers)


def ids(resources: list[dict]) -> set[str]:
    return {r["id"] for r in resources}

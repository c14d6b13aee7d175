"""The `vaxhub` command: serve a real HTTP endpoint, migrate, load the demo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.builders import person_with_doses, transaction
from vaxhub.hub.storage.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vaxhub(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaxhub.hub.cli", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def test_help_lists_the_commands():
    out = _vaxhub("--help")
    assert out.returncode == 0
    for command in ("serve", "demo", "db"):
        assert command in out.stdout


def test_db_upgrade_then_current_reports_head(tmp_path):
    env = {"VAXHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    assert _vaxhub("db", "upgrade", env=env).returncode == 0
    current = _vaxhub("db", "current", env=env)
    revision = current.stdout.split()[1]
    assert current.stdout.strip() == f"current: {revision}  head: {revision}"


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_fhir_over_http(tmp_path, workers):
    port = _free_port()
    metrics_token = "m" * 40
    env = {"VAXHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "VAXHUB_DATA_DIR": str(tmp_path / "data"),
           "VAXHUB_METRICS_TOKEN": metrics_token}
    # A hospital registers its public key, then logs in with a signed assertion (SMART Backend Services).
    assert _vaxhub("clients", "keygen", "hospital", "--out", str(tmp_path), env=env).returncode == 0
    added = _vaxhub("clients", "add", "tyt-ben-nghe", "--jwks", str(tmp_path / "hospital.jwks.json"), "--site", "79001",
                    "--scopes", "system/Patient.cruds system/Immunization.cruds", env=env)
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "serve", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/fhir/metadata", proc)
        assert httpx.get(f"{base}/fhir/Immunization").status_code == 401
        got = _vaxhub("token", "tyt-ben-nghe", "--key", str(tmp_path / "hospital.key.pem"), "--url", f"{base}/auth/token", env=env)
        assert got.returncode == 0, got.stderr
        headers = {"content-type": "application/fhir+json", "authorization": f"Bearer {got.stdout.strip()}"}
        bundle = transaction(*person_with_doses("079085012345", 2))
        for _ in range(2):  # the re-send must not duplicate, whichever worker takes it
            r = httpx.post(f"{base}/fhir", json=bundle, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        total = httpx.get(f"{base}/fhir/Immunization", params={"_summary": "count"}, headers=headers).json()["total"]
        assert total == 2
        verified = _vaxhub("audit", "verify", env=env)
        assert verified.returncode == 0 and "intact" in verified.stdout
        assert httpx.get(f"{base}/docs").status_code == 200
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "vaxhub"
        # Whichever worker answers the scrape, it counts every worker's requests.
        for _ in range(12):
            assert httpx.get(f"{base}/fhir/metadata").status_code == 200
        for _ in range(3):
            scraped = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {metrics_token}"})
            assert scraped.status_code == 200, scraped.text
            counted = sum(
                sample.value
                for family in text_string_to_metric_families(scraped.text) if family.name == "vaxhub_http_requests"
                for sample in family.samples
                if sample.name.endswith("_total") and sample.labels.get("route") == "/fhir/metadata" and sample.labels.get("status") == "200"
            )
            assert counted >= 13, counted  # the start-up probe's and these twelve
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_demo_loads_sample_data_idempotently(tmp_path):
    first = _vaxhub("demo", "--people", "40", "--data-dir", str(tmp_path), "--load-only", timeout=180)
    assert first.returncode == 0, first.stderr
    assert "resources created" in first.stdout and "/fhir/metadata" in first.stdout
    created = int(first.stdout.split("sample data: ")[1].split()[0])
    assert created > 40
    # The demo's signing keys live in its folder, not in ./vaxhub-data of the working directory.
    assert (tmp_path / "cert-keys").is_dir() and any((tmp_path / "cert-keys").iterdir())
    again = _vaxhub("demo", "--people", "40", "--data-dir", str(tmp_path), "--load-only", timeout=180)
    assert "sample data: 0 resources created" in again.stdout


def test_serve_names_its_postgresql_connections(tmp_path, postgres_database):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PGAPPNAME"}
    env.update({"VAXHUB_DATABASE_URL": postgres_database, "VAXHUB_DATA_DIR": str(tmp_path / "data")})
    proc = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "serve", "--port", str(port), "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/readyz", proc)  # a database round trip in a worker process
        admin = make_engine(postgres_database, pool_size=1)
        try:
            with admin.connect() as conn:
                names = set(conn.execute(text(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )).scalars())
        finally:
            admin.dispose()
        assert "vaxhub serve" in names, names
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _idle_then_ask(port: int, idle: float) -> int | None:
    """Ask on one keep-alive connection, stay idle for `idle` s, ask again on the
    same connection: the second answer's status, None when the server had closed it."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/fhir/metadata")
        first = conn.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close
        sock = conn.sock
        time.sleep(idle)
        try:
            conn.request("GET", "/fhir/metadata")
            second = conn.getresponse()
            second.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            return None
        assert conn.sock is sock  # the same connection, not a new one
        return second.status
    finally:
        conn.close()


def test_serve_keeps_idle_connections_open_as_long_as_asked(tmp_path):
    port = _free_port()
    env = {"VAXHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "VAXHUB_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "serve", "--port", str(port), "--keep-alive", "2"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/fhir/metadata", proc)
        assert _idle_then_ask(port, 0.5) == 200  # reused within the keep-alive
        assert _idle_then_ask(port, 3.5) is None  # closed by the server after 2 s idle
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # The default outlasts a load balancer's 60 s idle timeout (and uvicorn's own 5 s).
    assert "default: 75" in _vaxhub("serve", "--help").stdout.replace("\n", " ").replace("  ", " ")

"""`vaxhub demo` shows the three pages with data: the printed citizen signs in
to the portal and gets a certificate, whose QR the verifier page finds valid,
and the printed operator sees the dashboard's figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_cli_serve import ROOT, _free_port, _vaxhub, _wait_for
from tests.web_pages import csrf_token


def _sms_code(log: Path) -> str:
    for _ in range(100):
        found = re.findall(r"\[SMS to \+\d+\] .*?(\d{6})", log.read_text())
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError("no code was printed")


def test_the_demo_shows_the_portal_verifier_and_dashboard_with_data(tmp_path: Path):
    port = _free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaxhub.hub.cli", "demo", "--people", "30", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
            cwd=ROOT, env={**os.environ, "VAXHUB_DATA_DIR": str(tmp_path / "hub-data")}, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{root}/fhir/metadata", proc, seconds=120)
        printed = log.read_text()
        name, born, phone = re.search(r"citizen portal\s+\S+\s+\((.+?), born (\S+), phone (\d+);", printed).groups()
        with httpx.Client(base_url=root, timeout=30, follow_redirects=True) as citizen:
            looked = citizen.post("/portal/lookup", data={"csrf": csrf_token(citizen.get("/portal").text), "name": name, "birth_date": born, "phone": phone})
            assert looked.status_code == 200 and "/portal/code" in str(looked.url)
            record = citizen.post("/portal/code", data={"csrf": csrf_token(looked.text), "code": _sms_code(log)})
            assert record.status_code == 200 and name in record.text and 'class="dose"' in record.text
            deadline = time.monotonic() + 60  # the demo's worker checks the identity with the registry simulator
            while 'id="issue"' not in record.text and time.monotonic() < deadline:
                time.sleep(1)
                record = citizen.get("/portal/record")
            issued = citizen.post("/portal/certificate", data={"csrf": csrf_token(record.text)})
            assert issued.status_code == 200 and 'id="download-png"' in issued.text
            qr = citizen.get("/portal/certificate/dcc.png").content
        with httpx.Client(base_url=root, timeout=30) as checker:
            form = csrf_token(checker.get("/verify").text)
            verdict = checker.post("/verify", data={"csrf": form}, files={"image": ("qr.png", qr, "image/png")})
            assert 'data-valid="true"' in verdict.text and name in verdict.text
        operator = re.search(r"operator\s+\.venv/bin/vaxhub token (\S+) --key (\S+)", printed)
        token = _vaxhub("token", operator.group(1), "--key", operator.group(2), "--url", f"{root}/auth/token").stdout.strip()
        figures = httpx.get(f"{root}/dashboard/data", headers={"authorization": f"Bearer {token}"}, timeout=30).json()
        assert figures["doses"] > 30 and figures["coverage"]["people"] == 30 and figures["doses_per_day"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)

"""`vaxhub demo` as a person uses it: serve, then log in as the printed callers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_cli_serve import ROOT, _free_port, _vaxhub, _wait_for


def test_demo_serves_and_its_printed_logins_work(tmp_path: Path):
    port = _free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "demo", "--people", "30", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
                                cwd=ROOT, env={**os.environ, "VAXHUB_DATA_DIR": str(tmp_path / "hub-data")}, stdout=out, stderr=subprocess.STDOUT, text=True)
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{root}/fhir/metadata", proc, seconds=120)
        printed = log.read_text()
        # The hospital: the printed `vaxhub token` command gives a token that reads the sample data.
        hospital = re.search(r"system\s+\.venv/bin/vaxhub token (\S+) --key (\S+)", printed)
        token = _vaxhub("token", hospital.group(1), "--key", hospital.group(2), "--url", f"{root}/auth/token").stdout.strip()
        total = httpx.get(f"{root}/fhir/Immunization", params={"_summary": "count"}, headers={"authorization": f"Bearer {token}"}).json()["total"]
        assert total > 30
        # The verifier's token is refused health data.
        verifier = re.search(r"verifier\s+\.venv/bin/vaxhub token (\S+) --key (\S+)", printed)
        vtoken = _vaxhub("token", verifier.group(1), "--key", verifier.group(2), "--url", f"{root}/auth/token").stdout.strip()
        assert httpx.get(f"{root}/fhir/Patient", headers={"authorization": f"Bearer {vtoken}"}).status_code == 403
        # The citizen: the one-time code arrives on the demo's console.
        cccd, phone = re.search(r'"cccd": "(\d+)", "phone": "(\d+)"', printed).groups()
        challenge = httpx.post(f"{root}/auth/otp/start", json={"cccd": cccd, "phone": phone}).json()["challenge"]
        code = None
        for _ in range(50):
            found = re.findall(r"\[SMS to \+\d+\] .*?(\d{6})", log.read_text())
            if found:
                code = found[-1]
                break
            time.sleep(0.1)
        session = httpx.post(f"{root}/auth/otp/verify", json={"challenge": challenge, "code": code}).json()
        mine = httpx.get(f"{root}/fhir/Immunization", headers={"authorization": f"Bearer {session['access_token']}"}).json()
        assert mine.get("entry") and {e["resource"]["patient"]["reference"] for e in mine["entry"]} == {f"Patient/{session['patient']}"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)

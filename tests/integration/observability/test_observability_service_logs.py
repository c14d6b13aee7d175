"""The long-running commands log as the API does: `vaxhub mpi work` (like
`vaxhub worker`) writes JSON lines carrying the request id of the write that
queued the work, when `VAXHUB_LOG_FORMAT=json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.identity.identity_builders import site_patient
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.observability.request_context import bound_request_id
from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.hub.storage.store import FhirStore

ROOT = Path(__file__).resolve().parents[3]


def test_the_link_worker_command_logs_json_lines_with_the_writing_requests_id(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with bound_request_id("site-79001-upload-42"), FhirStore(engine, listeners=[LinkEnqueuer()]).writer() as w:
        patient_id = w.create(site_patient("Trần Thị Hoa", birth="1985-04-02", gender="female", cccd="001185000123")).stored.id
    engine.dispose()

    env = {**os.environ, "VAXHUB_DATABASE_URL": url, "VAXHUB_DATA_DIR": str(tmp_path / "data"),
           "VAXHUB_LOG_FORMAT": "json", "VAXHUB_LOG_LEVEL": "DEBUG"}
    done = subprocess.run([sys.executable, "-m", "vaxhub.hub.cli", "mpi", "work", "--until-idle"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    linking = [r for r in lines if r.get("logger") == "vaxhub.hub.mpi.worker" and r.get("message") == f"linking Patient/{patient_id}, attempt 1"]
    assert linking, done.stderr[-3000:]
    assert linking[0]["request_id"] == "site-79001-upload-42" and linking[0]["level"] == "DEBUG"

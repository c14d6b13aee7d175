"""Several hub processes, one server's metrics: with PROMETHEUS_MULTIPROC_DIR
(as under gunicorn or `uvicorn --workers N`), a scrape answered by any process
adds up what every process counted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "prometheus-scrape-token-0123456789abcdef"

HUB_PROCESS = textwrap.dedent(
    """
    import sys
    from fastapi.testclient import TestClient
    from vaxhub.hub.app import build_app
    from vaxhub.settings import load_settings

    database, data_dir, requests, scrape = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "scrape"
    app = build_app(load_settings(database_url=database, data_dir=data_dir, metrics_token="%s"))
    with TestClient(app) as client:
        for _ in range(requests):
            assert client.get("/fhir/metadata").status_code == 200
        if scrape:
            answer = client.get("/metrics", headers={"authorization": "Bearer %s"})
            assert answer.status_code == 200, answer.text
            sys.stdout.write(answer.text)
    """
    % (TOKEN, TOKEN)
)


def _hub_process(tmp_path: Path, env: dict[str, str], requests: int, *, scrape: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-c", HUB_PROCESS, f"sqlite:///{tmp_path / 'hub.db'}", str(tmp_path / "data"), str(requests), "scrape" if scrape else "-"],
        env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _metadata_requests(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "vaxhub_http_requests_total" and sample.labels.get("route") == "/fhir/metadata"
    )


def test_a_scrape_adds_up_every_process(tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    _hub_process(tmp_path, env, 3)
    _hub_process(tmp_path, env, 4)
    assert len(list(metrics_dir.glob("*.db"))) >= 2  # one file set per process
    assert _metadata_requests(_hub_process(tmp_path, env, 1, scrape=True)) == 3 + 4 + 1


def test_without_the_directory_a_process_reports_only_itself(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    _hub_process(tmp_path, env, 3)
    assert _metadata_requests(_hub_process(tmp_path, env, 2, scrape=True)) == 2

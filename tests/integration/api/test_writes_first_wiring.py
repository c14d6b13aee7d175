"""The hub's API processes gate their requests writes-first (`vaxhub.hub.api.writes_first`):
each request is counted in `vaxhub_api_queue_wait_seconds` under its kind, and
`writes_first = false` takes the gate out."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.builders import person_with_doses, transaction
from tests.conftest import running_hub


def _waited(kind: str) -> float:
    return REGISTRY.get_sample_value("vaxhub_api_queue_wait_seconds_count", {"kind": kind}) or 0.0


@pytest.mark.parametrize("gated", [True, False])
def test_requests_pass_the_gate_as_writes_or_reads(engine, tmp_path, sms, gated):
    with running_hub(engine, tmp_path / "hub-data", sms, {"writes_first": gated, "api_threads": 4}) as (app, raw, login):
        headers = login("site-a", "system/*.*")
        writes, reads = _waited("write"), _waited("read")
        stored = raw.post("/fhir", json=transaction(*person_with_doses("079085000031", 2)), headers=headers)
        assert stored.status_code == 200, stored.text
        found = raw.get("/fhir/Immunization", params={"_summary": "count"}, headers=headers)
        assert found.json()["total"] == 2
        assert raw.get("/healthz").status_code == 200  # probes never pass the gate
        assert (_waited("write") - writes, _waited("read") - reads) == ((1.0, 1.0) if gated else (0.0, 0.0))

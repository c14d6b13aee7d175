"""Batch re-linking (`vaxhub mpi relink`) of a synthetic population with its
truth; it keeps what operators decided and changes nothing when run twice."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.integration.identity.identity_builders import HUONG, RECORD, of, person_of
from vaxhub.hub.cli import app as cli
from vaxhub.hub.mpi.batch import relink_all
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.mpi.worker import LinkWorker
from vaxhub.hub.storage.store import FhirStore
from vaxhub.identity.population import generate_linkage_population


@pytest.fixture(scope="module")
def population():
    return generate_linkage_population(400, seed=11)


@pytest.fixture
def stored(engine, population):
    """The population's records written by sites (queued, not linked yet)."""
    store = FhirStore(engine, listeners=[LinkEnqueuer()])
    truth, held = {}, set()
    with store.writer() as w:
        for n, record in enumerate(population.records):
            patient = {k: v for k, v in record.patient.items() if k not in ("managingOrganization", "id")}
            # The hub keeps a national number on one Patient only: a later record of
            # the same person arrives without it (the site's conditional create aside).
            ids = [(i.get("system"), i.get("value")) for i in patient.get("identifier", [])]
            patient["identifier"] = [i for i, key in zip(patient.get("identifier", []), ids) if key not in held]
            held.update(ids)
            record_id = f"rec-{n}"
            w.update("Patient", record_id, {**patient, "id": record_id})
            truth[record_id] = record.person_id
    return truth


def persons(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(RECORD.c.record_id, RECORD.c.person_id)).all())


def pair_quality(truth: dict[str, str], found: dict[str, str]) -> tuple[float, float, int]:
    """(precision, recall, wrong pairs) of the "same person" pairs."""
    def pairs(labels):
        groups: dict[str, list[str]] = {}
        for record, label in labels.items():
            groups.setdefault(label, []).append(record)
        return {frozenset(p) for g in groups.values() for p in combinations(sorted(g), 2)}
    true, made = pairs(truth), pairs({r: found[r] for r in truth})
    right = len(true & made)
    return right / max(len(made), 1), right / max(len(true), 1), len(made - true)


def test_the_cli_relinks_the_whole_index_and_reports(engine, stored, monkeypatch):
    monkeypatch.setenv("VAXHUB_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli, ["mpi", "relink", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the report on stdout; log lines go to stderr
    assert report["records"] == len(stored) and report["moved"] == len(stored)
    found = persons(engine)
    precision, recall, wrong = pair_quality(stored, found)
    assert wrong == 0 and recall > 0.7, (precision, recall, wrong)

    work = CliRunner().invoke(cli, ["mpi", "work", "--until-idle"])
    assert work.exit_code == 0, work.output
    assert pair_quality(stored, persons(engine))[2] == 0

    stats = CliRunner().invoke(cli, ["mpi", "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.stdout)
    assert counts["persons"]["active"] == len(set(persons(engine).values())) and counts["golden_stale"] == 0
    assert counts["records"] == {"linked": len(stored), "queued": 0, "failed": 0}


def test_relinking_twice_moves_nothing_and_the_online_linker_agrees(engine, stored, mpi):
    first = relink_all(engine)
    LinkWorker(mpi).run(until_idle=True)  # rows the batch filed are linked online once more
    after_online = persons(engine)
    precision, recall, wrong = pair_quality(stored, after_online)
    assert wrong == 0 and recall > 0.7, (precision, recall, wrong)
    second = relink_all(engine)
    assert first.moved == len(stored) and second.moved <= len(stored) // 50
    assert pair_quality(stored, persons(engine))[2] == 0


def test_the_batch_keeps_what_operators_decided(site, link_all, engine, ops):
    hanoi, hcm = site("79001"), site("79002")
    a = hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")).json()["id"]
    b = hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone="0912345678", site="79002", number="b")).json()["id"]
    link_all()
    assert person_of(engine, a) == person_of(engine, b)
    assert ops.post("/ops/mpi/unlink", json={"record": b, "reason": "two women"}).status_code == 200
    report = relink_all(engine)
    assert person_of(engine, a) != person_of(engine, b) and report.moved == 0

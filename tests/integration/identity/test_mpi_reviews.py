"""The review queue: a borderline pair is put to an operator; accepting links
it, rejecting keeps it apart for good."""

from __future__ import annotations

import pytest

from tests.integration.identity.identity_builders import HUONG, NAM, link_row, of, person_of


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def borderline(site, link_all, engine):
    """Her record, and one with a mark that makes the given name another name
    ("Huơng"): surname, birth date and phone agree, the rules allow a review at most."""
    hanoi, hcm = site("79001"), site("79002")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    c = created(hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyễn Thị Thu Huơng", cccd=None, phone="0912345678", site="79002", number="c")))
    link_all()
    return a, c


def open_reviews(ops) -> list[dict]:
    r = ops.get("/ops/mpi/reviews")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_borderline_pair_waits_for_an_operator_who_accepts_it(ops, borderline, engine, client):
    a, c = borderline
    assert person_of(engine, a) != person_of(engine, c)
    [review] = open_reviews(ops)
    assert {review["record"]["id"], review["candidate"]["id"]} == {a, c}
    assert review["grade"] == "possible" and 0 < review["score"] <= 1
    assert any("review at most" in reason for reason in review["reasons"])
    assert review["record"]["name"] and review["candidate"]["birthDate"] == "1990-05-04"

    decided = ops.post(f"/ops/mpi/reviews/{review['id']}", json={"decision": "accept", "reason": "same woman, mark typed wrong"})
    assert decided.status_code == 200, decided.text
    assert person_of(engine, a) == person_of(engine, c)
    assert open_reviews(ops) == []
    accepted = ops.get("/ops/mpi/reviews", params={"status": "accepted"}).json()["items"]
    assert [(r["id"], r["decided_by"], r["reason"]) for r in accepted] == [(review["id"], "moh-mpi-desk", "same woman, mark typed wrong")]
    assert ops.post(f"/ops/mpi/reviews/{review['id']}", json={"decision": "reject", "reason": "changed my mind"}).status_code == 409


def test_a_rejected_pair_stays_apart_and_is_not_queued_again(ops, borderline, engine, link_all, site):
    a, c = borderline
    [review] = open_reviews(ops)
    decided = ops.post(f"/ops/mpi/reviews/{review['id']}", json={"decision": "reject", "reason": "different women, checked the CCCD"})
    assert decided.status_code == 200, decided.text
    assert open_reviews(ops) == []

    # The site adds her social insurance number: the record is linked again
    # (nothing in it contradicts the other), and the pair is not queued again.
    hcm = site("79002")
    record = hcm.get(f"/fhir/Patient/{c}").json()
    bhxh = {"system": "https://vaxhub.vn/fhir/sid/bhxh", "value": "0123456700"}
    assert hcm.put(f"/fhir/Patient/{c}", json={**record, "identifier": record["identifier"] + [bhxh]}).status_code == 200
    link_all()
    assert link_row(engine, c)["record_version"] == 2
    assert person_of(engine, a) != person_of(engine, c)
    assert open_reviews(ops) == []
    history = ops.get(f"/ops/mpi/records/{review['record']['id']}").json()["events"]
    assert [e["action"] for e in history].count("review-queued") == 1


def test_reviews_opened_in_one_batch_each_name_their_own_pair_in_the_history(ops, site, link_all, engine):
    """The worker keeps a batch's reviews and writes them with its other writes:
    each history event must still name its own review, and each review the
    candidate's person."""
    hanoi, hcm = site("79001"), site("79002")
    pairs = []
    for citizen, typo, phone in ((HUONG, "Nguyễn Thị Thu Huơng", "0912345678"), (NAM, "Nguyễn Văn Năm", "0933444555")):
        first = created(hanoi.post("/fhir/Patient", json=of(citizen, phone=phone, number=f"{citizen.cccd}-a")))
        second = created(hcm.post("/fhir/Patient", json=of(citizen, name=typo, cccd=None, phone=phone, site="79002", number=f"{citizen.cccd}-c")))
        pairs.append({first, second})
    link_all()
    reviews = open_reviews(ops)
    assert sorted(({r["record"]["id"], r["candidate"]["id"]} for r in reviews), key=sorted) == sorted(pairs, key=sorted)
    for review in reviews:
        record, candidate = review["record"]["id"], review["candidate"]["id"]
        events = [e for e in ops.get(f"/ops/mpi/records/{record}").json()["events"] if e["action"] == "review-queued"]
        assert [(e["review"], e["after"]["candidate"]) for e in events] == [(review["id"], candidate)]
        assert events[0]["person"] == person_of(engine, candidate) != person_of(engine, record)


def test_review_decisions_are_checked(ops, borderline):
    [review] = open_reviews(ops)
    assert ops.post(f"/ops/mpi/reviews/{review['id']}", json={"decision": "maybe", "reason": "x"}).status_code in (400, 422)
    assert ops.post(f"/ops/mpi/reviews/{review['id']}", json={"decision": "accept"}).status_code in (400, 422)
    assert ops.post("/ops/mpi/reviews/99999", json={"decision": "accept", "reason": "x"}).status_code == 404
    assert ops.get("/ops/mpi/reviews", params={"status": "whatever"}).status_code == 400
    assert len(open_reviews(ops)) == 1

"""`Patient/$match` as a plain function: the persons a Patient resource may be.

https://hl7.org/fhir/R4/patient-operation-match.html

The input is scored exactly as an incoming site record would be (blocking
keys, the same model and term counts), against the persons of the index;
nothing is stored. Results are persons (their golden Patients), each with
its best record's probability as the score and the model's grade, ordered
by score. With `onlyCertainMatches` only a single certain match is returned
(several certain matches are no certain match: the spec asks for none then).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from vaxhub.hub.mpi.candidates import Evidence, PersonMatch, fetch_candidates, score_persons
from vaxhub.identity.keys import match_keys
from vaxhub.identity.scoring import MatchModel

DEFAULT_COUNT = 10
MAX_COUNT = 100


@dataclass(frozen=True)
class MatchRequest:
    patient: dict
    only_certain: bool = False
    count: int = DEFAULT_COUNT


def match_persons(conn: Connection, model: MatchModel, request: MatchRequest) -> list[PersonMatch]:
    evidence = Evidence(match_keys(request.patient))
    ranked = score_persons(conn, model, evidence, fetch_candidates(conn, evidence.blocks()))
    found = [m for m in ranked if m.score.grade != "no-match"]
    found.sort(key=lambda m: (-m.score.probability, -m.score.weight, m.person_id))
    if request.only_certain:
        certain = [m for m in found if m.score.grade == "certain"]
        found = certain if len(certain) == 1 else []
    return found[: request.count]

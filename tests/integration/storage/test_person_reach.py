"""The reach of a person's records, each question in one statement built
once (a citizen's every request and certificate download asks), on SQLite
and PostgreSQL."""

from datetime import datetime

from sqlalchemy import event, insert

from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.person_reach import linked_record_ids, person_compartment_ids

RECORD = MpiRecordRow.__table__


def _record(record_id: str, person_id: str | None) -> dict:
    return {"record_id": record_id, "person_id": person_id, "state": "linked" if person_id else "queued",
            "locked": False, "queued_at": datetime(2021, 8, 1), "attempts": 0}


def test_each_reach_is_one_statement_and_follows_the_links(engine):
    with engine.begin() as conn:
        conn.execute(insert(RECORD), [_record("site-b", "person-1"), _record("site-a", "person-1"), _record("site-c", None),
                                      _record("site-d", "person-2")])
    sent: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        if statement.startswith("SELECT"):  # SQLite's BEGIN is sent as a statement too
            sent.append(statement)

    with engine.connect() as conn:
        event.listen(engine, "before_cursor_execute", listener)
        try:
            answers = {
                "linked a": linked_record_ids(conn, "site-a"),
                "linked b": linked_record_ids(conn, "site-b"),
                "linked person": linked_record_ids(conn, "person-1"),
                "linked queued": linked_record_ids(conn, "site-c"),
                "linked unknown": linked_record_ids(conn, "nobody"),
                "compartment a": person_compartment_ids(conn, "site-a"),
                "compartment queued": person_compartment_ids(conn, "site-c"),
            }
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert answers == {
        "linked a": ["site-a", "site-b"],  # the record asked for first, then its person's others
        "linked b": ["site-b", "site-a"],
        "linked person": ["site-a", "site-b"],
        "linked queued": ["site-c"],
        "linked unknown": ["nobody"],
        "compartment a": frozenset({"person-1", "site-a", "site-b"}),
        "compartment queued": frozenset({"site-c"}),
    }
    assert len(sent) == len(answers), sent

"""Term frequencies in the database: how many records hold each name and phone.

The scorer weighs agreement on "Nguyễn" (~38% of people) far below agreement
on a rare surname; the counts it needs live in `mpi_term`, kept current with
every link (one upsert per changed value), so every hub process scores with
the same figures. Scoring one record loads only the counts of the values in
play (the record's and its candidates'), one indexed query.

Shares are shrunk toward the model's average u with the weight of
`PSEUDO_RECORDS` records: (count + K·u) / (total + K). At a million records
this is the observed share to within a fraction of a percent; in a young
index of a few hundred records, where "Nguyễn" may be every other name or
none, it is the trained average instead of a figure from a tiny sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
import dataclasses

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vaxhub.hub.storage.mpi_tables import MpiTermRow
from vaxhub.hub.storage.lists import one_of
from vaxhub.identity.keys import MatchKeys
from vaxhub.identity.scoring import TF_FIELDS, MatchModel

TERM = MpiTermRow.__table__
TOTAL = ("", "")  # the row counting the records
_MAX = 160
PSEUDO_RECORDS = 10_000
# The level of each counted field whose u the shares are shrunk toward.
_AGREEMENT = {"family": ("family", "exact"), "middle": ("middle", "exact"), "given": ("given", "exact"), "phone": ("phone", "same")}


_LOAD = select(TERM.c.field, TERM.c.value, TERM.c.count).where(
    one_of(TERM.c.field, "fields"), one_of(TERM.c.value, "values"))
# PostgreSQL: the wanted (field, value) pairs themselves, one key probe each. Fields and
# values apart would probe every field with every value: 5 times the probes for a batch.
_LOAD_PAIRS = text(
    "SELECT t.field, t.value, t.count FROM unnest(CAST(:fields AS text[]), CAST(:values AS text[])) AS w(field, value) "
    "JOIN mpi_term t ON t.field = w.field AND t.value = w.value"
)
_UPSERT_ARRAYS = text(
    "INSERT INTO mpi_term (field, value, count) SELECT * FROM unnest(CAST(:fields AS text[]), CAST(:values AS text[]), CAST(:counts AS int[])) "
    "ON CONFLICT (field, value) DO UPDATE SET count = mpi_term.count + excluded.count"
)


class IndexFrequencies:
    """`TermFrequencies` of the index, for the values loaded."""

    def __init__(self, counts: dict[str, dict[str, int]], total: int, average: dict[str, float]):
        self.counts = counts
        self.total = max(total, 0)
        self.average = average

    def share(self, field: str, value: str) -> float:
        count = max(self.counts.get(field, {}).get(value[:_MAX], 0), 0)
        return (count + PSEUDO_RECORDS * self.average.get(field, 1e-6)) / (self.total + PSEUDO_RECORDS)


def average_shares(model: MatchModel) -> dict[str, float]:
    """The model's average u of agreement on each counted field."""
    found = {}
    for field, (comparison, level) in _AGREEMENT.items():
        try:
            found[field] = float(model.levels[comparison][level]["u"])
        except (KeyError, TypeError, ValueError):
            found[field] = 1e-6
    return found


def term_values(keys: MatchKeys) -> list[tuple[str, str]]:
    """The (field, value) pairs of one record that are counted."""
    return [(f, getattr(keys, f)[:_MAX]) for f in TF_FIELDS if getattr(keys, f)]


def load_frequencies(conn: Connection, records: Iterable[MatchKeys], model: MatchModel) -> IndexFrequencies:
    """The counts of every value the given records hold, and the total."""
    wanted: dict[str, set[str]] = {}
    for keys in records:
        for field, value in term_values(keys):
            wanted.setdefault(field, set()).add(value)
    if conn.dialect.name == "postgresql":
        pairs = [TOTAL, *sorted((f, v) for f, vs in wanted.items() for v in vs)]
        rows = conn.execute(_LOAD_PAIRS, {"fields": [f for f, _ in pairs], "values": [v for _, v in pairs]}).all()
    else:
        values = sorted({v for vs in wanted.values() for v in vs} | {""})
        rows = conn.execute(_LOAD, {"fields": sorted(wanted) + [""], "values": values}).all()
    total = 0
    counts: dict[str, dict[str, int]] = {field: {} for field in TF_FIELDS}
    for field, value, count in rows:
        if (field, value) == TOTAL:
            total = count
        elif value in wanted.get(field, ()):
            counts[field][value] = count
    return IndexFrequencies(counts, total, average_shares(model))


def count_terms(conn: Connection, *, added: Iterable[MatchKeys] = (), removed: Iterable[MatchKeys] = ()) -> None:
    """Add and remove records from the counts (one upsert per changed value)."""
    delta: Counter[tuple[str, str]] = Counter()
    for keys in added:
        delta[TOTAL] += 1
        for pair in term_values(keys):
            delta[pair] += 1
    for keys in removed:
        delta[TOTAL] -= 1
        for pair in term_values(keys):
            delta[pair] -= 1
    rows = [{"field": f, "value": v, "count": n} for (f, v), n in sorted(delta.items()) if n]
    if not rows:
        return
    if conn.dialect.name == "postgresql":  # one prepared statement whatever the number of values
        conn.execute(_UPSERT_ARRAYS, {"fields": [r["field"] for r in rows], "values": [r["value"] for r in rows], "counts": [r["count"] for r in rows]})
        return
    stmt = sqlite_insert(TERM).values(rows)
    conn.execute(stmt.on_conflict_do_update(index_elements=[TERM.c.field, TERM.c.value], set_={"count": TERM.c.count + stmt.excluded["count"]}))


@dataclasses.dataclass
class TermChanges:
    """Count changes gathered over a link batch and written in one upsert at
    its end: records later in the batch score against counts that miss a few
    dozen of the population's records, which moves no weight measurably."""

    added: list[MatchKeys] = dataclasses.field(default_factory=list)
    removed: list[MatchKeys] = dataclasses.field(default_factory=list)

    def write(self, conn: Connection) -> None:
        count_terms(conn, added=self.added, removed=self.removed)
        self.added, self.removed = [], []

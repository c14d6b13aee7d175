"""The link worker's term-count read on PostgreSQL: wanted (field, value) pairs
against fields and values apart.

A scratch database gets the term counts (`mpi_term`) of `--records` synthetic
site records. Then `--reads` reads of the counts for `--batch` records each
(records drawn from the same population, as a link batch's incoming records
and candidates are) go through `load_frequencies`, which looks up the wanted
pairs, and, alternately in the same run, through the statement it replaced,
which matched `field = ANY(fields) AND value = ANY(values)` and so probed the
key index with every field for every value. Both answer the same counts (the
run checks). It prints milliseconds per read, the index buffers one read
touches (EXPLAIN ANALYZE BUFFERS), and pairs/fields-and-values as a ratio.

    .venv/bin/python bench/mpi_term_reads.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import scratch_engine  # noqa: E402
from vaxhub.hub.mpi.frequencies import _LOAD, _LOAD_PAIRS, TOTAL, count_terms, load_frequencies, term_values  # noqa: E402
from vaxhub.identity.keys import match_keys  # noqa: E402
from vaxhub.identity.population import generate_linkage_population  # noqa: E402
from vaxhub.identity.scoring import _default_model  # noqa: E402

console = Console(width=140)


def _fields_and_values(conn, batch) -> dict:  # noqa: ANN001
    """The replaced read: every field with every value, then kept where the pair was wanted."""
    wanted: dict[str, set[str]] = {}
    for keys in batch:
        for field, value in term_values(keys):
            wanted.setdefault(field, set()).add(value)
    values = sorted({v for vs in wanted.values() for v in vs} | {""})
    rows = conn.execute(_LOAD, {"fields": sorted(wanted) + [""], "values": values}).all()
    return {(f, v): n for f, v, n in rows if (f, v) == TOTAL or v in wanted.get(f, ())}


def _as_pairs(found) -> dict:  # noqa: ANN001
    pairs = {(f, v): n for f, counts in found.counts.items() for v, n in counts.items()}
    pairs[TOTAL] = found.total
    return pairs


def _buffers(conn, sql: str, params: dict) -> str:  # noqa: ANN001
    """Shared buffers the statement touched, from its plan's top node."""
    plan = conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {sql}"), params).scalars().all()
    hits = [int(m) for line in plan for m in re.findall(r"shared hit=(\d+)", line)]  # the first is the top node's
    return str(hits[0]) if hits else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=40, help="records whose counts one read loads")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with scratch_engine(args.postgres_url, "vaxhub_mpiterms", keep=args.keep, say=console.print) as engine:
        started = time.perf_counter()
        population = generate_linkage_population(args.records, seed=7)
        records = [match_keys(r.patient) for r in population.records]
        with engine.begin() as conn:
            for at in range(0, len(records), 20_000):
                count_terms(conn, added=records[at: at + 20_000])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE mpi_term"))
            terms = conn.execute(text("SELECT count(*) FROM mpi_term")).scalar_one()
        console.print(f"{len(records):,} records, {terms:,} counted values, loaded in {time.perf_counter() - started:.0f} s")

        rng = random.Random(11)
        batches = [rng.sample(records, args.batch) for _ in range(args.reads)]
        model = _default_model()
        seconds = {"pairs": 0.0, "fields × values": 0.0}
        with engine.connect() as conn:
            for batch in batches[:50]:  # warm the cache and the prepared statements
                assert _as_pairs(load_frequencies(conn, batch, model)) == _fields_and_values(conn, batch), "the two reads disagree"
            for i, batch in enumerate(batches):
                order = (("pairs", lambda b=batch: load_frequencies(conn, b, model)), ("fields × values", lambda b=batch: _fields_and_values(conn, b)))
                for name, read in (order if i % 2 == 0 else order[::-1]):
                    t0 = time.perf_counter()
                    read()
                    seconds[name] += time.perf_counter() - t0
            sample = batches[0]
            pairs = [TOTAL, *sorted({p for k in sample for p in term_values(k)})]
            wanted_fields = sorted({f for f, _ in pairs if f}) + [""]
            wanted_values = sorted({v for _, v in pairs})
            buffers = {
                "pairs": _buffers(conn, _LOAD_PAIRS.text, {"fields": [f for f, _ in pairs], "values": [v for _, v in pairs]}),
                "fields × values": _buffers(
                    conn, "SELECT field, value, count FROM mpi_term WHERE field = ANY(CAST(:fields AS text[])) AND value = ANY(CAST(:values AS text[]))",
                    {"fields": wanted_fields, "values": wanted_values}),
            }
        table = Table(title=f"term-count reads of {args.batch} records' values, {args.reads:,} each, alternating")
        for col in ("read", "ms per read", "buffers (one read)"):
            table.add_column(col, justify="left" if col == "read" else "right")
        for name in seconds:
            table.add_row(name, f"{seconds[name] * 1000 / args.reads:.3f}", buffers[name])
        console.print(table)
        console.print(f"pairs / fields × values: {seconds['pairs'] / seconds['fields × values']:.2f} of the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())

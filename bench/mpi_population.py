"""A synthetic population loaded into the master patient index tables, fast.

Shared by `bench/mpi_online.py` and `bench/mpi_relink.py`. Site records come
from `vaxhub.identity.population` (manual-entry errors, twins, namesakes,
households sharing a phone, each record with its true person), generated in
chunks by two processes, each chunk written as PostgreSQL COPY text files and
loaded with psycopg's COPY:

- `resource` and `resource_version`: every site Patient (and, when linked by
  truth, each person's golden Patient), as the store keeps them;
- the golden Patients' search-index rows and identifier claims, which a
  golden update replaces (site records' are not loaded: linking never
  searches them);
- `mpi_record`, `mpi_block`, `mpi_person`, `mpi_term`: the index itself.

A national number is kept on the first record holding it only, as the hub's
identifier claims would (a second Patient with the same CCCD is refused).
`held_out` records (one per person with several records) are not loaded:
the online bench links them one by one.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import psycopg

from vaxhub.hub.mpi.frequencies import TOTAL, term_values
from vaxhub.hub.mpi.golden import Member, golden_patient
from vaxhub.hub.storage.indexer import index_rows
from vaxhub.identity.keys import blocking_keys, match_keys
from vaxhub.identity.population import COPY_WEIGHTS, generate_linkage_population

NOW = datetime(2026, 11, 26, 8, 0, 0)
MEAN_COPIES = sum((i + 1) * w for i, w in enumerate(COPY_WEIGHTS)) / sum(COPY_WEIGHTS)
TABLES = {
    "resource": "res_type, res_id, version, last_updated, deleted, patient_id, content",
    "resource_version": "res_type, res_id, version, last_updated, method, content",
    "mpi_person": "person_id, state, merged_into, golden_stale, created_at, updated_at",
    "mpi_record": "record_id, person_id, record_version, match_keys, state, method, grade, score, reasons, verified_cccd, "
                  "registry_cccd, locked, queued_at, linked_at, attempts",
    "mpi_block": "key, record_id",
    "sp_token": "res_type, res_id, param, system, value",
    "sp_string": "res_type, res_id, param, value_exact, value_fold",
    "sp_date": "res_type, res_id, param, start, \"end\"",
    "sp_reference": "res_type, res_id, param, target_type, target_id",
    "identifier_claim": "res_type, value, system, res_id",
}
# IndexRows' kinds, and the table each goes to.
INDEX_KINDS = {"token": "sp_token", "string": "sp_string", "date": "sp_date", "reference": "sp_reference", "claims": "identifier_claim"}


def _text(value) -> str:
    """A value in PostgreSQL COPY text format."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        value = orjson.dumps(value).decode()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _line(*values) -> str:
    return "\t".join(_text(v) for v in values) + "\n"


@dataclass
class Incoming:
    record_id: str
    person_id: str  # the true person (the id its loaded records are linked to, when linked by truth)
    patient: dict


@dataclass
class ChunkResult:
    files: dict[str, str]
    terms: Counter
    records: int
    persons: int
    held_out: list[Incoming] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)


def _strip_held_identifiers(patient: dict, held: set) -> dict:
    ids = patient.get("identifier") or []
    keep = [i for i in ids if (i.get("system"), i.get("value")) not in held or "/sid/site/" in (i.get("system") or "")]
    held.update((i.get("system"), i.get("value")) for i in ids)
    return {**{k: v for k, v in patient.items() if k != "managingOrganization"}, "identifier": keep}


def build_chunk(chunk: int, records: int, seed: int, folder: str, *, linked: bool, hold_out: int, keep_truth: bool) -> ChunkResult:
    """Generate one chunk and write its COPY files; runs in a worker process."""
    population = generate_linkage_population(records, seed=seed)
    rng = random.Random(seed)
    by_person: dict[str, list] = {}
    for record in population.records:
        by_person.setdefault(record.person_id, []).append(record)
    several = [p for p, rs in by_person.items() if len(rs) > 1]
    held_people = set(rng.sample(several, min(hold_out, len(several))))
    out = {name: open(os.path.join(folder, f"{chunk}.{name}.copy"), "w", encoding="utf-8") for name in TABLES}
    terms: Counter = Counter()
    held: set = set()
    result = ChunkResult({name: f.name for name, f in out.items()}, terms, 0, 0)
    for n, (person, recs) in enumerate(by_person.items()):
        person_id = f"p{chunk}-{person}"
        members = []
        for i, record in enumerate(recs):
            record_id = f"r{chunk}-{n}-{i}"
            patient = {**_strip_held_identifiers(record.patient, held), "id": record_id}
            if i == len(recs) - 1 and person in held_people:
                result.held_out.append(Incoming(record_id, person_id, patient))
                continue
            content = {**patient, "meta": {"versionId": "1", "lastUpdated": "2026-11-26T08:00:00.000000Z"}}
            keys = match_keys(patient)
            own_person = person_id if linked else f"s{chunk}-{n}-{i}"
            out["resource"].write(_line("Patient", record_id, 1, NOW, False, record_id, content))
            out["resource_version"].write(_line("Patient", record_id, 1, NOW, "create", None))
            out["mpi_record"].write(_line(record_id, own_person, 1, keys.to_document(), "linked", "batch" if linked else "new",
                                          None, None, None, None, None, False, NOW, NOW, 0))
            for key in dict.fromkeys(blocking_keys(keys)):
                out["mpi_block"].write(_line(key[:160], record_id))
            terms[TOTAL] += 1
            for pair in term_values(keys):
                terms[pair] += 1
            if not linked:
                out["mpi_person"].write(_line(own_person, "active", None, False, NOW, NOW))
                result.persons += 1
            members.append(Member(record_id, content))
            if keep_truth:
                result.truth[record_id] = person_id
            result.records += 1
        if linked and members:
            golden = golden_patient(person_id, members)
            golden["meta"] = {**golden["meta"], "versionId": "1", "lastUpdated": "2026-11-26T08:00:00.000000Z"}
            out["resource"].write(_line("Patient", person_id, 1, NOW, False, person_id, golden))
            out["resource_version"].write(_line("Patient", person_id, 1, NOW, "create", None))
            out["mpi_person"].write(_line(person_id, "active", None, False, NOW, NOW))
            rows = index_rows("Patient", person_id, golden)
            for kind, table in INDEX_KINDS.items():
                columns = [c.strip().strip('"') for c in TABLES[table].split(",")]
                for row in getattr(rows, kind):
                    out[table].write(_line(*(row[c] for c in columns)))
            result.persons += 1
    for f in out.values():
        f.close()
    return result


def copy_file(conn: psycopg.Connection, table: str, path: str) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({TABLES[table]}) FROM STDIN") as copy, open(path, "rb") as f:
        while block := f.read(1 << 20):
            copy.write(block)


@dataclass
class Loaded:
    records: int
    persons: int
    held_out: list[Incoming]
    truth: dict[str, str]


def load_population(dsn: str, *, records: int, linked: bool, hold_out: int = 0, seed: int = 2026, chunk_records: int = 200_000,
                    workers: int = 2, keep_truth: bool = False, progress=None) -> Loaded:
    """Generate about `records` site records and COPY them into the database at `dsn`."""
    chunks = max(1, round(records / chunk_records))
    sizes = [records // chunks + (1 if i < records % chunks else 0) for i in range(chunks)]
    per_chunk_hold = -(-hold_out // chunks) if hold_out else 0
    terms: Counter = Counter()
    loaded = Loaded(0, 0, [], {})
    with tempfile.TemporaryDirectory(prefix="vaxhub-mpi-bench-") as folder, ProcessPoolExecutor(workers) as pool, \
            psycopg.connect(dsn, autocommit=True) as conn:
        futures = [pool.submit(build_chunk, i, size, seed + i, folder, linked=linked, hold_out=per_chunk_hold, keep_truth=keep_truth)
                   for i, size in enumerate(sizes)]
        for i, future in enumerate(futures):
            chunk = future.result()
            for table, path in chunk.files.items():
                copy_file(conn, table, path)
                Path(path).unlink()
            terms.update(chunk.terms)
            loaded.records += chunk.records
            loaded.persons += chunk.persons
            loaded.held_out += chunk.held_out
            loaded.truth.update(chunk.truth)
            if progress:
                progress(i + 1, len(sizes), loaded.records)
        with conn.cursor() as cur, cur.copy("COPY mpi_term (field, value, count) FROM STDIN") as copy:
            for (f, v), n in terms.items():
                copy.write_row((f, v, n))
        conn.execute("ANALYZE")
    loaded.held_out = loaded.held_out[:hold_out] if hold_out else []
    return loaded


def psycopg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)

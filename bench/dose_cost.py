"""What one dose costs: CPU of the API and of PostgreSQL, and WAL, per
Immunization stored from the load test's site Bundles.

`vaxhub serve` on a fresh PostgreSQL database; the sites are
registered and `--known` people stored with a first dose (as the load test
seeds them); then `--bundles` transaction Bundles of 20 doses shaped as in
the national load test (`bench/load/workload.py`: each dose with its
Patient, conditional creates on the CCCD and the site's number, 38 % of the
doses for people the hub has not seen) are posted by `--bundle-clients`
threads (4) to `--api-processes` API processes (1; the load test runs 4,
and more transactions writing at once cost PostgreSQL more per dose). The
figures are read from the processes' own CPU counters (`/proc`) and from
PostgreSQL's WAL position over the posting alone, so they do not move with
how busy the machine is the way a rate does; the outbox workers are not
running (their jobs only queue). Then `--vxu` HL7 v2 VXU^V04 messages of one
dose each (the load's hospital systems: the same people's next doses, 38 %
for new people) are posted to `/hl7v2` by `--vxu-clients` threads (16: the
messages that queue in the process are stored together, as under the load
test's 150 senders) and measured the same way, per message. Rate limits are
counted in Redis, as in the load test (`--rate-limits database` counts them
in the database, which adds a write per request).

The floor is measured in the same run: parsing and validating the same
resources with the fhir.resources models in this process, the least any
FHIR server does per dose. hub/floor is the API's CPU per dose over it.

    .venv/bin/pip install -e '.[load]'   # psutil, as for the load test
    .venv/bin/python bench/dose_cost.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.databases import fresh_postgres_database  # noqa: E402
from bench.ingest import Hub, post_all, register_sites  # noqa: E402
from bench.load import mix, workload  # noqa: E402
from bench.yardstick import floor_ms_per_dose  # noqa: E402
from vaxhub.hub.api.hl7v2 import ER7_MEDIA_TYPE  # noqa: E402

console = Console(width=150)
NEW_SHARE = 0.38  # the load test's share of doses for new people


class CpuMeter:
    """CPU seconds a changing set of processes uses over the `with` block.

    Each process is sampled every `interval` seconds, so one that exits
    meanwhile (a database connection above the pool's size, closed after
    use) still counts what it had used by its last sample; one that starts
    counts from zero."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.2):
        self._pids = pids
        self._interval = interval
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[int, float]:
        found = {}
        for pid in self._pids():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            found[pid] = times.user + times.system
        return found

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._last |= self._sample()

    def __enter__(self) -> "CpuMeter":
        self._start = self._sample()
        self._last = dict(self._start)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last |= self._sample()

    @property
    def seconds(self) -> float:
        return sum(used - self._start.get(pid, 0.0) for pid, used in self._last.items())


def postgres_pids() -> list[int]:
    """Every PostgreSQL process (backends and the server's own writers)."""
    return [p.pid for p in psutil.process_iter(["username", "name"]) if p.info["username"] == "postgres" and "postgres" in (p.info["name"] or "")]


def api_pids_of(hub: Hub) -> list[int]:
    proc = psutil.Process(hub.proc.pid)
    return [proc.pid, *(c.pid for c in proc.children(recursive=True))]


def dose_bundles(people: workload.LoadPeople, number: int = 1) -> list[bytes]:
    """Dose `number` of every known person, from their home site, in Bundles of the load test's size."""
    bodies = []
    for site in people.sites:
        known = people.known[site.code]
        for start in range(0, len(known), mix.DOSES_PER_BUNDLE):
            doses = [(p, workload.next_dose(people.population, p, number, site)) for p in known[start : start + mix.DOSES_PER_BUNDLE]]
            bodies.append(workload.dose_bundle_body(doses, site))
    return bodies


def _pickers(people: workload.LoadPeople, seed: int) -> dict[str, workload.SitePeople]:
    return {s.code: workload.SitePeople(people, s, NEW_SHARE, random.Random(f"{seed}-{s.code}")) for s in people.sites}


def _load_bundles(people: workload.LoadPeople, pickers: dict[str, workload.SitePeople], count: int) -> list[bytes]:
    bodies = []
    for index in range(count):
        site = people.sites[index % len(people.sites)]
        picked = pickers[site.code].pick_distinct(mix.DOSES_PER_BUNDLE)
        bodies.append(workload.dose_bundle_body([(p, d) for p, d, _new in picked], site))
    return bodies


def _vxu_messages(people: workload.LoadPeople, pickers: dict[str, workload.SitePeople], count: int) -> list[bytes]:
    """One dose each, as the load's hospital systems send them (after the Bundles: the same people's next doses)."""
    messages = []
    for index in range(count):
        site = people.sites[index % len(people.sites)]
        person, dose, _new = pickers[site.code].pick()
        messages.append(workload.vxu_message(person, dose, f"DOSE-COST-{index}").encode("utf-8"))
    return messages


def _measure_vxu(hub: Hub, messages: list[bytes], round_no: int, clients: int) -> tuple[float, list[str], float, float]:
    """Post the messages; their wall time, failures, and the API's and PostgreSQL's CPU seconds."""
    api_pids = api_pids_of(hub)
    with CpuMeter(lambda: api_pids) as api, CpuMeter(postgres_pids) as pg:
        elapsed, failures = post_all(
            hub.base.removesuffix("/fhir") + "/hl7v2", {"authorization": hub.headers["authorization"], "content-type": ER7_MEDIA_TYPE},
            messages, clients, f"round {round_no}: measured VXU", accepted=lambda r: r.status_code == 200 and "MSA|AA|" in r.text,
        )
    return elapsed, failures, api.seconds, pg.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="admin URL; a fresh database is created and dropped")
    parser.add_argument("--known", type=int, default=3000, help="people stored with a first dose before the measured Bundles")
    parser.add_argument("--bundles", type=int, default=400, help="measured Bundles of 20 doses")
    parser.add_argument("--vxu", type=int, default=1000, help="measured VXU^V04 messages of one dose each, after the Bundles")
    parser.add_argument("--bundle-clients", type=int, default=4,
                        help="client threads posting the measured Bundles (the load test has 69 site users over 4 API processes)")
    parser.add_argument("--api-processes", type=int, default=1,
                        help="`vaxhub serve --workers`: with more, more transactions write at once, as under the load test's 4")
    parser.add_argument("--vxu-clients", type=int, default=16,
                        help="client threads posting the VXU messages (the load test has 150 hospital senders; messages that queue are stored together)")
    parser.add_argument("--rate-limits", choices=("redis", "database"), default="redis",
                        help="where the limiter counts requests (the load test's default: Redis; the database adds a write per request)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds, each on a fresh database")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ["VAXHUB_RATE_LIMIT_BACKEND"] = args.rate_limits  # the hub's process inherits these
    if args.rate_limits == "redis":
        os.environ["VAXHUB_REDIS_URL"] = args.redis_url

    people = workload.split_people(args.known * 2 + args.bundles * 20 + args.vxu, args.seed, args.known)
    sites = [r for s in people.sites for r in workload.site_resources(s)]
    seeding = dose_bundles(people)
    pickers = _pickers(people, args.seed)
    measured = _load_bundles(people, pickers, args.bundles)
    messages = _vxu_messages(people, pickers, args.vxu)
    doses = args.bundles * mix.DOSES_PER_BUNDLE
    floor = floor_ms_per_dose(measured)

    table = Table(title=f"per Immunization stored: {args.bundles} Bundles of {mix.DOSES_PER_BUNDLE} doses, {NEW_SHARE:.0%} new people, "
                        f"{args.bundle_clients} clients, {args.api_processes} API process(es)")
    for column in ("round", "doses/s", "API CPU ms", "PostgreSQL CPU ms", "WAL kB", "floor ms", "API / floor", "errors"):
        table.add_column(column, justify="right")
    vxu_table = Table(title=f"per VXU^V04 message of one dose: {args.vxu} messages from {args.vxu_clients} clients after the Bundles, "
                            "the same people's next doses")
    for column in ("round", "messages/s", "API CPU ms", "PostgreSQL CPU ms", "errors"):
        vxu_table.add_column(column, justify="right")
    ok = True
    for round_no in range(1, args.rounds + 1):
        url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_dose_cost")
        hub = Hub(url, args.api_processes)
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        try:
            register_sites(hub.base, hub.headers, sites)
            _elapsed, failures = post_all(hub.base, hub.headers, seeding, 4, f"round {round_no}: first doses of {args.known} people")
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
                # Planner statistics for the seeded tables, as autovacuum would have gathered
                # (this machine runs without it), and as the load test does after its seed.
                conn.execute(text("ANALYZE"))
            with admin.connect() as conn:
                conn.execute(text("CHECKPOINT"))  # every round starts from the same point of the WAL cycle
                wal_before = conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
            api_pids = api_pids_of(hub)
            with CpuMeter(lambda: api_pids) as api, CpuMeter(postgres_pids) as pg:
                elapsed, more = post_all(hub.base, hub.headers, measured, args.bundle_clients, f"round {round_no}: measured Bundles")
            api_cpu, pg_cpu = api.seconds, pg.seconds
            with admin.connect() as conn:
                wal = conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one() - wal_before
            vxu_elapsed, vxu_failures, vxu_api, vxu_pg = _measure_vxu(hub, messages, round_no, args.vxu_clients) if messages else (0.0, [], 0.0, 0.0)
        finally:
            hub.stop()
            admin.dispose()
            drop()
        failures += more
        ok &= not failures
        api_ms = api_cpu * 1000 / doses
        table.add_row(str(round_no), f"{doses / elapsed:,.0f}", f"{api_ms:.2f}", f"{pg_cpu * 1000 / doses:.2f}", f"{float(wal) / doses / 1024:.1f}",
                      f"{floor:.2f}", f"{api_ms / floor:.1f}", str(len(failures)))
        for failure in failures[:3]:
            console.print(f"[red]{failure}")
        if messages:
            ok &= not vxu_failures
            vxu_table.add_row(str(round_no), f"{len(messages) / vxu_elapsed:,.0f}", f"{vxu_api * 1000 / len(messages):.2f}",
                              f"{vxu_pg * 1000 / len(messages):.2f}", str(len(vxu_failures)))
            for failure in vxu_failures[:3]:
                console.print(f"[red]{failure}")
    console.print(table)
    if messages:
        console.print(vxu_table)
    console.print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

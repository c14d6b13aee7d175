"""National-scale load test: sites pushing transaction Bundles and VXU, the
health-book app pulling records and certificates, verifiers checking QR codes,
against `vaxhub serve --workers 4` and the outbox workers on PostgreSQL, with
the registry simulators slow and failing.

Steps: a fresh PostgreSQL database, migrated; the registry simulators in a
process of their own (200 ms + up to 100 ms latency, 5 % server faults, 1 %
hangs past the client's timeout); the outbox workers and the API; clients and
keys; the sites' resources and the known people (first dose), verified and
linked before the load; certificates for the app's citizens. Then locust,
headless: a ramp of `--ramp-seconds` that starts every user, then `--minutes`
of full load, over which the write rate is graded; then the time the
outboxes take to drain, and a
check that every record the hub acknowledged is stored and went through
registry verification and linking.

`--workers N` is the number of outbox worker processes: half run `vaxhub
worker` (registry verification), half `vaxhub mpi work` (master patient
index links), the odd one verifying: `--workers 2` is one of each.

`--kill` SIGKILLs one API worker process a third of the way in (uvicorn's
supervisor starts another) and the verification worker halfway (started again
five seconds later, as a supervisor would); its leased jobs return to the
queue when their leases expire.

    .venv/bin/python bench/load/run.py --smoke
    .venv/bin/python bench/load/run.py --minutes 10 --kill

Figures on a shared machine say little; the thresholds are those of the
requirement (500 Immunizations/s for 10 minutes, write p95 under 500 ms, no
5xx, outboxes drained within 60 s of the load stopping).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from bench.load.own_postgres import OwnPostgres  # noqa: E402
from bench.load import statements  # noqa: E402
from bench.load import cpu_course, gc_report, hub_latency, mix, pg_clients, probes, report, seed, vacuum_report  # noqa: E402
from bench.load.processes import (  # noqa: E402
    VAXHUB, Api, Managed, restart_renamed, start_api, start_link_worker, start_registries, start_verification_worker, worker_name,
)
from bench.load.registries import API_KEY  # noqa: E402
from bench.load.workload import first_dose_share, people_needed, split_people  # noqa: E402
from bench.yardstick import machine_yardstick  # noqa: E402
from vaxhub.hub.security.client_tools import generate_key  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402

console = Console(width=150)
EID_ISSUER = "urn:vaxhub:load-test:national-eid"
EID_AUDIENCE = "urn:vaxhub:fhir"
WRITE_P95_MS = 500
DRAIN_SECONDS = 60
# The plan offers this much above the rate the run must sustain: offered at
# exactly the target, a hub that stores all of it passes or fails on the
# load generator's rounding (users' timetables, requests in flight at the stop).
OFFER_MARGIN = 0.02
# An outbox counts as fallen behind once its oldest job has waited this long:
# past half the minute it has to drain in once the load stops.
BEHIND_SECONDS = 30
RESTART_AFTER_SECONDS = 5


# -- the hub's processes --------------------------------------------------------------


def _is_pdf_process(pid: int) -> bool:
    """An API process's certificate PDF child (vaxhub.certificates.pdf_process)."""
    try:
        return "vaxhub.certificates.pdf_process" in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _pdf_children(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children() if _is_pdf_process(child.pid)]
    except psutil.Error:
        return []


def _still_running(pids: list[int], seconds: float) -> list[int]:
    """Those of `pids` still running (not gone, not a zombie) after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        running = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


@dataclass
class Hub:
    registries: Managed
    api: Api  # the app's and the verifiers' API processes (all of them, without a pool for sites)
    verification: list[Managed]
    linking: list[Managed]
    env: dict[str, str]
    logs: Path
    site_api: Api | None = None  # the sites' own API processes (`--site-processes`)

    def outbox_workers(self) -> list[Managed]:
        return [*self.verification, *self.linking]

    def apis(self) -> list[Api]:
        return [self.api, *([self.site_api] if self.site_api else [])]

    @property
    def writers(self) -> Api:
        """The API processes the sites write to: the one to kill, since what it acknowledged must be found."""
        return self.site_api or self.api

    @property
    def metrics_dir(self) -> Path:
        """Where the API processes keep their metrics: `vaxhub serve --workers N`'s own folder,
        or the one both pools share (PROMETHEUS_MULTIPROC_DIR, set by `start_hub`)."""
        return Path(self.env.get("PROMETHEUS_MULTIPROC_DIR") or Path(self.env["VAXHUB_DATA_DIR"]) / "metrics")

    def stop(self) -> None:
        for managed in [*(a.managed for a in self.apis()), *self.outbox_workers(), self.registries]:
            managed.stop()


def hub_env(args, database_url: str, data_dir: Path, eid_jwks: Path) -> dict[str, str]:
    return {
        # Each service names its own PostgreSQL connections (the report charges the database's CPU by them).
        **{k: v for k, v in os.environ.items() if k != "PGAPPNAME"},
        "VAXHUB_DATABASE_URL": database_url,
        "VAXHUB_DATA_DIR": str(data_dir),
        "VAXHUB_AUTO_MIGRATE": "false",  # migrated once before anything starts
        "VAXHUB_LOG_LEVEL": "WARNING",
        # Every caller may go as fast as the mix says; the limiter still counts
        # every request, where a deployment of many API processes keeps it.
        "VAXHUB_RATE_LIMIT_PER_SECOND": "1000000",
        "VAXHUB_RATE_LIMIT_BURST": "1000000",
        "VAXHUB_RATE_LIMIT_BACKEND": args.rate_limits,
        **({"VAXHUB_REDIS_URL": args.redis_url} if args.rate_limits == "redis" else {}),
        "VAXHUB_MPI_VERIFICATION_WAIT_SECONDS": str(args.link_wait),
        "VAXHUB_API_THREADS": str(args.api_threads),
        "VAXHUB_WRITES_FIRST": "false" if args.arrival_order else "true",
        "VAXHUB_VERIFICATION_CONCURRENCY": str(args.verification_concurrency),
        "VAXHUB_VERIFICATION_BATCH_SIZE": str(args.verification_batch),
        "VAXHUB_EID_ISSUER": EID_ISSUER,
        "VAXHUB_EID_AUDIENCE": EID_AUDIENCE,
        "VAXHUB_EID_JWKS_FILE": str(eid_jwks),
    }


def start_hub(args, env: dict[str, str], logs: Path, registry_file: Path) -> Hub:
    registries, wsdl, insurance = start_registries(
        registry_file, logs, latency=args.registry_latency, jitter=args.registry_jitter, error_rate=args.registry_errors,
        timeout_rate=args.registry_timeouts, hang_seconds=args.registry_hang,
    )
    env.update({"VAXHUB_POPULATION_REGISTRY_WSDL": wsdl, "VAXHUB_SOCIAL_INSURANCE_URL": insurance,
                "VAXHUB_SOCIAL_INSURANCE_API_KEY": API_KEY})
    verification = [start_verification_worker(env, logs, i) for i in range(args.verification_workers)]
    linking = [start_link_worker(env, logs, i, nice=args.link_nice) for i in range(args.link_workers)]
    if not args.site_processes:
        return Hub(registries, start_api(env, logs, args.api_processes, nice=args.api_nice), verification, linking, env, logs)
    # Two pools of `vaxhub serve` (docs/operations/scale.md): one for the sites, one for the app and the
    # verifiers at a lower CPU priority. One metrics folder for both, made here so neither empties it.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(env["VAXHUB_DATA_DIR"]) / "metrics")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    sites = start_api(env, logs, args.site_processes, nice=args.api_nice, name="api-sites")
    public = start_api(env, logs, args.api_processes - args.site_processes, nice=args.api_nice + args.public_nice, name="api-public")
    return Hub(registries, public, verification, linking, env, logs, site_api=sites)


# -- watching the load ------------------------------------------------------------------


@dataclass
class KillLog:
    api_killed: int | None = None
    api_killed_at: float | None = None
    api_respawn_seconds: float | None = None
    api_pdf_processes: list[int] = field(default_factory=list)  # the killed worker's PDF children …
    api_pdf_processes_left: list[int] = field(default_factory=list)  # … still running 10 s after the kill
    worker_killed: str | None = None
    worker_killed_at: float | None = None
    worker_restarted_at: float | None = None
    leases_held: list[str] = field(default_factory=list)  # Patients whose jobs the killed worker held
    notes: list[str] = field(default_factory=list)


class Watcher:
    """Samples the database and the processes' CPU while locust runs, and
    carries out the kills at their moments."""

    def __init__(self, engine, hub: Hub, locust: subprocess.Popen, every: float):
        self.engine, self.hub, self.locust, self.every = engine, hub, locust, every
        self.samples: list[probes.Sample] = []
        self.cpu: dict[str, float] = {}
        self.cpu_marks: list[cpu_course.CpuMark] = []  # `cpu` as it stood at each sample
        self._last_cpu: dict[int, tuple[str, float]] = {}
        self.pg_by_service: dict[str, float] = {}  # the database's backends' CPU by the service each served
        self._pg_names: dict[int, str] = {}  # backend pid → its client's application_name
        self.api_pids_seen: set[int] = {pid for api in hub.apis() for pid in api.worker_pids()}
        self.lock_waits: Counter = Counter()  # statement → samples in which a backend waited on a lock for it
        self.vacuums: list[tuple[float, list[tuple[str, str]]]] = []  # (when, (table, phase) of each vacuum at work)
        self.stop = threading.Event()
        self.kills = KillLog()
        self.wal: list[probes.Wal | None] = [probes.wal_totals(engine)]  # at the start; the end is added when it stops
        self.hub_before: hub_latency.Snapshot = {}  # the API's own request durations when the load starts …
        self.hub_after: hub_latency.Snapshot = {}  # … and when locust has stopped
        self.waits_before: hub_latency.Snapshot = {}  # the part of it spent waiting for a place, by kind
        self.waits_after: hub_latency.Snapshot = {}
        self.gc_before = gc_report.Reading()  # their collector pauses, likewise
        self.gc_after = gc_report.Reading()
        self.steady: probes.Sample | None = None  # the database when every user has started: the graded window opens

    def _groups(self) -> dict[str, list[int]]:
        def tree(pid: int) -> list[int]:
            try:
                proc = psutil.Process(pid)
                return [pid, *(c.pid for c in proc.children(recursive=True))]
            except psutil.NoSuchProcess:
                return []
        api = [pid for pool in self.hub.apis() for pid in tree(pool.managed.pid)]
        pdfs = [pid for pid in api if _is_pdf_process(pid)]
        groups = {
            "API (vaxhub serve)": [pid for pid in api if pid not in pdfs],
            "API's certificate PDF processes (niced)": pdfs,
            "verification workers": [p for m in self.hub.verification if m.alive() for p in tree(m.pid)],
            "MPI link workers": [p for m in self.hub.linking if m.alive() for p in tree(m.pid)],
            "registry simulators": tree(self.hub.registries.pid),
            "locust (load generator)": tree(self.locust.pid),
        }
        try:
            self._pg_names = probes.backends(self.engine)
            groups[cpu_course.PG] = list(self._pg_names)
            groups["PostgreSQL server (checkpointer, WAL and background writers, autovacuum)"] = probes.server_process_pids(self.engine)
        except Exception:  # noqa: BLE001 - a probe must not stop the run
            pass
        return groups

    def _measure_cpu(self) -> None:
        for group, pids in self._groups().items():
            for pid in pids:
                try:
                    times = psutil.Process(pid).cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total = times.user + times.system
                _, before = self._last_cpu.get(pid, (group, None))
                if before is not None:
                    self.cpu[group] = self.cpu.get(group, 0.0) + max(0.0, total - before)
                    if group == cpu_course.PG:
                        name = pg_clients.service(self._pg_names.get(pid))
                        self.pg_by_service[name] = self.pg_by_service.get(name, 0.0) + max(0.0, total - before)
                self._last_cpu[pid] = (group, total)

    def run(self) -> None:
        self._measure_cpu()
        while not self.stop.is_set():
            try:
                self.samples.append(probes.sample(self.engine, time.time()))
                self.lock_waits.update(probes.lock_waits(self.engine))
                self.vacuums.append((time.time(), probes.vacuuming(self.engine)))
                self._measure_cpu()
                self.cpu_marks.append(cpu_course.CpuMark(time.time(), dict(self.cpu)))
                self.api_pids_seen |= {pid for api in self.hub.apis() for pid in api.worker_pids()}
            except Exception as exc:  # noqa: BLE001
                self.kills.notes.append(f"probe failed: {exc}")
            self.stop.wait(self.every)
        self.wal.append(probes.wal_totals(self.engine))

    def kill_on_schedule(self, load_started: threading.Event, seconds: float) -> None:
        """A third of the way in: one API worker; halfway: the (first) verification worker."""
        load_started.wait()
        begin = time.time()
        if self.stop.wait(seconds / 3):
            return
        self.kills.api_pdf_processes = _pdf_children(sorted(self.hub.writers.worker_pids())[0])  # the one about to be killed
        pid = self.hub.writers.kill_one_worker()
        self.kills.api_killed, self.kills.api_killed_at = pid, time.time() - begin
        self.kills.api_respawn_seconds = self.hub.writers.wait_respawn(pid)
        self.kills.api_pdf_processes_left = _still_running(self.kills.api_pdf_processes, 10)
        if self.stop.wait(max(0.0, seconds / 2 - (time.time() - begin))):
            return
        target = self.hub.verification[0]
        held = probes.leased_by(self.engine, worker_name(target))
        target.kill()
        self.kills.worker_killed, self.kills.worker_killed_at = target.name, time.time() - begin
        # Read just before the kill: a job it recorded in between is final anyway, so none is missed.
        self.kills.leases_held = held
        time.sleep(RESTART_AFTER_SECONDS)
        restart_renamed(target, "-restarted")
        self.kills.worker_restarted_at = time.time() - begin


def run_locust(args, plan_path: Path, plan: dict, run_dir: Path, engine, hub: Hub, seconds: int) -> tuple[Watcher, dict]:
    prefix = run_dir / "locust"
    users = plan["users"][args.only] if args.only else sum(plan["users"].values())
    command = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
        # The ramp comes on top of the graded minutes: `seconds` of full load follow it.
        "-u", str(users), "-r", str(max(1, round(users / args.ramp_seconds))), "-t", f"{seconds + math.ceil(args.ramp_seconds)}s",
        "--csv", str(prefix), "--csv-full-history", "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING",
        *([args.only] if args.only else []),  # locust runs only the user classes named
    ]
    env = {**os.environ, "VAXHUB_LOAD_PLAN": str(plan_path)}
    log = (hub.logs / "locust.log").open("ab")
    locust = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    watcher = Watcher(engine, hub, locust, args.sample_every)
    threading.Thread(target=watcher.run, daemon=True, name="watch").start()
    load_started = threading.Event()
    if args.kill:
        threading.Thread(target=watcher.kill_on_schedule, args=(load_started, seconds), daemon=True, name="kill").start()
    marks = Path(plan["acks_dir"]) / "load-started"
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("load", total=seconds + 30, status="locust starting (regenerating the population)")
            while locust.poll() is None:
                if not load_started.is_set() and marks.exists():
                    watcher.hub_before = hub_latency.snapshot(hub.metrics_dir)
                    watcher.waits_before = hub_latency.snapshot(hub.metrics_dir, hub_latency.WAIT_METRIC, ("kind",))
                    watcher.gc_before = gc_report.read(hub.metrics_dir)
                    load_started.set()
                if load_started.is_set():
                    elapsed = time.time() - float(marks.read_text())
                    if watcher.steady is None and elapsed >= args.ramp_seconds:
                        watcher.steady = probes.sample(engine, time.time())
                    progress.update(task, completed=min(elapsed, seconds + 30))
                if watcher.samples:
                    s = watcher.samples[-1]
                    progress.update(task, status=f"Immunizations {s.immunizations:,}  verification queued {s.verification_queued:,} "
                                                 f"(oldest {s.verification_oldest_s:.0f} s)  link queued {s.link_queued:,}")
                time.sleep(0.5)
    except BaseException:
        locust.terminate()  # an interrupted run leaves no load generator behind
        locust.wait(30)
        raise
    load_started.set()
    watcher.hub_after = hub_latency.snapshot(hub.metrics_dir)
    watcher.waits_after = hub_latency.snapshot(hub.metrics_dir, hub_latency.WAIT_METRIC, ("kind",))
    watcher.gc_after = gc_report.read(hub.metrics_dir)
    timing = json.loads((Path(plan["acks_dir"]) / "load-window.json").read_text()) if (Path(plan["acks_dir"]) / "load-window.json").exists() else {}
    return watcher, timing


# -- after the load ----------------------------------------------------------------------


def drain(engine, stopped_at: float, limit: float) -> tuple[probes.Sample, float | None, list[probes.Sample]]:
    """The outboxes' depth when the load stopped, and seconds from then until both were empty."""
    samples = [probes.sample(engine, time.time())]
    at_stop = samples[0]
    empty_since = None
    with Progress(TextColumn("[bold]draining the outboxes"), TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console) as progress:
        task = progress.add_task("drain", status="")
        while time.time() - stopped_at < limit:
            s = probes.sample(engine, time.time())
            samples.append(s)
            progress.update(task, status=f"verification {s.verification_queued:,}  link {s.link_queued:,}  goldens {s.goldens_stale:,}")
            if s.outbox_depth == 0:
                empty_since = empty_since or s.at
                if s.at - empty_since >= 2:  # a verification result can queue a relink just after
                    return at_stop, empty_since - stopped_at, samples
            else:
                empty_since = None
            time.sleep(0.5)
    return at_stop, None, samples


@dataclass
class LossCheck:
    immunizations_acknowledged: int
    immunizations_stored: int
    patients_acknowledged: int
    verification: dict[str, int]
    linking: dict[str, int]

    @property
    def nothing_lost(self) -> bool:
        return self.immunizations_stored == self.immunizations_acknowledged

    @property
    def all_verified(self) -> bool:
        return all(k.startswith("done") or k == "dead" for k in self.verification)

    @property
    def all_linked(self) -> bool:
        return set(self.linking) <= {"linked"}


def check_acknowledged(engine, acks: report.Acknowledged) -> LossCheck:
    stored = probes.stored_ids(engine, "Immunization", acks.immunizations)
    vxu_stored = probes.ids_by_identifier(engine, "Immunization", acks.vxu_immunizations)
    vxu_patients = probes.ids_by_identifier(engine, "Patient", acks.vxu_patients)
    patients = acks.patients | set(vxu_patients.values())
    return LossCheck(
        len(acks.immunizations) + len(acks.vxu_immunizations), len(stored) + len(vxu_stored),
        len(patients), dict(probes.verification_states(engine, patients)), dict(probes.link_states(engine, patients)),
    )


def verdict(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[red]FAIL[/red]"


def print_statements(found: list[statements.Statement], top: int, run_dir: Path) -> None:
    whole = sum(s.total_ms for s in found) or 1e-9
    table = Table(title=f"PostgreSQL's time during the load by statement (top {top} of {len(found)}; all in statements.csv)")
    for column in ("share", "total s", "calls", "mean ms", "rows/call", "WAL B/call", "statement"):
        table.add_column(column, justify="left" if column == "statement" else "right")
    for s in found[:top]:
        table.add_row(f"{s.total_ms / whole:.1%}", f"{s.total_ms / 1000:.1f}", f"{s.calls:,}", f"{s.mean_ms:.3f}",
                      f"{s.rows / max(s.calls, 1):.1f}", f"{s.wal_bytes / max(s.calls, 1):,.0f}", statements.shorten(s.query))
    console.print(table)
    statements.write_csv(found, run_dir / "statements.csv")


def print_report(args, plan: dict, watcher: Watcher, timing: dict, at_stop: probes.Sample, drain_seconds: float | None,
                 drain_samples: list[probes.Sample], loss: LossCheck, run_dir: Path, baseline: int, seconds: int) -> bool:
    users = report.read_user_summaries(Path(plan["acks_dir"]))
    operations = report.read_operations(run_dir / "locust", users.statuses)
    started, stopped = timing.get("started", 0.0), timing.get("stopped", 0.0)
    window = max(stopped - started, 1e-9)
    stored = at_stop.immunizations - baseline
    # Graded: from the moment every user had started to the stop (the ramp ran before it).
    steady_at, steady_count = (watcher.steady.at, watcher.steady.immunizations) if watcher.steady else (started, baseline)
    graded_seconds = max(stopped - steady_at, 1e-9)
    rate = (at_stop.immunizations - steady_count) / graded_seconds
    samples = [s for s in watcher.samples if started <= s.at <= stopped + 1]
    console.print(report.operations_table(operations, f"operations over {window:.0f} s of load ({plan['users'][args.only] if args.only else sum(plan['users'].values())} users)"))
    inside = hub_latency.latencies(hub_latency.difference(watcher.hub_before, watcher.hub_after), least=10)
    if inside:
        console.print(hub_latency.table(inside))
    if (waits := hub_latency.waits_table(hub_latency.difference(watcher.waits_before, watcher.waits_after))) is not None:
        console.print(waits)
    if (pauses := gc_report.table(gc_report.between(watcher.gc_before, watcher.gc_after))) is not None:
        console.print(pauses)
    for name, error, count in report.read_failures(run_dir / "locust"):
        console.print(f"  [yellow]{count:,} × {name}: {error[:160]}")
    console.print(report.timeline_table([*samples, *drain_samples], started, max(args.sample_every, seconds / 12)))
    console.print(cpu_course.table(watcher.cpu_marks, samples, cpu_course.request_counts(run_dir / "locust"), started, stopped,
                                   max(args.sample_every, seconds / 12)))

    summary = Table(title="load summary")
    summary.add_column("what")
    summary.add_column("figure", justify="right")
    writes = [op for op in operations if op.name in report.WRITES]
    new_patients = sum(v for k, v in users.counts.items() if "new person" in k and k.startswith(("Patient", "Immunization acknowledged by VXU")))

    def outbox_rate(attr: str) -> float:
        if len(samples) < 2 or samples[-1].at <= samples[0].at:
            return 0.0
        return (getattr(samples[-1], attr) - getattr(samples[0], attr)) / (samples[-1].at - samples[0].at)

    server_errors = sum(op.server_errors for op in operations if op.name != "Aggregated")
    traffic = report.delivered(operations, plan["pacing"], plan["users"], window, args.only, args.ramp_seconds)
    lines = [
        ("Immunizations stored during the load", f"{stored:,}"),
        (f"Immunization writes/s sustained over the {graded_seconds:,.0f} s after the ramp (graded)", f"{rate:,.1f}"),
        (f"the same over the whole {window:,.0f} s, the {args.ramp_seconds:,.0f}-s ramp included", f"{stored / window:,.1f}"),
        ("the same after the first minute (not graded: the ramp's cost)",
         f"{after:,.1f}" if (after := report.rate_after(samples, started + 60)) is not None else "—"),
        ("peak over 10 s", f"{report.peak_rate(samples):,.1f}"),
        ("offered (plan)", f"{plan['rate']:,.0f}/s"),
        ("machine yardstick before the run: ms of CPU to validate a dose (bench/yardstick.py)", f"{plan['machine_yardstick_ms']:.3f}"),
        ("share of doses for new people", f"{plan['new_share']:.2f}"),
        ("new Patients/s acknowledged (work for both outboxes)", f"{new_patients / window:,.1f}"),
        ("verification jobs done/s during the load", f"{outbox_rate('verified'):,.1f}"),
        ("MPI records linked/s during the load", f"{outbox_rate('linked'):,.1f}"),
        *[(f"p95 {op.name} (ms)", f"{op.p95:,.0f}") for op in writes],
        *[(f"{kind} requests/s: sent / planned (ramp counted)", f"{sent:,.1f} / {planned:,.1f}") for kind, (sent, planned) in traffic.items()],
        ("5xx answers", f"{server_errors:,}"),
        ("requests without an answer", f"{sum(op.no_answer for op in operations if op.name != 'Aggregated'):,}"),
        ("outbox at stop: verification / MPI link / goldens", f"{at_stop.verification_queued:,} / {at_stop.link_queued:,} / {at_stop.goldens_stale:,}"),
        ("oldest job waiting at stop: verification / link (s)", f"{at_stop.verification_oldest_s:.0f} / {at_stop.link_oldest_s:.0f}"),
        ("seconds from stop to empty outboxes", f"{drain_seconds:.1f}" if drain_seconds is not None else f"not empty after {args.drain_limit:.0f} s"),
        ("acknowledged Immunizations stored", f"{loss.immunizations_stored:,} / {loss.immunizations_acknowledged:,}"),
        ("acknowledged Patients: verification", ", ".join(f"{k} {v:,}" for k, v in sorted(loss.verification.items()))),
        ("acknowledged Patients: MPI link", ", ".join(f"{k} {v:,}" for k, v in sorted(loss.linking.items()))),
    ]
    for key, value in sorted(users.counts.items()):
        lines.append((key, f"{value:,}"))
    for what, figure in lines:
        summary.add_row(what, figure)
    console.print(summary)

    cpu = Table(title=f"CPU seconds during the load ({os.cpu_count()} cores × {window:.0f} s = {os.cpu_count() * window:,.0f} available)")
    cpu.add_column("processes")
    cpu.add_column("CPU s", justify="right")
    cpu.add_column("share of the machine", justify="right")
    for group, used in sorted(watcher.cpu.items(), key=lambda kv: -kv[1]):
        cpu.add_row(group, f"{used:,.0f}", f"{used / (os.cpu_count() * window):.0%}")
    console.print(cpu)
    if watcher.pg_by_service:
        console.print(pg_clients.table(watcher.pg_by_service, stored, window))
    sent = sum(op.requests for op in operations if op.name != "Aggregated")
    if sent and "locust (load generator)" in watcher.cpu:
        # Not the hub's: compare it only between runs of the same load generator
        # (its Bundles became 7 times cheaper to build at f39d0f8).
        console.print(f"locust's CPU per request: {watcher.cpu['locust (load generator)'] / sent * 1000:.2f} ms; "
                      f"machine yardstick before the run: {plan['machine_yardstick_ms']:.3f} ms per dose validated (lower is faster)")
    first, last = watcher.wal[0], watcher.wal[-1]
    if len(watcher.wal) > 1 and first is not None and last is not None and last.at > first.at:
        span, written = last.at - first.at, last.bytes - first.bytes
        images = last.full_page_images - first.full_page_images
        console.print(f"WAL while locust ran ({span:.0f} s, the whole server): {written / span / 1e6:,.1f} MB/s, "
                      f"{images / span:,.0f} full-page images/s (about {min(1.0, images * 8192 / written) if written else 0:.0%} of the bytes), "
                      f"{written / max(stored, 1) / 1e3:,.1f} kB per Immunization stored")

    if watcher.lock_waits:
        console.print("statements waiting on a PostgreSQL lock (backends × samples):")
        for statement, count in watcher.lock_waits.most_common(6):
            console.print(f"  {count:>5}  {statement}")
    if vacuums := vacuum_report.spans(watcher.vacuums, started, stopped, args.sample_every):
        console.print("vacuums seen during the load (seconds into it; sampled, so short ones may be missed):")
        for line in vacuum_report.lines(vacuums):
            console.print(line)
    else:
        console.print("no vacuum seen during the load")
    behind = report.first_behind(samples, started, BEHIND_SECONDS)
    slow = report.first_slow_moment(run_dir / "locust", started, report.WRITES, WRITE_P95_MS, warm_up=args.ramp_seconds + 10)
    order = sorted(((at, what) for what, at in {**behind, "API write p95": slow}.items() if at is not None))
    if order:
        console.print("fell behind first: " + "; then ".join(f"{what} at {at:.0f} s" for at, what in order)
                      + f" (outbox: oldest job waiting over {BEHIND_SECONDS} s; API: write p95 over {WRITE_P95_MS} ms in locust's"
                      " 10-s window, after the ramp)")
    else:
        console.print("nothing fell behind: no outbox job waited over "
                      f"{BEHIND_SECONDS} s and the writes' p95 stayed under {WRITE_P95_MS} ms")
    for name, medians in report.p95_by_minute(run_dir / "locust", started, report.WRITES).items():
        console.print(f"p95 {name} by minute (median of locust's rolling windows, ms): "
                      + (", ".join(f"{m:,.0f}" for m in medians) or "none"))

    checks = [
        (f"Immunization writes/s ≥ {args.target:,.0f} sustained", rate >= args.target),
        *[(f"p95 {op.name} < {WRITE_P95_MS} ms", op.p95 < WRITE_P95_MS) for op in writes],
        (f"every kind of traffic sent at ≥ {report.DELIVERED_SHARE:.0%} of its planned rate",
         all(sent >= report.DELIVERED_SHARE * planned for sent, planned in traffic.values())),
        ("no 5xx", server_errors == 0),
        (f"outboxes empty within {DRAIN_SECONDS} s of the load stopping", drain_seconds is not None and drain_seconds <= DRAIN_SECONDS),
        ("every acknowledged Immunization stored", loss.nothing_lost),
        ("every acknowledged Patient's verification in a final state", loss.all_verified),
        ("every acknowledged Patient linked in the master patient index", loss.all_linked),
    ]
    if args.kill:
        k = watcher.kills
        checks.append((f"API worker {k.api_killed} killed at {k.api_killed_at or 0:.0f} s, respawned in "
                       f"{k.api_respawn_seconds or 0:.1f} s", k.api_respawn_seconds is not None))
        if k.api_pdf_processes:
            checks.append((f"its certificate PDF process ended with it ({len(k.api_pdf_processes) - len(k.api_pdf_processes_left)} "
                           f"of {len(k.api_pdf_processes)} within 10 s)", not k.api_pdf_processes_left))
        checks.append((f"{k.worker_killed} killed at {k.worker_killed_at or 0:.0f} s and restarted at {k.worker_restarted_at or 0:.0f} s",
                       k.worker_restarted_at is not None))
        held = probes.verification_states(watcher.engine, k.leases_held)
        checks.append((f"the {len(k.leases_held)} jobs it held reached a final state ("
                       + (", ".join(f"{s} {n}" for s, n in sorted(held.items())) or "none held") + ")",
                       all(s.startswith("done") or s == "dead" for s in held)))
    unexpected = len(watcher.api_pids_seen) - args.api_processes - (1 if args.kill and watcher.kills.api_respawn_seconds else 0)
    if unexpected > 0:
        console.print(f"[yellow]{unexpected} API worker process(es) restarted by uvicorn's supervisor without being killed by the test "
                      "(a worker that misses its health check under load is killed and replaced)")
    table = Table(title="the requirement" + ("" if seconds >= 600 else f" (a {seconds} s run: the requirement is 10 minutes)"))
    table.add_column("check")
    table.add_column("result")
    for what, ok in checks:
        table.add_row(what, verdict(ok))
    console.print(table)
    for note in watcher.kills.notes[:5]:
        console.print(f"[yellow]{note}")
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(f"machine: {os.cpu_count()} cores, load average now {load_avg}; run folder {run_dir}")
    result = {
        "operations": [asdict(op) for op in operations], "stored": stored, "rate": rate, "graded_seconds": graded_seconds, "window_seconds": window,
        "drain_seconds": drain_seconds, "machine_yardstick_ms": plan["machine_yardstick_ms"], "at_stop": asdict(at_stop), "loss": asdict(loss), "cpu": watcher.cpu,
        "postgresql_cpu_by_service": watcher.pg_by_service,
        "kills": asdict(watcher.kills), "lock_waits": watcher.lock_waits.most_common(20), "counts": dict(users.counts), "checks": [[w, ok] for w, ok in checks],
    }
    (run_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return all(ok for _, ok in checks)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--users", type=int, default=None,
                        help="concurrent locust users, shared out by bench/load/mix.py (default: as many per kind as its rate needs "
                             "with answers taking up to 3 s)")
    parser.add_argument("--rate", type=float, default=None,
                        help=f"Immunizations/s offered; the other traffic follows the mix (default: the target + {OFFER_MARGIN * 100:.0f} %%)")
    parser.add_argument("--target", type=float, default=500.0, help="Immunization writes/s the run must sustain to pass")
    parser.add_argument("--api-processes", type=int, default=4, help="vaxhub serve --workers")
    parser.add_argument("--workers", type=int, default=2, help="outbox worker processes: half verification, half MPI link (at least one each)")
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="admin URL; a fresh database is created and dropped")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="with --own-postgres: PostgreSQL's time during the load by statement (pg_stat_statements), the top N shown")
    parser.add_argument("--own-postgres", action="store_true",
                        help="run on a PostgreSQL cluster of the run's own, set up as docs/operations/scale.md advises "
                             "(autovacuum, 2 GB of shared buffers, 16 GB of WAL between checkpoints); removed afterwards")
    parser.add_argument("--kill", action="store_true", help="SIGKILL an API worker and the verification worker during the load")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check that the harness works: 20 s, 12 users, 40 Immunizations/s offered (and a 36/s target), small population")
    parser.add_argument("--known-people", type=int, default=20000, help="people stored (with a first dose) before the load")
    parser.add_argument("--new-share", type=float, default=None, help="share of doses for new people (default: the synthetic history's)")
    parser.add_argument("--citizens", type=int, default=200, help="citizens with certificates whose app the load opens")
    parser.add_argument("--verifier-clients", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--registry-latency", type=float, default=0.2)
    parser.add_argument("--registry-jitter", type=float, default=0.1)
    parser.add_argument("--registry-errors", type=float, default=0.05, help="share of registry calls answered with a server fault")
    parser.add_argument("--registry-timeouts", type=float, default=0.01, help="share of registry calls that hang past the client's timeout")
    parser.add_argument("--registry-hang", type=float, default=12.0, help="seconds a hanging call hangs (the client gives up at 10)")
    parser.add_argument("--verification-concurrency", type=int, default=16, help="registry calls in flight per verification worker")
    parser.add_argument("--verification-batch", type=int, default=20, help="Patients per registry call (1: one call each)")
    parser.add_argument("--rate-limits", choices=("redis", "database"), default="redis",
                        help="where the API processes count requests (VAXHUB_RATE_LIMIT_BACKEND)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--link-wait", type=float, default=30.0,
                        help="VAXHUB_MPI_VERIFICATION_WAIT_SECONDS: a new person is linked once the registry answered (0: at once and again)")
    parser.add_argument("--api-threads", type=int, default=8, help="VAXHUB_API_THREADS: requests each API process works on at once")
    parser.add_argument("--arrival-order", action="store_true",
                        help="VAXHUB_WRITES_FIRST=false: requests waiting in an API process are let in as they came, writes not first")
    parser.add_argument("--site-processes", type=int, default=0, metavar="N",
                        help="N of the --api-processes serve the sites alone, on a port of their own; the rest serve the app and the "
                             "verifiers, at --public-nice (two pools behind two host names, docs/operations/scale.md)")
    parser.add_argument("--public-nice", type=int, default=10,
                        help="with --site-processes: niceness the app's and verifiers' pool adds, so that sites' writes go first "
                             "when the cores are short")
    parser.add_argument("--api-nice", type=int, default=0,
                        help="niceness of the API processes: above 0 the outbox workers (and the registry simulators) go first when the cores are short")
    parser.add_argument("--link-nice", type=int, default=0,
                        help="niceness of the MPI link workers: below 0 (root only) they go before the API when the cores are short")
    parser.add_argument("--only", choices=sorted(mix.USER_SHARE), default=None,
                        help="run one kind of user alone, at its share of the mix (what one kind costs: CPU s per request)")
    parser.add_argument("--ramp-seconds", type=float, default=10.0, help="seconds to start every user")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between database samples")
    parser.add_argument("--drain-limit", type=float, default=300.0, help="seconds to wait for the outboxes after the load")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database (its URL is printed); with --own-postgres its cluster is left running too")
    if parser.parse_known_args(argv)[0].smoke:  # smaller defaults; options given still win
        parser.set_defaults(minutes=20 / 60, users=12, rate=40.0, target=36.0, known_people=600, citizens=20,
                            verifier_clients=2, ramp_seconds=2.0, sample_every=2.0)
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = args.target * (1 + OFFER_MARGIN)
    if args.kill and args.api_processes < 2:
        parser.error("--kill needs --api-processes 2 or more: one API process has no supervisor to start it again")
    if args.site_processes and not 0 < args.site_processes < args.api_processes:
        parser.error("--site-processes must leave at least one of the --api-processes to the app and the verifiers")
    if args.kill and args.site_processes == 1:
        parser.error("--kill with --site-processes needs 2 or more of them: the one killed is the sites'")
    args.link_workers = max(1, args.workers // 2)
    args.verification_workers = max(1, args.workers - args.link_workers)
    return args


def _stop_cleanly() -> None:
    """SIGTERM, and SIGINT even where the shell that started the run in the
    background ignores it, unwind through the `finally` blocks: the hub's
    processes stop, the database is dropped, the run's own cluster removed."""
    def interrupted(signum: int, _frame) -> None:  # noqa: ANN001
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _stop_cleanly()
    if not args.own_postgres:
        if args.statements:
            raise SystemExit("--statements needs --own-postgres (pg_stat_statements is loaded when the server starts)")
        return _main(args)
    server = OwnPostgres(statements.SERVER_SETTINGS if args.statements else None, keep=args.keep)
    console.print(f"PostgreSQL: a cluster of the run's own ({server.describe()})")
    try:
        with server as admin_url:
            args.postgres_url = admin_url
            return _main(args)
    finally:
        if args.keep:
            console.print(f"the run's PostgreSQL is left running with the database; to stop and remove it: {server.stop_command()}")


def _main(args: argparse.Namespace) -> int:
    seconds = max(5, round(args.minutes * 60))
    run_dir = Path(tempfile.mkdtemp(prefix="vaxhub-load-"))
    logs, keys, acks, data = (run_dir / n for n in ("logs", "keys", "acks", "data"))
    for folder in (logs, keys, acks, data):
        folder.mkdir()

    first_guess = split_people(2000, args.seed, 0).population
    new_share = args.new_share if args.new_share is not None else round(first_dose_share(first_guess), 2)
    size = people_needed(args.rate, seconds + args.ramp_seconds, new_share, args.known_people)
    console.print(f"population: {size:,} synthetic people (seed {args.seed}); {args.known_people:,} known before the load; "
                  f"new people get {new_share:.0%} of the doses")
    people = split_people(size, args.seed, args.known_people)
    # Measured before anything else starts: how fast this machine is (bench/yardstick.py).
    yardstick = machine_yardstick(people)
    console.print(f"machine yardstick: {yardstick:.3f} ms of CPU to validate a dose (lower is faster)")
    seed.write_registry(people, run_dir / "citizens.json")
    offered = mix.offered_load(args.rate, args.users)

    database_url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_load")
    engine = make_engine(database_url)
    hub = None
    interrupted = False
    try:
        upgrade(engine)
        if args.statements:
            statements.enable(engine)
        _eid_private, eid_jwks, _kid = generate_key(keys, "national-eid")
        env = hub_env(args, database_url, data, eid_jwks)
        subprocess.run([*VAXHUB, "keys", "init"], env=env, cwd=ROOT, check=True, capture_output=True)
        clients = seed.register_clients(engine, keys, people, args.verifier_clients)
        console.print(f"starting {args.api_processes} API processes, {args.verification_workers} verification and "
                      f"{args.link_workers} MPI link worker(s), registry simulators ({args.registry_latency * 1000:.0f} ms "
                      f"+ up to {args.registry_jitter * 1000:.0f} ms, {args.registry_errors:.0%} faults, {args.registry_timeouts:.0%} hangs)")
        hub = start_hub(args, env, logs, run_dir / "citizens.json")
        root = hub.api.root
        headers = seed.bearer(root, clients.national)
        seed.seed_sites(root, headers, people)
        elapsed, known, failures = seed.seed_known_people(root, headers, people)
        if failures:
            raise RuntimeError(f"seeding failed: {failures[:3]}")
        console.print(f"seeded {known:,} known people with their first dose in {elapsed:.0f} s; waiting for verification and linking")
        drained = seed.wait_outbox_empty(engine, console, max(900.0, known / 10), "seed")
        console.print(f"seed outboxes empty after {drained:.0f} s")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Planner statistics for the seeded tables, as autovacuum would have
            # gathered by now on a production server (some test servers run without it).
            conn.execute(text("ANALYZE"))
        headers = seed.bearer(root, clients.national)
        citizens, qr = seed.issue_certificates(root, headers, engine, people, args.citizens, console)
        if not citizens:
            raise RuntimeError("no certificate could be issued: the app and verifier users have nothing to read")
        console.print(f"issued {len(citizens)} certificates ({len(qr)} QR codes for the verifiers)")

        plan = {
            "root": root, "site_root": hub.writers.root, "rate": args.rate, "new_share": new_share, "doses_per_bundle": mix.DOSES_PER_BUNDLE,
            "population": {"size": size, "seed": args.seed, "known": args.known_people},
            "sites": clients.sites, "verifiers": clients.verifiers,
            "eid": {"issuer": EID_ISSUER, "audience": EID_AUDIENCE, "key": str(keys / "national-eid.key.pem")},
            "citizens": citizens, "qr": qr, "downloads": mix.DOWNLOADS,
            "users": offered.users, "pacing": offered.pacing(), "acks_dir": str(acks), "machine_yardstick_ms": yardstick,
        }
        plan_path = run_dir / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=1))
        kinds = [args.only] if args.only else list(offered.rates)
        console.print("offered: " + ", ".join(f"{kind} {offered.users[kind]} users, {offered.rates[kind]:.1f} req/s" for kind in kinds))

        baseline = probes.sample(engine, time.time()).immunizations
        if args.statements:
            statements.reset(engine)
        watcher, timing = run_locust(args, plan_path, plan, run_dir, engine, hub, seconds)
        watcher.stop.set()
        if args.statements:
            print_statements(statements.read(engine), args.statements, run_dir)
        if not timing:
            console.print(f"[red]locust did not run the load; its log:\n{(logs / 'locust.log').read_text()[-3000:]}")
            return 2
        at_stop, drain_seconds, drain_samples = drain(engine, timing["stopped"], args.drain_limit)
        loss = check_acknowledged(engine, report.read_acknowledged(acks))
        ok = print_report(args, plan, watcher, timing, at_stop, drain_seconds, drain_samples, loss, run_dir, baseline, seconds)
        return 0 if ok else 1
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if hub is not None:
            hub.stop()
        engine.dispose()
        drop_unless_kept(drop, database_url, keep=args.keep, say=console.print)
        if interrupted and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run's folder has no report worth keeping


if __name__ == "__main__":
    sys.exit(main())

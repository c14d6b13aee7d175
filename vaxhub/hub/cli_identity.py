"""`vaxhub mpi …`: the master patient index from the command line.

- `work`: the link worker (queued records, registry answers, stale golden Patients);
- `relink`: batch re-linking of the whole index, with a progress bar;
- `stats`: records, persons and reviews by state.
"""

from __future__ import annotations

import json
import signal
import threading

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaxhub.settings import load_settings

mpi_app = typer.Typer(help="Master patient index: link worker, batch re-linking, statistics.", no_args_is_help=True)
console = Console(stderr=True)


def _engine():
    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, statement_timeout_ms=None)
    if settings.auto_migrate:
        upgrade(engine)
    return settings, engine


@mpi_app.command("work")
def work(
    until_idle: bool = typer.Option(False, help="Exit once nothing is queued."),
    batch: int = typer.Option(100, min=1, help="Records linked per transaction (they hold the index lock and their Patient rows until it commits)."),
) -> None:
    """Link queued records (run one or more; they share the database)."""
    from vaxhub.hub.audit.trail import AuditTrail
    from vaxhub.hub.mpi.service import MasterPatientIndex
    from vaxhub.hub.gc_tuning import settle_heap
    from vaxhub.hub.mpi.worker import LinkWorker
    from vaxhub.hub.logging_setup import configure_logging
    from vaxhub.hub.storage.engine import name_connections

    name_connections("vaxhub mpi work")
    settings, engine = _engine()
    configure_logging(settings.effective_log_format(), settings.log_level)  # a long-running service: JSON lines in production
    registry = None
    if settings.population_registry_wsdl:
        from vaxhub.hub.verification.worker import build_population_registry

        registry = build_population_registry(settings, concurrency=8)  # old CMND → CCCD look-ups, as many at once (`OldIdLookups`)
    mpi = MasterPatientIndex(engine, trail=AuditTrail(engine, chains=settings.audit_chains), registry=registry)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker = LinkWorker(mpi, batch=batch)
    settle_heap(settings.gc_thresholds)
    console.print(f"mpi worker: old-id look-ups {'on' if registry else 'off (no population registry configured)'}")
    linked = worker.run(stop, until_idle=until_idle)
    console.print(f"mpi worker stopped: {linked} records linked, {worker.failed} failures")


@mpi_app.command("relink")
def relink(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    goldens: bool = typer.Option(True, help="Rebuild the golden Patients of the persons touched before exiting."),
) -> None:
    """Re-link every record in one batch: read, link in memory, write back in bulk."""
    from vaxhub.hub.audit.trail import AuditTrail
    from vaxhub.hub.mpi.batch import relink_all
    from vaxhub.hub.mpi.service import MasterPatientIndex

    settings, engine = _engine()
    columns = (TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        report = relink_all(engine, progress=progress)
        if goldens:
            mpi = MasterPatientIndex(engine, trail=AuditTrail(engine, chains=settings.audit_chains))
            task = bar.add_task("goldens", total=report.persons_touched or None)
            while done := mpi.rebuild_goldens(500):
                bar.advance(task, done)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    rate = report.records / report.seconds["total"] if report.seconds.get("total") else 0
    console.print(
        f"re-linked {report.records} records in {report.seconds.get('total', 0):.1f} s ({rate:,.0f} records/s): "
        f"{report.clusters} persons, {report.moved} records moved, {report.new_persons} new persons, {report.reviews} reviews opened"
    )


@mpi_app.command("stats")
def stats(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Records, persons and reviews by state."""
    from rich.table import Table

    from vaxhub.hub.mpi.views import stats as index_stats

    _settings, engine = _engine()
    with engine.connect() as conn:
        report = index_stats(conn)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("what", "state", "count")
    for group in ("records", "persons", "reviews"):
        for state, count in report[group].items():
            table.add_row(group, state, str(count))
    for method, count in sorted(report["linked_by"].items()):
        table.add_row("linked by", method, str(count))
    table.add_row("golden Patients", "to rebuild", str(report["golden_stale"]))
    Console().print(table)

"""`vaxhub export …`: FHIR Bulk Data export from the command line.

- `work`: run export jobs (kicked off through `$export` on any hub process)
  until stopped, or with `--until-idle` until none is queued or running. Any
  number of workers and API processes may run jobs against one database; each
  job is leased to one of them at a time. `VAXHUB_EXPORT_DIR` must be the
  same folder for all of them.
"""

from __future__ import annotations

import typer
from rich.console import Console

from vaxhub.settings import load_settings

export_app = typer.Typer(help="FHIR Bulk Data export: run the export jobs.", no_args_is_help=True)
console = Console(stderr=True)


@export_app.command("work")
def work(
    name: str = typer.Option(None, help="Worker name recorded on leases (default host:pid)."),
    until_idle: bool = typer.Option(False, help="Exit once no export job is queued or running."),
) -> None:
    """Run queued export jobs, writing NDJSON files under VAXHUB_EXPORT_DIR."""
    import signal
    import threading

    from vaxhub.hub.bulk_export.runner import ExportOptions, ExportRunner, export_jobs
    from vaxhub.hub.storage.engine import make_engine, name_connections, upgrade
    from vaxhub.hub.storage.store import FhirStore

    name_connections("vaxhub export work")
    settings = load_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, statement_timeout_ms=settings.statement_timeout_ms)
    if settings.auto_migrate:
        upgrade(engine)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Stop claiming; a job being written is given back at once for another worker to start afresh.
        signal.signal(signum, lambda *_: stop.set())
    options = ExportOptions.from_settings(settings)
    runner = ExportRunner(FhirStore(engine), export_jobs(engine, settings), options, name=name)
    console.print(f"export worker {runner.name}: files under {options.export_dir}")
    finished = runner.run(stop, until_idle=until_idle)
    console.print(f"export worker stopped: {finished} exports finished")

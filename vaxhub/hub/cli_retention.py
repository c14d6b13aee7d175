"""`vaxhub retention run [--dry-run]` and `vaxhub retention verify-archives`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from vaxhub.settings import load_settings

retention_app = typer.Typer(help="Audit partitions, audit archives and expired rows (docs/operations/retention.md).", no_args_is_help=True)
console = Console()


@retention_app.command("run")
def run(dry_run: bool = typer.Option(False, "--dry-run", help="Only report what a pass would do; change nothing.")) -> None:
    """Create audit partitions ahead, archive and drop audit months past retention, delete expired rows."""
    from vaxhub.hub.retention.run import RetentionPolicy, run_retention
    from vaxhub.hub.storage.engine import make_engine

    settings = load_settings()
    policy = RetentionPolicy.from_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        report = run_retention(engine, policy, dry_run=dry_run)
    finally:
        engine.dispose()
    if report.busy:
        console.print("another retention run holds the lock; nothing done")
        return
    verb = "would" if dry_run else "did"
    console.print(
        f"[bold]retention {'dry run' if dry_run else 'run'}[/]: audit kept for {policy.audit_retention_months} months "
        f"(events before {report.cutoff:%Y-%m-%d} are archived to {policy.archive_dir})"
    )
    table = Table("step", "what", "rows", title=f"what the pass {verb} do")
    for name in report.partitions_created:
        table.add_row("partition", f"create {name}", str(report.rows_moved.get(name, 0)) + " moved from DEFAULT")
    for archive in report.archived:
        table.add_row("archive", f"{archive.month} -> {archive.file_name} (sha256 {archive.sha256[:16]}…), dropped", f"{archive.events:,}")
    for month, events in sorted(report.to_archive.items()):
        table.add_row("archive", f"{month} (archive, then drop)", f"{events:,}")
    for month in report.empty_months_dropped:
        table.add_row("archive", f"{month}: empty partitions dropped", "0")
    for purge in report.purged:
        table.add_row("delete", f"{purge.table}: {purge.what}", f"{purge.rows:,}")
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]{problem}")
    if not report.ok:
        raise typer.Exit(1)


@retention_app.command("verify-archives")
def verify_archives() -> None:
    """Check every archived audit month (file present, sha256, hashes, chain continuity up to the checkpoints)."""
    from vaxhub.hub.retention.audit_archive import verify_archives as verify
    from vaxhub.hub.storage.engine import make_engine

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        report = verify(engine, settings.audit_archive_path())
    finally:
        engine.dispose()
    for problem in report.problems:
        console.print(f"[red]{problem}")
    if not report.ok:
        console.print(f"[red bold]audit archives BROKEN[/] ({len(report.problems)} problems)")
        raise typer.Exit(1)
    console.print(f"audit archives intact: {report.events:,} events in {report.months} months, continuing into the live chains")

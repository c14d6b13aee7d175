"""`vaxhub backup DEST` and `vaxhub restore SRC`, with progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from vaxhub.settings import load_settings

console = Console(stderr=True)


@contextmanager
def _progress_bars() -> Iterator:
    """A `Progress` callback drawing one bar per step."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(), console=console) as bars:
        tasks: dict[str, int] = {}

        def report(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total)
            bars.update(tasks[step], completed=done, total=total)

        yield report


def backup(dest: Path = typer.Argument(..., help="The archive to write (a new file, e.g. vaxhub-2026-11-02.tar.gz).")) -> None:
    """Back up the database and the hub's key files into one verified archive, while the hub keeps running."""
    from vaxhub.hub.backup import BackupError, backup_hub

    try:
        with _progress_bars() as progress:
            manifest = backup_hub(load_settings(), dest, progress=progress)
    except BackupError as exc:
        console.print(f"[red]backup failed: {exc.message}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:  # a full disk, a vanished folder: say so without a traceback
        console.print(f"[red]backup failed: {exc}[/red]")
        raise typer.Exit(1) from None
    keys = sum(1 for name in manifest.members if name.startswith("keys/"))
    console.print(
        f"backup written to [bold]{dest}[/bold]: {manifest.backend} at revision {','.join(manifest.revision)}, "
        f"{sum(manifest.row_counts.values())} rows in {len(manifest.row_counts)} tables, {keys} key files"
    )


def restore(
    src: Path = typer.Argument(..., help="An archive written by `vaxhub backup`."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a database and keys already in place (stop the hub first)."),
) -> None:
    """Check a backup archive whole, then restore the database (VAXHUB_DATABASE_URL) and the key files."""
    from vaxhub.hub.backup import BackupError, restore_hub

    try:
        with _progress_bars() as progress:
            report = restore_hub(load_settings(), src, replace=replace, progress=progress)
    except BackupError as exc:
        console.print(f"[red]restore failed: {exc.message}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:  # a full disk, a vanished folder: say so without a traceback
        console.print(f"[red]restore failed: {exc}[/red]")
        raise typer.Exit(1) from None
    manifest = report.manifest
    console.print(
        f"restored the backup of {manifest.created}: revision {','.join(manifest.revision)}, "
        f"{sum(manifest.row_counts.values())} rows in {len(manifest.row_counts)} tables, {len(report.key_files)} key files"
    )
    if report.needs_upgrade:
        console.print("[yellow]the backup's schema is older than this vaxhub's: run `vaxhub db upgrade` before serving[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)

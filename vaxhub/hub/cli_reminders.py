"""`vaxhub reminders …`: dose reminders from the command line.

- `list`: who is due or overdue on a date (table, or CSV with `--csv`);
- `send`: one SMS per due dose, never twice for the same dose (see
  `vaxhub.hub.healthbook.reminders`), with a progress bar. Safe to run from
  several machines at once.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaxhub.adapters.sms import ConsoleSms, SmsSender
from vaxhub.settings import load_settings

reminders_app = typer.Typer(help="Dose reminders: who is due, and the SMS that tell them.", no_args_is_help=True)
console = Console(stderr=True)


def _engine():
    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    if settings.auto_migrate:
        upgrade(engine)
    return engine


def _day(text: str | None) -> dt.date:
    if not text:
        return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=7)).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from None


def sms_gateway() -> SmsSender:
    """The SMS adapter the CLI sends through (the console until a gateway adapter is configured)."""
    return ConsoleSms()


@reminders_app.command("list")
def list_due(
    as_of: str = typer.Option(None, "--as-of", help="Local date YYYY-MM-DD (default: today)."),
    site: str = typer.Option(None, help="Site code of the last dose."),
    province: str = typer.Option(None, help="Two-digit province code or name."),
    as_csv: bool = typer.Option(False, "--csv", help="Write CSV to standard output."),
) -> None:
    """People due or overdue for their next dose."""
    from rich.table import Table

    from vaxhub.hub.healthbook.reminders import due_doses, to_csv_rows

    with _engine().connect() as conn:
        found = due_doses(conn, _day(as_of), site=site, province=province)
    if as_csv:
        csv.writer(sys.stdout).writerows(to_csv_rows(found))
        return
    table = Table("person", "province", "site", "vaccine", "next dose", "due", "status")
    for d in found:
        table.add_row(d.name or d.patient_id, d.province, d.site or "", d.vaccine_name, str(d.next_dose), d.due_date.isoformat(), d.status)
    Console().print(table)
    typer.echo(f"{len(found)} due or overdue")


@reminders_app.command("send")
def send(
    as_of: str = typer.Option(None, "--as-of", help="Local date YYYY-MM-DD (default: today)."),
    site: str = typer.Option(None, help="Only people whose last dose this site gave."),
    province: str = typer.Option(None, help="Only people of this province (code or name)."),
) -> None:
    """Send one SMS per due dose not reminded of before."""
    from vaxhub.hub.healthbook.reminders import send_reminders

    engine = _engine()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("sending reminders", total=None)

        def advanced(_dose, _outcome) -> None:
            bar.advance(task)

        report = send_reminders(engine, sms_gateway(), _day(as_of), site=site, province=province,
                                progress=advanced, on_start=lambda total: bar.update(task, total=total))
    console.print(f"due: {report.due}  sent: {report.sent}  already sent: {report.already_sent}  no phone: {report.no_phone}")

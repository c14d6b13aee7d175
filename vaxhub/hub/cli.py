"""The `vaxhub` command line."""

from __future__ import annotations

import typer
from rich.console import Console

from vaxhub import __version__
from vaxhub.settings import load_settings

app = typer.Typer(help="vaxhub: FHIR hub for national vaccination programmes.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaxhub {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Settings come from VAXHUB_* environment variables (VAXHUB_DATABASE_URL, …)."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes (each is stateless; the database is shared)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the FHIR API."""
    import uvicorn

    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    if settings.auto_migrate:
        # Migrate once here, not in every worker at the same moment.
        upgrade(make_engine(settings.database_url))
    uvicorn.run(
        "vaxhub.hub.asgi:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=log_level == "debug",
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from vaxhub.hub.storage.engine import current_revision, make_engine, upgrade

    engine = make_engine(load_settings().database_url)
    upgrade(engine, revision)
    console.print(f"database at revision [bold]{current_revision(engine)}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision and the newest one."""
    from vaxhub.hub.storage.engine import current_revision, head_revision, make_engine

    engine = make_engine(load_settings().database_url)
    typer.echo(f"current: {current_revision(engine)}  head: {head_revision()}")


@app.command()
def demo(
    port: int = typer.Option(8080, help="TCP port."),
    people: int = typer.Option(300, min=1, help="How many synthetic people to load."),
    data_dir: str = typer.Option("demo-data", help="Folder for the demo database."),
    load_only: bool = typer.Option(False, help="Load the sample data and exit without serving."),
) -> None:
    """Start the hub on SQLite with realistic sample data loaded."""
    from vaxhub.hub.demo import run_demo

    run_demo(port=port, people=people, data_dir=data_dir, serve=not load_only)


if __name__ == "__main__":
    app()

"""The `vaxhub` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vaxhub import __version__
from vaxhub.hub.cli_identity import mpi_app
from vaxhub.hub.cli_certificates import keys_app, verify as verify_certificate
from vaxhub.hub.cli_reminders import reminders_app
from vaxhub.hub.cli_export import export_app
from vaxhub.hub.cli_backup import register as register_backup_commands
from vaxhub.hub.cli_retention import retention_app
from vaxhub.settings import load_settings

app = typer.Typer(help="vaxhub: FHIR hub for national vaccination programmes.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
clients_app = typer.Typer(help="Registered clients (hospitals, registries, verifiers, operator consoles).", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(mpi_app, name="mpi")
app.add_typer(keys_app, name="keys")
app.add_typer(reminders_app, name="reminders")
app.add_typer(export_app, name="export")
app.command("verify")(verify_certificate)
register_backup_commands(app)  # vaxhub backup / vaxhub restore
app.add_typer(retention_app, name="retention")
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
    keep_alive: int = typer.Option(
        75, min=1, help="Seconds an idle keep-alive connection stays open: longer than a load balancer's "
        "idle timeout (60 s on the common ones), so the hub never closes a connection a client is about to reuse."),
) -> None:
    """Run the FHIR API."""
    import uvicorn

    from vaxhub.hub.storage.engine import make_engine, name_connections, upgrade

    from vaxhub.hub.security.tokens import load_or_create_signing_key

    name_connections("vaxhub serve")
    settings = load_settings()
    if settings.auto_migrate:
        # Migrate once here, not in every worker at the same moment.
        upgrade(make_engine(settings.database_url))
    # Likewise the token-signing key: every worker must sign with the same one.
    load_or_create_signing_key(settings.signing_key_path(), create=settings.environment == "development")
    if workers > 1:
        prepare_metrics_folder(settings.data_dir)
    uvicorn.run(
        "vaxhub.hub.asgi:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_keep_alive=keep_alive,
    )


def prepare_metrics_folder(data_dir: Path) -> Path:
    """Several workers answer `GET /metrics` in turn: unless the operator chose a
    folder, give them one (emptied: it holds the previous run's dead workers) in
    which prometheus_client adds up every worker's samples."""
    import os
    import shutil

    from vaxhub.hub.observability.metrics import MULTIPROCESS_ENV

    folder = Path(os.environ.get(MULTIPROCESS_ENV) or data_dir / "metrics")
    if MULTIPROCESS_ENV not in os.environ:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ[MULTIPROCESS_ENV] = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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


@clients_app.command("keygen")
def clients_keygen(name: str, out: Path = typer.Option(Path("."), help="Folder for NAME.key.pem and NAME.jwks.json.")) -> None:
    """Make a P-256 key pair for a client: the private PEM stays with the client, the JWKS is registered."""
    from vaxhub.hub.security.client_tools import generate_key

    private, public, kid = generate_key(out, name)
    console.print(f"private key {private}\npublic JWKS {public}\nkid {kid}")


@clients_app.command("add")
def clients_add(
    client_id: str,
    jwks: Path = typer.Option(..., exists=True, help="The client's public keys (JWKS JSON)."),
    kind: str = typer.Option("system", help="system, verifier or operator."),
    scopes: str = typer.Option("system/Patient.cruds system/Immunization.cruds", help="SMART scopes it may be granted."),
    site: str | None = typer.Option(None, help="The site code it writes as."),
    roles: str = typer.Option("", help="Operator roles, space-separated (e.g. auditor)."),
    name: str | None = typer.Option(None, help="A human-readable name."),
) -> None:
    """Register (or replace) a client."""
    import orjson

    from vaxhub.hub.security.clients import ClientRegistry
    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url)
    if settings.auto_migrate:
        upgrade(engine)
    client = ClientRegistry(engine).register(
        client_id, name=name or client_id, kind=kind, jwks=orjson.loads(jwks.read_bytes()), scopes=scopes, site_code=site, roles=roles
    )
    console.print(f"registered {client.kind} client [bold]{client.client_id}[/bold] site={client.site_code or '-'} scopes={scopes}")


@app.command()
def token(
    client_id: str,
    key: Path = typer.Option(..., exists=True, help="The client's private key (PEM)."),
    url: str = typer.Option("http://127.0.0.1:8080/auth/token", help="The hub's token URL."),
    scope: str | None = typer.Option(None, help="Scopes to ask for (default: all the client may have)."),
) -> None:
    """Sign a client assertion, ask the hub for an access token, print the token."""
    from vaxhub.hub.security.client_tools import load_key, request_token

    typer.echo(request_token(url, client_id, load_key(key), scope)["access_token"])


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every audit hash chain; exit 1 if any event was altered, removed or re-ordered."""
    from vaxhub.hub.audit.trail import AuditTrail
    from vaxhub.hub.storage.engine import make_engine

    report = AuditTrail(make_engine(load_settings().database_url)).verify()
    for problem in report.problems:
        console.print(f"[red]{problem}")
    if not report.ok:
        console.print(f"[red bold]audit trail BROKEN[/] ({len(report.problems)} problems in {report.events} events)")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {report.events} events in {report.chains} chains")


@app.command()
def demo(
    port: int = typer.Option(8080, help="TCP port."),
    people: int = typer.Option(300, min=1, help="How many synthetic people to load."),
    data_dir: str = typer.Option("demo-data", help="Folder for the demo's database, keys and files."),
    load_only: bool = typer.Option(False, help="Load the sample data and exit without serving."),
) -> None:
    """Start the hub on SQLite with realistic sample data loaded."""
    from vaxhub.hub.demo import run_demo

    run_demo(port=port, people=people, data_dir=data_dir, serve=not load_only)


verification_app = typer.Typer(help="Identity verification queue: status, mismatches, dead letters, requeue.", no_args_is_help=True)
app.add_typer(verification_app, name="verification")


@app.command()
def worker(
    concurrency: int = typer.Option(None, min=1, help="Registry calls in flight (default VAXHUB_VERIFICATION_CONCURRENCY)."),
    batch_size: int = typer.Option(None, min=1, max=100, help="Jobs per registry call (default VAXHUB_VERIFICATION_BATCH_SIZE)."),
    name: str = typer.Option(None, help="Worker name recorded on leases and results (default host:pid)."),
    until_idle: bool = typer.Option(False, help="Exit once no job is queued or in flight."),
) -> None:
    """Verify queued Patients against the population registry, cross-checked with social insurance when configured (run one or more)."""
    import signal
    import threading

    from vaxhub.hub.gc_tuning import settle_heap
    from vaxhub.hub.storage.engine import make_engine, name_connections, upgrade
    from vaxhub.hub.verification.worker import run_worker

    name_connections("vaxhub worker")
    settings = load_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    if settings.auto_migrate:
        upgrade(engine)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Stop claiming, finish and record the calls in flight, then exit.
        signal.signal(signum, lambda *_: stop.set())
    settle_heap(settings.gc_thresholds)
    console.print(f"verification worker: registry {settings.population_registry_wsdl}, "
                  f"social insurance {settings.social_insurance_url or 'not configured'}")
    recorded = run_worker(settings, engine, stop=stop, name=name, until_idle=until_idle, concurrency=concurrency, batch_size=batch_size)
    console.print(f"verification worker stopped: {recorded} results recorded")


def _verification_engine():
    from vaxhub.hub.storage.engine import make_engine

    return make_engine(load_settings().database_url)


def _print_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@verification_app.command("status")
def verification_status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Patients per verification status, jobs in flight, circuit breakers."""
    from rich.table import Table

    from vaxhub.hub.verification.operator_view import status_counts

    report = status_counts(_verification_engine())
    if as_json:
        _print_json(report)
        return
    table = Table("status", "patients")
    for status, count in report["counts"].items():
        table.add_row(status, str(count))
    table.add_row("[bold]total[/bold]", str(report["total"]))
    Console().print(table)
    typer.echo(f"in flight: {report['in_flight']}  waiting to retry: {report['retrying']}")
    for circuit in report["circuits"]:
        until = f" until {circuit['open_until']}" if circuit["state"] != "closed" else ""
        typer.echo(f"circuit {circuit['registry']}: {circuit['state']}{until} (opened {circuit['opened_count']} times)"
                   + (f": {circuit['reason']}" if circuit["state"] != "closed" and circuit["reason"] else ""))


@verification_app.command("mismatches")
def verification_mismatches(
    site: str = typer.Option(None, help="Only this site (Organization/<id>)."),
    field: str = typer.Option(None, help="Only this field: full_name, birth_date, sex."),
    limit: int = typer.Option(50, min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Mismatching Patients, counted by site and field."""
    from rich.table import Table

    from vaxhub.hub.verification.operator_view import mismatches

    report = mismatches(_verification_engine(), site=site, field=field, limit=limit)
    if as_json:
        _print_json(report)
        return
    summary = Table("site", "site name", "field", "patients")
    for row in report["by_site_and_field"]:
        summary.add_row(row["site"] or "-", row["site_name"] or "-", row["field"], str(row["count"]))
    Console().print(summary)
    listing = Table("patient", "version", "site", "field: claimed / registry")
    for item in report["items"]:
        fields = "; ".join(f"{k}: {v['claimed']} / {v['registry']}" for k, v in item["fields"].items())
        listing.add_row(item["patient"], str(item["version"]), item["site"] or "-", fields)
    Console().print(listing)
    typer.echo(f"{report['total']} mismatching patients")


@verification_app.command("dead")
def verification_dead(
    limit: int = typer.Option(50, min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Dead letters: jobs the queue gave up on, with their last error."""
    from rich.table import Table

    from vaxhub.hub.verification.operator_view import dead_letters

    report = dead_letters(_verification_engine(), limit=limit)
    if as_json:
        _print_json(report)
        return
    table = Table("patient", "attempts", "died at", "error")
    for item in report["items"]:
        table.add_row(item["patient"], str(item["attempts"]), item["died_at"] or "", item["error"] or "")
    Console().print(table)
    typer.echo(f"{report['total']} dead letters")


@verification_app.command("requeue")
def verification_requeue(
    patients: list[str] = typer.Argument(None, help="Patient ids to verify again."),
    status: str = typer.Option(None, help="Every Patient with this status: dead, mismatch, not_found, unverifiable, verified."),
    site: str = typer.Option(None, help="Only Patients of this site (Organization/<id>)."),
) -> None:
    """Queue Patients for verification again (attempts reset)."""
    from vaxhub.hub.verification.operator_view import requeue

    try:
        count = requeue(_verification_engine(), patients=patients or None, status=status, site=site)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(f"requeued {count} patients")


@app.command()
def mllp(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(2575, help="TCP port (2575 is HL7's registered port)."),
    tls_cert: str = typer.Option("", help="The listener's TLS certificate (PEM); with --tls-key and --client-ca, senders must show a client certificate."),
    tls_key: str = typer.Option("", help="The listener's TLS private key (PEM)."),
    client_ca: str = typer.Option("", help="CA certificates (PEM) that issue the senders' certificates; a certificate's common name names a registered client."),
    client_crl: str = typer.Option("", help="The client CA's certificate revocation list (PEM or DER), read again when the file changes; with TLS only."),
) -> None:
    """Receive HL7 v2 VXU^V04 messages over MLLP and answer ACKs. SIGHUP reads the listener's certificate again."""
    import asyncio

    from vaxhub.hub.hub_store import hub_store
    from vaxhub.hub.ingest.mllp import serve_mllp
    from vaxhub.hub.ingest.vxu import VxuReceiver
    from vaxhub.hub.ingest.vxu_groups import VxuGroups
    from vaxhub.hub.logging_setup import configure_logging
    from vaxhub.hub.storage.engine import make_engine, name_connections, upgrade

    name_connections("vaxhub mllp")
    settings = load_settings()
    configure_logging(settings.effective_log_format(), settings.log_level)  # a long-running service: JSON lines in production
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    if settings.auto_migrate:
        upgrade(engine)
    store, trail = hub_store(engine, settings)
    receiver = VxuReceiver(store, base=settings.base_url or "urn:vaxhub:mllp", max_entries=settings.max_bundle_entries, groups=VxuGroups(store))
    given = [bool(tls_cert), bool(tls_key), bool(client_ca)]
    if any(given) and not all(given):
        console.print("[red]--tls-cert, --tls-key and --client-ca go together[/red]")
        raise typer.Exit(2)
    if client_crl and not all(given):
        console.print("[red]--client-crl needs --tls-cert, --tls-key and --client-ca[/red]")
        raise typer.Exit(2)
    listener = senders = None
    if all(given):
        from vaxhub.hub.ingest.mllp_tls import ListenerTls, RegisteredSenders
        from vaxhub.hub.security.clients import ClientRegistry

        try:
            listener = ListenerTls(tls_cert, tls_key, client_ca, client_crl or None)
        except (ValueError, OSError) as exc:  # a missing or unreadable file, a bad key pair or list (ssl.SSLError is an OSError)
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        senders = RegisteredSenders(ClientRegistry(engine))
    else:
        console.print("[yellow]without TLS client certificates, any peer that reaches this port may send records for any site[/yellow]")
    console.print(f"MLLP listening on {host}:{port}" + (" (TLS, client certificates required)" if listener else ""))
    try:
        asyncio.run(serve_mllp(receiver, host, port, trail=trail, tls=listener.context if listener else None, senders=senders,
                               revocations=listener.revocations if listener else None, reload=listener.reload if listener else None))
    except KeyboardInterrupt:
        pass


@app.command("import")
def import_command(
    file: str = typer.Argument(..., help="Backlog spreadsheet, .xlsx or .csv."),
    site: str = typer.Option(..., help="Code of the uploading site (scopes identifiers of people without a CCCD)."),
    report: str = typer.Option("", help="Where to write the row report (default: FILE.report.xlsx/.csv beside FILE)."),
) -> None:
    """Import a backlog spreadsheet with a progress bar; re-running resumes an interrupted import."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vaxhub.errors import VaxhubError
    from vaxhub.hub.hub_store import hub_store
    from vaxhub.hub.ingest.imports import ImportJobs, import_file
    from vaxhub.hub.logging_setup import configure_logging
    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    configure_logging(settings.effective_log_format(), settings.log_level)
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    if settings.auto_migrate:
        upgrade(engine)
    jobs = ImportJobs(hub_store(engine, settings)[0])  # audited, and its new people verified and linked, as through the API
    path = Path(file)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(path.name, total=None)
            status = import_file(
                jobs, site_code=site, filename=path.name, content=path.read_bytes(),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except VaxhubError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    content, _media, name = jobs.report(status.id)
    target = Path(report) if report else path.with_name(name)
    target.write_bytes(content)
    console.print(
        f"job {status.id}: {status.status}; {status.rows_done} rows, {status.rows_stored} stored "
        f"({status.rows_warned} with warnings), {status.rows_rejected} rejected; "
        f"{status.patients_created} patients and {status.doses_created} doses created, {status.doses_existing} doses already stored"
    )
    if status.error:
        console.print(f"[red]{status.error}[/red]")
    console.print(f"row report: {target}")
    raise typer.Exit(0 if status.status == "done" else 1)


if __name__ == "__main__":
    app()

"""PostgreSQL's CPU during the load, by the hub service each backend serves.

The report's CPU table counts the database's backends as one group, yet
they work for different masters: the API's requests, the verification
worker, the link worker, the harness's own probes. Each hub service names
its connections (`application_name`, from `vaxhub.hub.storage.engine.
name_connections`), so a backend's CPU can be charged to the service that
asked for it: where PostgreSQL's share of the machine goes, per stored dose.
"""

from __future__ import annotations

from rich.table import Table

# application_name → what the report calls it; anything else is shown by its own name.
SERVICES = {
    "vaxhub serve": "API (vaxhub serve)",
    "vaxhub worker": "verification workers (vaxhub worker)",
    "vaxhub mpi work": "MPI link workers (vaxhub mpi work)",
    "": "unnamed: the harness's probes",
}


def service(application_name: str | None) -> str:
    name = application_name or ""
    return SERVICES.get(name, name)


def table(cpu_by_service: dict[str, float], stored: int, window: float) -> Table:
    out = Table(title="PostgreSQL's CPU during the load by the service each backend served (application_name)")
    for column in ("service", "CPU s", "share of PostgreSQL", "ms per Immunization stored"):
        out.add_column(column, justify="left" if column == "service" else "right")
    whole = sum(cpu_by_service.values())
    for name, used in sorted(cpu_by_service.items(), key=lambda kv: -kv[1]):
        out.add_row(name, f"{used:,.1f}", f"{used / whole:.0%}" if whole else "-", f"{used / stored * 1000:.2f}" if stored else "-")
    out.caption = f"{whole:,.0f} CPU s in all over {window:,.0f} s"
    return out

"""What a read's AuditEvent costs: `AuditTrail.record` on PostgreSQL, one at a time.

A scratch database; `--records` reads of a Patient's `$everything` (four
resources touched each) recorded one after another from one thread, so each
is its own commit (no group commit). Figures per record: the recording
thread's CPU (`time.thread_time`), the PostgreSQL server processes' CPU (read
from /proc for every process named postgres, so run it on a quiet machine),
and wall time. The floor, measured in the same run, is building the same
events without a database (`AuditTrail._rows`: content, hashes); the ratio
is the client's CPU over it.

    .venv/bin/python bench/audit_record.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import scratch_engine  # noqa: E402
from vaxhub.hub.audit.trail import GENESIS, AuditTrail, Interaction  # noqa: E402
from vaxhub.hub.security.principal import Principal  # noqa: E402

console = Console(width=120)


def postgres_cpu_seconds() -> float:
    """CPU seconds of every process named postgres on this machine (Linux /proc)."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")].startswith("postgres"):
            fields = stat[stat.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def everything_read(n: int) -> Interaction:
    """The interaction of a citizen's `$everything`: their Patient and three Immunizations."""
    interaction = Interaction("operation", "GET", f"/fhir/Patient/p{n}/$everything", "", "127.0.0.1")
    interaction.principal = Principal(kind="patient", subject=f"citizen-{n}", patient_id=f"p{n}")
    for dose in range(3):
        interaction.touched("Immunization", f"imm-{n}-{dose}", 1,
                            {"resourceType": "Immunization", "patient": {"reference": f"Patient/p{n}"}})
    interaction.touched("Patient", f"p{n}", 2, {"resourceType": "Patient"})
    return interaction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL"), help="admin URL; a scratch database is made")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("--postgres-url (or VAXHUB_BENCH_POSTGRES_URL) is required")

    with scratch_engine(args.postgres_url, "vaxhub_bench_audit", keep=args.keep, say=console.print) as engine:
        trail = AuditTrail(engine)
        for n in range(200):  # the pool's connection, the read chain's head, prepared statements
            trail.record(everything_read(n))
        reads = [everything_read(n) for n in range(args.records)]

        floor_start = time.thread_time()
        for read in reads:
            trail._rows(0, 0, GENESIS, [read])
        floor = (time.thread_time() - floor_start) / args.records

        cpu, server, wall = time.thread_time(), postgres_cpu_seconds(), time.perf_counter()
        for read in reads:
            trail.record(read)
        cpu, server, wall = time.thread_time() - cpu, postgres_cpu_seconds() - server, time.perf_counter() - wall
        report = trail.verify()

    table = Table(title=f"per AuditEvent recorded: {args.records:,} reads, one at a time, PostgreSQL")
    for col in ("client CPU ms", "PostgreSQL CPU ms", "wall ms", "floor ms (rows and hashes)", "client / floor"):
        table.add_column(col, justify="right")
    per = args.records
    table.add_row(f"{1000 * cpu / per:.3f}", f"{1000 * server / per:.3f}", f"{1000 * wall / per:.3f}", f"{1000 * floor:.3f}",
                  f"{cpu / per / floor:.1f}")
    console.print(table)
    console.print(f"audit chains verify: {report.ok} ({report.events:,} events)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

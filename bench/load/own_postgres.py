"""A PostgreSQL cluster of the load test's own, set up as docs/operations/scale.md
advises for the hub's primary (`--own-postgres`).

A machine's shared server may be set up for anything but a national write
load: this one runs without autovacuum (queue tables bloat with dead rows
and plans made on empty tables stay), with 128 MB of shared buffers and 1 GB
of WAL between checkpoints (a checkpoint a minute under the load, and every
page changed after one copied whole into the WAL). A run on a cluster of its
own measures the hub on the server a deployment would give it, on the same
machine: the figures of both are in the README.

`initdb` and `pg_ctl` come from the newest /usr/lib/postgresql/*/bin (or
PATH). PostgreSQL refuses to run as root; as root the cluster is made and run
as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# The primary's settings for this machine (2 cores, 24 GB): room for the WAL
# of a busy half-hour between checkpoints, a quarter of the memory the
# database would have on a host of its own, autovacuum as PostgreSQL ships it.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "shared_buffers": "2GB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "on",
    "fsync": "on",
    "synchronous_commit": "on",
}


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnPostgres:
    """`with OwnPostgres() as admin_url:` a fresh cluster, stopped and removed
    after; with `keep`, left running for a look at what the run stored
    (`stop_command` says how to stop and remove it)."""

    def __init__(self, settings: dict[str, str] | None = None, *, keep: bool = False):
        self.settings = {**SETTINGS, **(settings or {})}
        self.keep = keep
        bin_dir = _bin_dir()
        self.initdb = str(bin_dir / "initdb") if bin_dir else shutil.which("initdb")
        self.pg_ctl = str(bin_dir / "pg_ctl") if bin_dir else shutil.which("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise RuntimeError("--own-postgres needs PostgreSQL's initdb and pg_ctl (the postgresql package)")
        self.root = Path(tempfile.mkdtemp(prefix="vaxhub-load-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, cwd="/")

    def __enter__(self) -> str:
        try:
            if self.as_postgres:
                shutil.chown(self.root, "postgres", "postgres")
            self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
            options = " ".join(f"-c {k}={v}" for k, v in {**self.settings, "port": str(self.port), "unix_socket_directories": str(self.root)}.items())
            self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        except (OSError, subprocess.CalledProcessError) as exc:
            # `with` does not call __exit__ when __enter__ fails: nothing is left behind, and the reason is shown.
            detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
            log = self.root / "server.log"
            detail += ("\n" + log.read_text(errors="replace")[-2000:]) if log.exists() else ""
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"the run's own PostgreSQL did not start: {detail}") from exc
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            return
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def stop_command(self) -> str:
        """The shell command that stops a kept cluster and removes its files."""
        run_as = "runuser -u postgres -- " if self.as_postgres else ""
        return f"{run_as}{self.pg_ctl} -D {self.data} -m fast -w stop && rm -rf {self.root}"

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items() if k not in ("listen_addresses", "fsync", "synchronous_commit"))

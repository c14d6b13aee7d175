"""What counting one request against its rate limit costs an API process:
client CPU per `RedisWindows.hit` (one EVALSHA of the sliding-window script)
on the local Redis, with redis-py's C reply parser (hiredis, what the hub
installs) and with its pure-Python one, in blocks that alternate so both
see the same machine.

The floor, measured in the same run: a PING through the same client, the
least any Redis round trip costs it. hit/floor is the count's CPU over it.

With `--postgres-url` (and always on a temporary SQLite file), the database
counter too (`DatabaseWindows.hit`, the default backend: an upsert and a
read of the previous window in one write transaction) against its floor, a
write transaction running `SELECT 1` on the same engine.

    .venv/bin/python bench/rate_limits.py [--redis-url redis://127.0.0.1:6379/0] [--calls 20000]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis._parsers import _HiredisParser, _RESP3Parser  # no public names: the classes redis-py picks itself, with and without hiredis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sqlalchemy import text  # noqa: E402

from bench.databases import fresh_postgres_database  # noqa: E402
from vaxhub.hub.security.rate_limits import DatabaseWindows, RedisWindows  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade, write_transaction  # noqa: E402

console = Console()
PARSERS = {"hiredis (C)": _HiredisParser, "pure Python": _RESP3Parser}


def client(url: str, parser: type) -> redis.Redis:
    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, parser_class=parser))


def cpu_per_call(call: Callable[[], object], calls: int) -> float:
    """Microseconds of this process's CPU per call."""
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


def database_counter(url: str, calls: int, blocks: int) -> tuple[float, float]:
    """Median µs of client CPU per `DatabaseWindows.hit` and per floor transaction."""
    engine = make_engine(url, pool_size=1)
    try:
        upgrade(engine)
        windows = DatabaseWindows(engine)
        hits, floors = [], []

        def floor() -> None:
            with write_transaction(engine) as conn:
                conn.execute(text("SELECT 1")).scalar_one()

        windows.hit("bench", 0, 60_000)
        floor()
        for _ in range(blocks):
            hits.append(cpu_per_call(lambda: windows.hit("bench", 0, 60_000), calls))
            floors.append(cpu_per_call(floor, calls))
        return statistics.median(hits), statistics.median(floors)
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per block")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks per parser")
    parser.add_argument("--postgres-url", help="also measure the database counter on a fresh PostgreSQL database")
    parser.add_argument("--database-calls", type=int, default=2000, help="database counter calls per block")
    args = parser.parse_args()
    measured: dict[str, dict[str, list[float]]] = {name: {"hit": [], "ping": []} for name in PARSERS}
    windows = {name: RedisWindows(client(args.redis_url, cls), prefix="vaxhub:bench-rate:") for name, cls in PARSERS.items()}
    for w in windows.values():  # connections made and the script loaded before anything is timed
        w.hit("bench", 0, 60_000)
        w.client.ping()
    for _ in range(args.blocks):
        for name, w in windows.items():
            measured[name]["hit"].append(cpu_per_call(lambda: w.hit("bench", 0, 60_000), args.calls))
            measured[name]["ping"].append(cpu_per_call(w.client.ping, args.calls))
    left = next(iter(windows.values())).client
    for key in left.scan_iter("vaxhub:bench-rate:*"):
        left.delete(key)
    table = Table(title=f"client CPU per call, µs (median of {args.blocks} blocks of {args.calls:,})")
    for column in ("reply parser", "rate-limit count (EVALSHA)", "floor: PING", "count / floor"):
        table.add_column(column, justify="right")
    for name, figures in measured.items():
        hit, ping = statistics.median(figures["hit"]), statistics.median(figures["ping"])
        table.add_row(name, f"{hit:.1f}", f"{ping:.1f}", f"{hit / ping:.2f}")
    console.print(table)

    databases = {}
    with tempfile.TemporaryDirectory() as folder:
        databases["SQLite"] = database_counter(f"sqlite:///{folder}/rate.db", args.database_calls, args.blocks)
    if args.postgres_url:
        url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_rate_bench")
        try:
            databases["PostgreSQL"] = database_counter(url, args.database_calls, args.blocks)
        finally:
            drop()
    table = Table(title=f"database counter: client CPU per call, µs (median of {args.blocks} blocks of {args.database_calls:,})")
    for column in ("database", "rate-limit count (upsert + previous window)", "floor: SELECT 1 in a write transaction", "count / floor"):
        table.add_column(column, justify="right")
    for name, (hit, floor) in databases.items():
        table.add_row(name, f"{hit:.1f}", f"{floor:.1f}", f"{hit / floor:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

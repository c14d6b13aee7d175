"""What counting one request against its rate limit costs an API process:
client CPU per `RedisWindows.hit` (one EVALSHA of the sliding-window script)
on the local Redis, with redis-py's C reply parser (hiredis, what the hub
installs) and with its pure-Python one, in blocks that alternate so both
see the same machine.

The floor, measured in the same run: a PING through the same client, the
least any Redis round trip costs it. hit/floor is the count's CPU over it.

    .venv/bin/python bench/rate_limits.py [--redis-url redis://127.0.0.1:6379/0] [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis._parsers import _HiredisParser, _RESP3Parser  # no public names: the classes redis-py picks itself, with and without hiredis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vaxhub.hub.security.rate_limits import RedisWindows  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per block")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks per parser")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

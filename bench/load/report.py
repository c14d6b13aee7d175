"""Reading locust's CSV files and the users' summaries, and the tables the
load test prints."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from bench.load.probes import Sample

WRITES = ("bundle", "vxu")
# The user kind whose traffic each operation is (token requests are overhead, not traffic).
KIND_OF = {"bundle": "SiteBundleUser", "vxu": "VxuSenderUser", "$everything": "HealthBookUser", "verify QR": "VerifierUser"}
# Share of its planned rate each kind must reach: locust's users wait for each
# answer, so a slow hub is offered less than the plan without any error showing.
DELIVERED_SHARE = 0.9


@dataclass(frozen=True)
class Operation:
    name: str
    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float
    server_errors: int = 0  # 5xx
    no_answer: int = 0  # connection refused or reset, timeout


def _number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def read_operations(csv_prefix: Path, statuses: Counter) -> list[Operation]:
    """One row per request name from `<prefix>_stats.csv`, plus 5xx and unanswered counts."""
    rows = []
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = row["Name"]
            errors = sum(c for (n, status), c in statuses.items() if (n == name or name == "Aggregated") and status >= 500)
            lost = sum(c for (n, status), c in statuses.items() if (n == name or name == "Aggregated") and status == 0)
            rows.append(Operation(
                name, int(_number(row["Request Count"])), int(_number(row["Failure Count"])), _number(row["Requests/s"]),
                _number(row["50%"]), _number(row["95%"]), _number(row["99%"]), errors, lost,
            ))
    return rows


def read_failures(csv_prefix: Path, limit: int = 8) -> list[tuple[str, str, int]]:
    path = Path(f"{csv_prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [(r["Name"], r["Error"], int(_number(r["Occurrences"]))) for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: -r[2])[:limit]


def first_slow_moment(csv_prefix: Path, started_epoch: float, names: tuple[str, ...], p95_ms: float, warm_up: float) -> float | None:
    """Seconds into the load (after `warm_up`: connections, tokens, the ramp) when
    a write's p95 over locust's rolling window first passed `p95_ms`."""
    path = Path(f"{csv_prefix}_stats_history.csv")
    if not path.exists():
        return None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            at = _number(row["Timestamp"]) - started_epoch
            if at >= warm_up and row["Name"] in names and _number(row.get("95%")) > p95_ms:
                return at
    return None


def p95_by_minute(csv_prefix: Path, started_epoch: float, names: tuple[str, ...]) -> dict[str, list[float]]:
    """For each operation of `names`, the median over each minute of the load
    of the p95 locust reports for its rolling window (a window every few
    seconds, so one slow moment does not stand for its minute)."""
    path = Path(f"{csv_prefix}_stats_history.csv")
    minutes: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                at, p95 = _number(row["Timestamp"]) - started_epoch, _number(row.get("95%"))
                if row["Name"] in minutes and at >= 0 and p95 > 0:
                    minutes[row["Name"]].setdefault(int(at // 60), []).append(p95)
    return {name: [statistics.median(by[m]) for m in sorted(by)] for name, by in minutes.items()}


@dataclass
class UserSummary:
    statuses: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)


def read_user_summaries(folder: Path) -> UserSummary:
    total = UserSummary()
    for path in folder.glob("summary-*.json"):
        data = json.loads(path.read_text())
        for name, status, count in data["statuses"]:
            total.statuses[(name, status)] += count
        total.counts.update(data["counts"])
    return total


@dataclass
class Acknowledged:
    immunizations: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)
    vxu_immunizations: set[tuple[str, str]] = field(default_factory=set)
    vxu_patients: set[tuple[str, str]] = field(default_factory=set)


def read_acknowledged(folder: Path) -> Acknowledged:
    acks = Acknowledged()
    for path in folder.glob("acks-*.txt"):
        for line in path.read_text().splitlines():
            tag, _, value = line.partition(" ")
            if tag == "imm":
                acks.immunizations.add(value)
            elif tag == "pat":
                acks.patients.add(value)
            elif tag in ("vxu-imm", "vxu-pat"):
                system, _, identifier = value.rpartition("|")
                (acks.vxu_immunizations if tag == "vxu-imm" else acks.vxu_patients).add((system, identifier))
    return acks


def operations_table(operations: list[Operation], title: str) -> Table:
    table = Table(title=title)
    for col in ("operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "failures", "5xx", "no answer"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for op in operations:
        style = "bold" if op.name == "Aggregated" else None
        table.add_row(op.name, f"{op.requests:,}", f"{op.per_second:,.1f}", f"{op.p50:,.0f}", f"{op.p95:,.0f}", f"{op.p99:,.0f}",
                      f"{op.failures:,}", f"{op.server_errors:,}", f"{op.no_answer:,}", style=style)
    return table


def timeline_table(samples: list[Sample], started: float, every: float) -> Table:
    """The load's course: stored Immunizations per second and the outboxes' depth and lag."""
    table = Table(title="course of the load (database samples)")
    for col in ("s", "Imm. stored/s", "verified/s", "verification queued", "oldest waiting s", "linked/s", "MPI link queued",
                "oldest waiting s", "goldens to rebuild", "PG active", "PG lock waits"):
        table.add_column(col, justify="right")
    shown: list[Sample] = []
    for s in samples:
        if not shown or s.at - shown[-1].at >= every - 0.01:
            shown.append(s)
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    previous = None
    for s in shown:
        def per_second(attr: str) -> str:
            if previous is None or s.at <= previous.at:
                return ""
            return f"{(getattr(s, attr) - getattr(previous, attr)) / (s.at - previous.at):,.0f}"
        table.add_row(f"{s.at - started:.0f}", per_second("immunizations"), per_second("verified"), f"{s.verification_queued:,}",
                      f"{s.verification_oldest_s:.0f}", per_second("linked"), f"{s.link_queued:,}", f"{s.link_oldest_s:.0f}",
                      f"{s.goldens_stale:,}", str(s.db_active), str(s.db_waiting_lock))
        previous = s
    return table


def peak_rate(samples: list[Sample], window: float = 10.0) -> float:
    """Highest Immunizations stored per second between two samples at least `window` seconds apart (the closest such pair)."""
    best = 0.0
    for i, s in enumerate(samples):
        for earlier in reversed(samples[:i]):
            if s.at - earlier.at >= window:
                best = max(best, (s.immunizations - earlier.immunizations) / (s.at - earlier.at))
                break
    return best


def rate_after(samples: list[Sample], since: float) -> float | None:
    """Immunizations stored per second from the first sample at or after
    `since` to the last one; None without two such samples. Beside the whole
    load's rate it shows what the ramp costs."""
    later = [s for s in samples if s.at >= since]
    if len(later) < 2 or later[-1].at <= later[0].at:
        return None
    return (later[-1].immunizations - later[0].immunizations) / (later[-1].at - later[0].at)


def first_behind(samples: list[Sample], started: float, lag_seconds: float) -> dict[str, float | None]:
    """Seconds into the load when each outbox's oldest waiting job was first older than `lag_seconds`."""
    found: dict[str, float | None] = {"verification outbox": None, "MPI link outbox": None}
    for s in samples:
        if found["verification outbox"] is None and s.verification_oldest_s > lag_seconds:
            found["verification outbox"] = s.at - started
        if found["MPI link outbox"] is None and s.link_oldest_s > lag_seconds:
            found["MPI link outbox"] = s.at - started
    return found


def _kind_of(name: str) -> str | None:
    return "HealthBookUser" if name.startswith("certificate ") else KIND_OF.get(name)


def delivered(operations: list[Operation], pacing: dict[str, float], users: dict[str, int], window: float,
              only: str | None, ramp: float = 0.0) -> dict[str, tuple[float, float]]:
    """Per user kind in the run: (requests/s sent over the load window, requests/s planned).

    Users start evenly over the first `ramp` seconds, so the plan over the
    window is short by half the ramp at the full pace: the planned rate is
    what the plan sends over this window, ramp included."""
    started_share = 1 - min(ramp, window) / (2 * window)
    planned = {kind: pacing[kind] * users[kind] * started_share for kind in pacing if only in (None, kind)}
    sent: Counter = Counter()
    for op in operations:
        kind = _kind_of(op.name)
        if kind in planned:
            sent[kind] += op.requests
    return {kind: (sent[kind] / window, rate) for kind, rate in planned.items()}

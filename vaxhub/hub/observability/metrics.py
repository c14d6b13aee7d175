"""The hub's Prometheus metrics, counted where things happen.

Counters and histograms live in prometheus_client's process registry. Under
gunicorn or `uvicorn --workers N`, set `PROMETHEUS_MULTIPROC_DIR` to an empty
directory (the same one for every worker, emptied at each start) before the
processes start: prometheus_client then keeps each process's values in files
there and `render` adds them up, so a scrape answered by any worker reports
the whole server. Figures that the database knows better than any process
(queue depth, circuit breakers) are read at scrape time (`collectors.py`).

Labels are bounded: routes are templates (`/fhir/{rtype}/{rid}`), never raw
paths; registry outcomes are a handful of kinds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from vaxhub.adapters.errors import RegistryError, RegistryFault, RegistryThrottled, RegistryTimeout, RegistryUnavailable

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "vaxhub_http_requests", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "vaxhub_http_request_duration_seconds", "Time to answer an HTTP request, by route template.", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REGISTRY_CALLS = Counter(
    "vaxhub_registry_calls", "Calls to national registries, by registry and outcome (ok, throttled, timeout, unavailable, fault, error).",
    ["registry", "outcome"],
)
REGISTRY_DURATION = Histogram(
    "vaxhub_registry_call_duration_seconds", "Duration of registry calls, by registry.", ["registry"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
API_QUEUE_WAIT = Histogram(
    "vaxhub_api_queue_wait_seconds",
    "Time a request waited in its API process for a place to be worked on (api_threads), by kind: sites' writes go first.",
    ["kind"], buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HL7_MESSAGES_PER_UNIT = Histogram(
    "vaxhub_hl7_messages_per_unit", "VXU messages stored in one transaction (those that queue in an API process are stored together).",
    buckets=(1, 2, 4, 8, 16, 32),
)
AUDIT_EVENTS_PER_COMMIT = Histogram(
    "vaxhub_audit_events_per_commit", "AuditEvents of reads and refusals committed together (those recorded at the same time in a process share one commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
AUDIT_READ_CHAIN_MOVES = Counter(
    "vaxhub_audit_read_chain_moves",
    "Times a process found another appending to its read audit chain and moved to another (PostgreSQL): a rate that keeps up means too few read chains.",
)
HL7_SET_ASIDE = Counter("vaxhub_hl7_messages_set_aside", "VXU messages taken out of a group after failing in it, and stored alone.")
CERTIFICATES_ISSUED = Counter("vaxhub_certificates_issued", "Vaccination certificates issued (each one a DCC, a SMART Health Card and a DDCC).")
LOGINS = Counter("vaxhub_logins", "Logins at the token endpoint and the portal, by method and outcome.", ["method", "outcome"])
RATE_LIMITED = Counter("vaxhub_rate_limited_requests", "Requests refused with 429 by the hub's rate limit.")
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "vaxhub_rate_limit_backend_errors", "Rate-limit checks that could not reach their backend (the request was let through)."
)

_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (RegistryThrottled, "throttled"),
    (RegistryTimeout, "timeout"),
    (RegistryUnavailable, "unavailable"),
    (RegistryFault, "fault"),
    (RegistryError, "error"),
)


def registry_outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    return next((label for kind, label in _OUTCOMES if isinstance(exc, kind)), "error")


def record_registry_call(registry: str, outcome: str, seconds: float) -> None:
    REGISTRY_CALLS.labels(registry, outcome).inc()
    REGISTRY_DURATION.labels(registry).observe(seconds)


@contextmanager
def observed_registry_call(registry: str) -> Iterator[None]:
    """Count and time one registry call; its exception, if any, goes on up unchanged."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        record_registry_call(registry, registry_outcome(exc), time.perf_counter() - started)
        raise
    record_registry_call(registry, "ok", time.perf_counter() - started)


def process_registry() -> CollectorRegistry:
    """This server's counters: every worker's (multi-process mode) or this process's."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return registry
    return REGISTRY


def render(*scrape_time: Collector) -> tuple[bytes, str]:
    """The exposition text of the process metrics and of collectors read at scrape time."""
    body = generate_latest(process_registry())
    if scrape_time:
        live = CollectorRegistry(auto_describe=False)
        for collector in scrape_time:
            live.register(collector)
        body += generate_latest(live)
    return body, CONTENT_TYPE_LATEST

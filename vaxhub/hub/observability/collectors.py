"""Metrics read from the database when Prometheus scrapes, so that every hub
process, whichever one is asked, reports the same figures.

- `vaxhub_outbox_depth{queue}`: jobs waiting or in flight (`verification`:
  registry checks, `mpi_link`: records to link);
  `vaxhub_outbox_oldest_age_seconds{queue}`: how long the oldest of them has
  waited; `vaxhub_outbox_dead{queue}`: dead letters and failed links.
- `vaxhub_registry_circuit_state{registry,state}`: 1 for the breaker's current
  state (closed, open, half_open), 0 for the others;
  `vaxhub_registry_circuit_opened_total{registry}`: times it opened.
- `vaxhub_metrics_database_up`: 0 when these could not be read (the scrape
  still answers with the process metrics).

Each scrape costs a few indexed aggregate queries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.outbox_tables import RegistryCircuitRow, VerificationJobRow
from vaxhub.hub.storage.store import utcnow

log = logging.getLogger(__name__)

JOB = VerificationJobRow.__table__
RECORD = MpiRecordRow.__table__
CIRCUIT = RegistryCircuitRow.__table__
CIRCUIT_STATES = ("closed", "open", "half_open")

# queue name -> (table, state column value waiting, dead state, enqueued column)
_QUEUES = {
    "verification": (JOB, "queued", "dead", JOB.c.enqueued_at),
    "mpi_link": (RECORD, "queued", "failed", RECORD.c.queued_at),
}


class DatabaseCollector:
    """A prometheus_client custom collector over the hub's database."""

    def __init__(self, engine: Engine, *, clock=utcnow):
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vaxhub_metrics_database_up", "1 when the database figures below could be read.")
        try:
            metrics = self._read()
        except SQLAlchemyError as exc:  # a scrape must still answer: Prometheus alerts on up == 0
            log.warning("metrics: the database could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> list[Metric]:
        depth = GaugeMetricFamily("vaxhub_outbox_depth", "Outbox jobs waiting or in flight.", labels=["queue"])
        age = GaugeMetricFamily("vaxhub_outbox_oldest_age_seconds", "Age of the oldest waiting outbox job (0 when none).", labels=["queue"])
        dead = GaugeMetricFamily("vaxhub_outbox_dead", "Outbox jobs given up on (dead letters, failed links).", labels=["queue"])
        state = GaugeMetricFamily("vaxhub_registry_circuit_state", "Circuit breaker of each registry: 1 for its current state.", labels=["registry", "state"])
        opened = CounterMetricFamily("vaxhub_registry_circuit_opened", "Times each registry's circuit breaker opened.", labels=["registry"])
        now: datetime = self.clock()
        with self.engine.connect() as conn:
            for name, (table, waiting, given_up, enqueued) in _QUEUES.items():
                count, oldest = conn.execute(
                    select(func.count(), func.min(enqueued)).select_from(table).where(table.c.state == waiting)
                ).one()
                depth.add_metric([name], count)
                age.add_metric([name], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
                dead.add_metric([name], conn.execute(select(func.count()).select_from(table).where(table.c.state == given_up)).scalar_one())
            for row in conn.execute(select(CIRCUIT.c.registry_name, CIRCUIT.c.state, CIRCUIT.c.opened_count)):
                for candidate in CIRCUIT_STATES:
                    state.add_metric([row.registry_name, candidate], 1 if row.state == candidate else 0)
                opened.add_metric([row.registry_name], row.opened_count or 0)
        return [depth, age, dead, state, opened]

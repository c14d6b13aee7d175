"""The worker behind `vaxhub worker`: drains the verification queue.

One loop thread claims jobs (never more than the free call slots can take,
so a claimed job starts at once and its lease only has to outlast one call),
hands them to a thread pool that calls the registry, and records the outcomes
in batches, one transaction per batch. Registry calls are I/O-bound and the
zeep client is synchronous, so threads give the concurrency; run several
worker processes to use more cores.

When the registry's WSDL offers `VerifyCitizens`, one call carries up to
`batch_size` jobs (and the social insurance cross-check of those jobs is one
call too): building, sending and parsing an envelope costs far more than one
claim in it. Claimed jobs are ordered by request id before they are cut into
batches, so a Bundle's Patients travel together, and a call sends
`X-Request-ID` when all its jobs share one (a call of mixed requests sends
none rather than a made-up one); each job's log lines keep its own id.

When a social insurance registry is configured, the same pool thread then
cross-checks the person there (`insurance.py`); that second call never
retries, reschedules or trips the breaker: its failure is recorded as `error`
beside the population result.

A failed call is rescheduled in the database with exponential backoff and
full jitter (or the registry's Retry-After when throttled); a job that keeps
failing, or fails in a way a retry cannot fix, becomes a dead letter. Nothing
about a job lives only in this process: a killed worker's jobs come back when
their leases expire.
"""

from __future__ import annotations

import logging
import os
import queue as queues
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from vaxhub.adapters.errors import RegistryError, RegistryThrottled
from vaxhub.adapters.population_soap import SoapPopulationRegistry
from vaxhub.adapters.ports import PopulationRegistry, SocialInsurance, VerificationResult
from vaxhub.hub.logging_setup import configure_logging
from vaxhub.hub.observability.metrics import observed_registry_call, record_registry_call
from vaxhub.hub.observability.request_context import bound_request_id, outgoing_headers
from vaxhub.hub.verification.backoff import backoff_delay
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.insurance import INSURANCE_REGISTRY_NAME, InsuranceCheck, build_social_insurance, cross_check_many
from vaxhub.hub.verification.transport import PooledSoapTransport
from vaxhub.hub.verification.queue import ClaimedJob, Completion, Reschedule, claim_jobs, queued_count, record
from vaxhub.settings import Settings

log = logging.getLogger(__name__)

REGISTRY_NAME = "population-registry"


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 32
    batch_size: int = 1  # jobs per registry call, where the registry verifies in batches
    lease_seconds: float = 60.0
    max_attempts: int = 10
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    poll_seconds: float = 0.5
    batch_window: float = 0.005  # gather outcomes this long to record them together
    # While calls are in flight, claim at most this often: jobs that arrive in
    # between go out in full batches. Claiming whenever a call came back sent
    # a steady trickle of new Patients a few per call, and each call's
    # envelope, HTTP exchange, claim and record cost the worker as much as the
    # jobs in it. A worker with no call in flight claims at once. 0 here (a
    # worker built in code claims as before); `vaxhub worker` takes
    # VAXHUB_VERIFICATION_CLAIM_EVERY, 0.25 s by default.
    claim_every: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> WorkerOptions:
        values = {
            "concurrency": settings.verification_concurrency,
            "batch_size": settings.verification_batch_size,
            "lease_seconds": settings.verification_lease_seconds,
            "max_attempts": settings.verification_max_attempts,
            "backoff_base": settings.verification_backoff_base,
            "backoff_cap": settings.verification_backoff_cap,
            "claim_every": settings.verification_claim_every,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_population_registry(settings: Settings, *, concurrency: int) -> SoapPopulationRegistry:
    """The SOAP client the worker threads share, with a connection pool as large
    as the worker's concurrency."""
    if not settings.population_registry_wsdl:
        raise ValueError("VAXHUB_POPULATION_REGISTRY_WSDL is not set: the worker has no registry to call")
    transport = PooledSoapTransport(pool_size=concurrency, timeout=settings.registry_timeout)
    return SoapPopulationRegistry(
        settings.population_registry_wsdl,
        address=settings.population_registry_address,
        timeout=settings.registry_timeout,
        transport=transport,
        user_id=settings.registry_user_id,
        http_headers=outgoing_headers,  # the job's request id, as X-Request-ID
    )


class VerificationWorker:
    def __init__(
        self,
        engine: Engine,
        registry: PopulationRegistry,
        *,
        options: WorkerOptions = WorkerOptions(),
        name: str | None = None,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        insurance: SocialInsurance | None = None,
    ):
        self.engine = engine
        self.registry = registry
        self.insurance = insurance
        self.options = options
        self.name = name or default_worker_name()
        self.breaker = breaker or CircuitBreaker(engine, REGISTRY_NAME, worker=self.name)
        self.rng = rng or random.Random()
        self.recorded = 0
        self.calls = 0
        self.batch_size = options.batch_size if getattr(registry, "verifies_in_batches", False) else 1

    # -- one call, on a pool thread

    def _verify(self, jobs: list[ClaimedJob], outcomes: queues.SimpleQueue) -> None:
        """Verify `jobs` in one call; put one list of (job, answer) for the call."""
        shared = {job.request_id for job in jobs}
        # The id of the request that queued the jobs, in the registry call, when they share one.
        with bound_request_id(shared.pop() if len(shared) == 1 else None):
            answers = self._call(jobs)
        for job, answer in zip(jobs, answers):
            with bound_request_id(job.request_id):  # each job's log lines carry its own request's id
                log.debug("verifying Patient/%s version %s, attempt %s", job.patient_id, job.patient_version, job.attempts)
                if isinstance(answer, Completion):
                    log.debug("Patient/%s version %s: %s", job.patient_id, job.patient_version, answer.result.status.value)
        outcomes.put(list(zip(jobs, answers)))

    def _call(self, jobs: list[ClaimedJob]) -> list[object]:
        try:
            with observed_registry_call(REGISTRY_NAME):
                if self.batch_size > 1:
                    results = self.registry.verify_many([job.claim for job in jobs])  # type: ignore[attr-defined]
                else:
                    results = [self.registry.verify(job.claim) for job in jobs]
        except RegistryThrottled as exc:
            return [exc] * len(jobs)
        except RegistryError as exc:
            self.breaker.record_failure(str(exc))
            return [exc] * len(jobs)
        except Exception as exc:  # a bug must not lose the jobs: they are dead-lettered with its message
            log.exception("verifying %s Patient(s) failed unexpectedly", len(jobs))
            return [exc] * len(jobs)
        self.breaker.record_success()
        checks = self._cross_check(jobs, results) if self.insurance is not None else [None] * len(jobs)
        return [Completion(job, result, check) for job, result, check in zip(jobs, results, checks)]

    def _cross_check(self, jobs: list[ClaimedJob], results: list[VerificationResult]) -> list[InsuranceCheck]:
        started = time.perf_counter()
        checks = cross_check_many(self.insurance, [(job.claim, result) for job, result in zip(jobs, results)])
        made = [check for check in checks if check.status != "skipped"]  # skipped ones made no call
        if made:
            record_registry_call(INSURANCE_REGISTRY_NAME, "error" if any(c.status == "error" for c in made) else "ok",
                                 time.perf_counter() - started)
        return checks

    def _decide(self, job: ClaimedJob, answer: object) -> Completion | Reschedule:
        if isinstance(answer, Completion):
            return answer
        message = f"{type(answer).__name__}: {answer}"
        retryable = isinstance(answer, RegistryError) and answer.retryable
        if not retryable or job.attempts >= self.options.max_attempts:
            return Reschedule(job, message, dead=True)
        delay = backoff_delay(job.attempts, base=self.options.backoff_base, cap=self.options.backoff_cap, rng=self.rng)
        if isinstance(answer, RegistryThrottled) and answer.retry_after:
            delay = max(delay, answer.retry_after + self.rng.uniform(0, self.options.backoff_base))
        return Reschedule(job, message, delay=delay)

    # -- the loop

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False,
            on_batch: Callable[[int], None] | None = None) -> int:
        """Work until `stop` is set (or, with `until_idle`, until no job is queued
        and none is in flight); returns how many results this worker recorded."""
        stop = stop or threading.Event()
        outcomes: queues.SimpleQueue = queues.SimpleQueue()
        opts = self.options
        calls = 0  # registry calls in flight
        claimed_at = float("-inf")

        def refill() -> int:
            nonlocal claimed_at
            now = time.monotonic()
            if stop.is_set() or (calls and now - claimed_at < opts.claim_every):
                return 0
            claimed_at = now
            return self._claim_into(pool, outcomes, opts.concurrency - calls, calls)

        with ThreadPoolExecutor(opts.concurrency, thread_name_prefix="verify") as pool:
            while True:
                # Refill the free call slots first, then record what came back: the
                # registry's latency, not our database round trips, should pace the calls.
                calls += refill()
                if calls == 0:
                    if stop.is_set() or (until_idle and queued_count(self.engine) == 0):
                        return self.recorded
                    stop.wait(opts.poll_seconds)
                    continue
                next_claim = claimed_at + opts.claim_every - time.monotonic()
                finished = self._gather(outcomes, wait=min(opts.poll_seconds, max(next_claim, 0.001)) if opts.claim_every else opts.poll_seconds)
                calls -= len(finished)
                if finished:
                    calls += refill()
                    decided = [self._decide(job, answer) for call in finished for job, answer in call]
                    done = record(self.engine, decided, worker=self.name, registry=REGISTRY_NAME)
                    self.recorded += done
                    if on_batch:
                        on_batch(done)

    def _claim_into(self, pool: ThreadPoolExecutor, outcomes: queues.SimpleQueue, free: int, in_flight: int) -> int:
        """Claim jobs for up to `free` calls and start the calls; returns how many calls."""
        if free <= 0 or not self.breaker.allows_calls():
            return 0
        if self.breaker.probing:  # while half-open only the probe goes out, with one job
            free, size = (0 if in_flight else 1), 1
        else:
            size = self.batch_size
        jobs = claim_jobs(self.engine, worker=self.name, limit=free * size, lease_seconds=self.options.lease_seconds) if free else []
        jobs.sort(key=lambda job: job.request_id or "")  # a request's jobs in the same call
        batches = [jobs[start:start + size] for start in range(0, len(jobs), size)]
        for batch in batches:
            pool.submit(self._verify, batch, outcomes)
        self.calls += len(batches)
        return len(batches)

    def _gather(self, outcomes: queues.SimpleQueue, *, wait: float) -> list[list[tuple[ClaimedJob, object]]]:
        """The calls that finished: the first within `wait`, then any within the batch window."""
        finished = []
        try:
            finished.append(outcomes.get(timeout=wait) if wait else outcomes.get_nowait())
        except queues.Empty:
            return finished
        deadline = time.monotonic() + self.options.batch_window
        while sum(len(call) for call in finished) < 500:
            remaining = deadline - time.monotonic()
            try:
                finished.append(outcomes.get(timeout=remaining) if remaining > 0 else outcomes.get_nowait())
            except queues.Empty:
                break
        return finished


def run_worker(settings: Settings, engine: Engine, *, stop: threading.Event | None = None,
               name: str | None = None, until_idle: bool = False, **overrides: object) -> int:
    """Build the registry clients and breaker from settings and run a worker."""
    configure_logging(settings.effective_log_format(), settings.log_level)
    options = WorkerOptions.from_settings(settings, **overrides)
    worker_name = name or default_worker_name()
    breaker = CircuitBreaker(
        engine, REGISTRY_NAME, worker=worker_name,
        cooldown=settings.registry_breaker_cooldown, failure_ratio=settings.registry_breaker_failure_ratio,
        window=settings.registry_breaker_window,
    )
    registry = build_population_registry(settings, concurrency=options.concurrency)
    insurance = build_social_insurance(settings)
    try:
        return VerificationWorker(engine, registry, options=options, name=worker_name, breaker=breaker,
                                  insurance=insurance).run(stop, until_idle=until_idle)
    finally:
        if insurance is not None:
            insurance.close()


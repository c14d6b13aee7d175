"""Identity verification of Patients against the population registry.

    Patient written ──(same transaction)──> verification_job (outbox)
                                                  │ claimed with a lease
                                                  ▼  (SKIP LOCKED on PostgreSQL)
    vaxhub worker ── threads ── PopulationRegistry.verify ── retries, backoff,
                                                  │           circuit breaker
                                                  ▼
    verification_job (state, latest result) + verification_result (history)

- `claims`: PersonClaim from a FHIR Patient, and the Patient's site.
- `enqueue`: the `WriteListener` that records or supersedes a job.
- `queue`: claiming, completing, retrying and dead-lettering jobs in the database.
- `backoff`, `circuit`: retry delays with jitter; the shared circuit breaker.
- `worker`, `transport`: the worker loop behind `vaxhub worker`; its pooled SOAP transport.
- `operator_view`: counts, mismatches, dead letters, requeueing, a Patient's status
  and its FHIR Provenance.
"""

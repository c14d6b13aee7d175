"""Operations: request ids, JSON logs (see `vaxhub.hub.logging_setup`), Prometheus metrics.

- `request_context`: the request id bound for the work in progress.
- `middleware`: binds each HTTP request's id and times it per route template.
- `metrics`: the process's counters and histograms (prometheus_client).
- `collectors`: figures read from the database at scrape time (outbox depth
  and age, circuit breakers), so every process reports the same truth.
- `endpoint`: `GET /metrics`, for Prometheus's bearer token or an operator
  with the `monitoring` role.

Kept free of imports at package level: the storage listeners import
`request_context`, and must not pull in the web stack with it.
"""

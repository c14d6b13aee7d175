"""The rate limit is one budget per caller across hub processes: two apps on
the same database (or Redis) refuse together, old windows are swept, and a
Redis outage lets requests through rather than failing them."""

from __future__ import annotations

import time
import uuid

import pytest

from sqlalchemy import func, select

from tests.integration.observability.conftest import bearer, hub_app, register, scrape, value
from vaxhub.hub.security.rate_limits import DatabaseWindows, RateLimiter, RedisWindows
from vaxhub.hub.storage.engine import make_engine
from vaxhub.hub.storage.rate_limit_tables import RateLimitWindowRow

BURST = 4


def _statuses_alternating(first, second, headers, count: int) -> list[int]:
    return [(first if n % 2 == 0 else second).get("/fhir/Patient", headers=headers).status_code for n in range(count)]


def _two_processes_share(engine, tmp_path, sms, burst: int = BURST, **limit) -> tuple[list[int], object]:
    """Two apps, each with its own engine on the same database, as two hub processes."""
    other_engine = make_engine(engine.url.render_as_string(hide_password=False), pool_size=2)
    client_id = f"busy-site-{uuid.uuid4().hex[:8]}"  # fresh counters in Redis, which outlives the test
    try:
        settings = dict(rate_limit_per_second=0.5, rate_limit_burst=burst, **limit)
        with hub_app(engine, tmp_path / "data", sms, **settings) as first, hub_app(other_engine, tmp_path / "data", sms, **settings) as second:
            headers = bearer(first, client_id, register(first, client_id, "system/Patient.rs"))
            statuses = _statuses_alternating(first, second, headers, burst + 2)
            refused = second.get("/fhir/Patient", headers=headers)
            return statuses, refused
    finally:
        other_engine.dispose()


def test_two_hub_processes_share_one_budget_in_the_database(engine, tmp_path, sms):
    statuses, refused = _two_processes_share(engine, tmp_path, sms, rate_limit_backend="database")
    # Per-process buckets would have let 2 × BURST through.
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"].startswith("application/fhir+json")
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_two_hub_processes_share_one_budget_in_redis(engine, tmp_path, sms, redis_url):
    statuses, refused = _two_processes_share(engine, tmp_path, sms, rate_limit_backend="redis", redis_url=redis_url)
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429, 429]
    assert refused.status_code == 429
    with engine.connect() as conn:  # the counters were in Redis, not in the database
        assert conn.execute(select(func.count()).select_from(RateLimitWindowRow)).scalar_one() == 0


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_two_hub_processes_spending_local_shares_still_hold_the_burst(engine, tmp_path, sms, redis_url, backend):
    # A burst of 40: each process may allow 2 of the caller's requests unasked while under 20.
    statuses, refused = _two_processes_share(engine, tmp_path, sms, burst=40, rate_limit_backend=backend, redis_url=redis_url)
    passed = statuses.count(200)
    assert 40 <= passed <= 40 + 2 * 2
    assert statuses[-1] == 429 and refused.status_code == 429


def test_refusals_are_counted_in_the_metrics(engine, tmp_path, sms):
    with hub_app(engine, tmp_path / "data", sms, rate_limit_per_second=0.5, rate_limit_burst=2) as client:
        headers = bearer(client, "eager-site", register(client, "eager-site", "system/Patient.rs"))
        before = value(scrape(client), "vaxhub_rate_limited_requests_total")
        statuses = [client.get("/fhir/Patient", headers=headers).status_code for _ in range(4)]
        after = value(scrape(client), "vaxhub_rate_limited_requests_total")
    assert statuses == [200, 200, 429, 429]
    assert after - before == 2


def test_windows_older_than_the_sliding_estimate_are_swept(engine):
    now = [1_000_000.0]
    windows = DatabaseWindows(engine, clock=lambda: now[0], sweep_seconds=0)
    limiter = RateLimiter(rate=1.0, burst=2, counter=windows, clock=lambda: now[0])
    limiter.take("site-a")
    limiter.take("site-b")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RateLimitWindowRow)).scalar_one() == 2
    now[0] += 2 * 2 + 1  # two windows of burst / rate = 2 s later, both rows are of no use
    limiter.take("site-c")
    with engine.connect() as conn:
        callers = conn.execute(select(RateLimitWindowRow.caller)).scalars().all()
    assert callers == ["site-c"]


def test_an_unreachable_redis_lets_requests_through_and_is_counted(engine, tmp_path, sms):
    # Port 1 on loopback refuses connections: the limiter cannot count, the API keeps answering.
    with hub_app(engine, tmp_path / "data", sms, rate_limit_backend="redis", redis_url="redis://127.0.0.1:1/0",
                 rate_limit_per_second=0.5, rate_limit_burst=1) as client:
        headers = bearer(client, "site-during-outage", register(client, "site-during-outage", "system/Patient.rs"))
        before = value(scrape(client), "vaxhub_rate_limit_backend_errors_total")
        statuses = [client.get("/fhir/Patient", headers=headers).status_code for _ in range(3)]
        after = value(scrape(client), "vaxhub_rate_limit_backend_errors_total")
    assert statuses == [200, 200, 200]
    assert after - before == 3


def test_redis_windows_count_across_clients(redis_url):
    import redis

    caller = f"caller-{uuid.uuid4().hex}"
    first = RedisWindows(redis.Redis.from_url(redis_url))
    second = RedisWindows(redis.Redis.from_url(redis_url))
    assert first.hit(caller, 10_000, 2000) == (1, 0)
    assert second.hit(caller, 10_000, 2000) == (2, 0)
    assert first.hit(caller, 12_000, 2000) == (1, 2)  # the next window sees this one as its previous
    ttl = first.client.pttl(f"{first.prefix}{caller}:12000")
    assert 0 < ttl <= 4000


def test_redis_counts_a_batch_of_callers_in_one_pipeline(redis_url):
    import redis

    first, second = f"caller-{uuid.uuid4().hex}", f"caller-{uuid.uuid4().hex}"
    windows = RedisWindows(redis.Redis.from_url(redis_url))
    assert windows.hit_many([(first, 10_000, 3), (second, 10_000, 2), (first, 12_000, 1)], 2000) == [(3, 0), (2, 0), (1, 3)]
    assert windows.hit(first, 12_000, 2000, 4) == (5, 3)
    assert 0 < windows.client.pttl(f"{windows.prefix}{second}:10000") <= 4000


def test_the_database_counts_a_batch_of_callers_in_one_transaction(engine):
    windows = DatabaseWindows(engine)
    first, second = f"caller-{uuid.uuid4().hex}", f"caller-{uuid.uuid4().hex}"
    start = int(time.time() * 1000) // 2000 * 2000  # windows still current: older ones are swept
    assert windows.hit_many([(first, start, 3), (second, start, 2), (first, start + 2000, 1)], 2000) == [(3, 0), (2, 0), (1, 3)]
    assert windows.hit(first, start + 2000, 2000, 4) == (5, 3)


def test_a_flood_of_forged_logins_is_throttled_before_it_fills_the_audit_trail(engine, tmp_path, sms):
    from tests.auth_helpers import ClientKey, assertion, token_form
    from tests.integration.observability.conftest import TOKEN_URL

    with hub_app(engine, tmp_path / "data", sms, rate_limit_per_second=0.5, rate_limit_burst=3) as client:
        register(client, "target-site", "system/Patient.rs")
        forged = [client.post("/auth/token", data=token_form(assertion("target-site", ClientKey.generate(), TOKEN_URL))) for _ in range(6)]
        auditor = {"authorization": f"Bearer {client.app.state.tokens.issue(_auditor(), 60)[0]}"}
        logins = client.get("/fhir/AuditEvent", params={"subtype": "login", "agent": "target-site"}, headers=auditor).json().get("entry", [])
    assert [r.status_code for r in forged] == [401, 401, 401, 429, 429, 429]
    assert forged[3].json()["error"] == "slow_down" and int(forged[3].headers["retry-after"]) >= 1
    assert len(logins) == 3  # the throttled attempts wrote nothing


def _auditor():
    from vaxhub.hub.security.principal import Principal
    from vaxhub.hub.security.scopes import parse_scopes

    return Principal("operator", "moh-auditor", client_id="moh-auditor", scopes=tuple(parse_scopes("system/AuditEvent.rs")), roles=("auditor",))


def test_an_unreachable_redis_is_asked_once_per_rest_not_once_per_request():
    import redis

    now = [100.0]
    client = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    attempts = []
    real_command = client.execute_command

    def counted_command(*args, **kwargs):  # noqa: ANN002, ANN003
        attempts.append(now[0])
        return real_command(*args, **kwargs)

    client.execute_command = counted_command
    windows = RedisWindows(client, rest_seconds=30.0, clock=lambda: now[0])
    limiter = RateLimiter(rate=1.0, burst=2, counter=windows)
    for _ in range(5):
        limiter.take("site-during-outage")  # let through, not counted
    now[0] += 31
    limiter.take("site-during-outage")
    assert attempts == [100.0, 131.0]
    assert windows.quick and not DatabaseWindows.quick

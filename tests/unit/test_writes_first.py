"""The API's priority gate: waiting writes are let in before waiting reads,
reads keep their floor, and a request that leaves while waiting or just
after being let in loses no place."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.own_loop import run_on_own_loop
from vaxhub.hub.api.writes_first import PriorityGate, WritesFirst, is_write


@pytest.mark.parametrize(
    ("method", "path", "write"),
    [
        ("POST", "/fhir", True),
        ("POST", "/fhir/Immunization", True),
        ("PUT", "/fhir/Patient/abc", True),
        ("DELETE", "/fhir/Patient/abc", True),
        ("POST", "/hl7v2", True),
        ("GET", "/fhir/Patient/abc", False),
        ("GET", "/fhir/Patient/abc/$everything", False),
        ("POST", "/fhir/Patient/_search", False),
        ("POST", "/fhir/Patient/$match", False),
        ("POST", "/fhir/$export", False),
        ("POST", "/certificates/verify", False),
        ("POST", "/auth/token", False),
        ("POST", "/fhirish", False),
    ],
)
def test_what_counts_as_a_write(method: str, path: str, write: bool) -> None:
    assert is_write(method, path) is write


async def _queued(gate: PriorityGate, write: bool, order: list[str], name: str) -> None:
    await gate.enter(write)
    order.append(name)


def test_a_waiting_write_goes_before_reads_that_came_first() -> None:
    async def scenario() -> list[str]:
        gate = PriorityGate(1, reads_floor=0)
        await gate.enter(False)  # the one place, held by a read
        order: list[str] = []
        tasks = [asyncio.create_task(_queued(gate, w, order, n)) for w, n in ((False, "read 1"), (False, "read 2"), (True, "write"))]
        await asyncio.sleep(0)
        assert gate.waiting == (1, 2)
        for leaving in (False, True, False):  # the first read, then each one let in, leaves in turn
            gate.leave(leaving)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert run_on_own_loop(scenario) == ["write", "read 1", "read 2"]


def test_reads_keep_their_floor_while_writes_keep_coming() -> None:
    async def scenario() -> tuple[int, int]:
        gate = PriorityGate(4, reads_floor=1)
        for _ in range(4):
            await gate.enter(True)  # every place held by writes
        order: list[str] = []
        reads = [asyncio.create_task(_queued(gate, False, order, "read")) for _ in range(3)]
        writes = [asyncio.create_task(_queued(gate, True, order, "write")) for _ in range(3)]
        await asyncio.sleep(0)
        gate.leave(True)  # a write ends: no read is in, so a read gets the place
        gate.leave(True)  # one read is in (its floor): the next write comes first
        await asyncio.sleep(0)
        for task in reads + writes:
            task.cancel()
        await asyncio.gather(*reads, *writes, return_exceptions=True)
        return gate.reads_busy, gate.busy

    assert run_on_own_loop(scenario) == (1, 4)


def test_a_request_that_leaves_while_waiting_or_once_let_in_loses_no_place() -> None:
    async def scenario() -> tuple[int, tuple[int, int]]:
        gate = PriorityGate(1, reads_floor=0)
        await gate.enter(True)
        gone = asyncio.create_task(gate.enter(False))
        let_in_then_gone = asyncio.create_task(gate.enter(True))
        await asyncio.sleep(0)
        gone.cancel()  # cancelled while waiting: dropped from the queue
        await asyncio.gather(gone, return_exceptions=True)
        gate.leave(True)  # the place goes to the waiting write ...
        let_in_then_gone.cancel()  # ... which is cancelled before it runs: it hands the place back
        await asyncio.gather(let_in_then_gone, return_exceptions=True)
        await asyncio.wait_for(gate.enter(False), 1)  # the place is free again
        return gate.busy, gate.waiting

    assert run_on_own_loop(scenario) == (1, (0, 0))


def test_the_middleware_answers_a_queued_write_before_queued_reads() -> None:
    """One place, held by a slow read; two reads and then a write queue; the write is answered first."""

    async def scenario() -> list[str]:
        release = asyncio.Event()
        answered: list[str] = []

        async def slow(request):  # type: ignore[no-untyped-def]
            await release.wait()
            return PlainTextResponse("slow")

        async def read(request):  # type: ignore[no-untyped-def]
            answered.append(f"read {request.query_params['n']}")
            return PlainTextResponse("read")

        async def write(request):  # type: ignore[no-untyped-def]
            answered.append("write")
            return PlainTextResponse("stored", status_code=201)

        async def health(request):  # type: ignore[no-untyped-def]
            return PlainTextResponse("ok")

        app = WritesFirst(
            Starlette(routes=[Route("/slow", slow), Route("/fhir/Patient", read), Route("/fhir", write, methods=["POST"]),
                              Route("/healthz", health)]),
            places=1, reads_floor=0,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            held = asyncio.create_task(client.get("/slow"))
            while app.gate.busy == 0:
                await asyncio.sleep(0.001)
            reads = [asyncio.create_task(client.get("/fhir/Patient", params={"n": n})) for n in (1, 2)]
            while app.gate.waiting != (0, 2):
                await asyncio.sleep(0.001)
            stored = asyncio.create_task(client.post("/fhir", content=b"{}"))
            while app.gate.waiting != (1, 2):
                await asyncio.sleep(0.001)
            assert (await asyncio.wait_for(client.get("/healthz"), 1)).text == "ok"  # probes never wait
            release.set()
            responses = await asyncio.gather(held, *reads, stored)
        assert [r.status_code for r in responses] == [200, 200, 200, 201]
        assert app.gate.busy == 0
        return answered

    assert run_on_own_loop(scenario) == ["write", "read 1", "read 2"]


def test_a_prefix_the_hub_is_served_under_does_not_hide_a_write() -> None:
    seen: list[tuple[int, int]] = []

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append((gated.gate.busy, gated.gate.reads_busy))

    gated = WritesFirst(inner, places=2)

    async def scenario() -> None:
        for path in ("/api/fhir", "/api/fhir/Patient", "/api/healthz"):
            method = "POST" if path != "/api/fhir/Patient" else "GET"
            await gated({"type": "http", "method": method, "path": path, "root_path": "/api"}, None, None)

    run_on_own_loop(scenario)
    assert seen == [(1, 0), (1, 1), (0, 0)]  # a write, a read, a probe that passed no gate

"""The hub's routes stand in the app's own route list (`flat_routes`), so a
request is matched once, route by route; and a router's routes keep what
their router gave them (prefix, router-level dependencies) and its start-up
handlers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from vaxhub.hub.api.flat_routes import add_routes


def test_the_hub_has_no_included_router_left(hub):
    app, raw, _login = hub
    others = [route for route in app.routes if not isinstance(route, (APIRoute, Route, Mount))]
    assert others == [], {type(route).__name__ for route in others}
    assert raw.get("/healthz").status_code == 200
    assert raw.get("/fhir/Patient/abc").status_code == 401  # routed to the FHIR read, refused by its dependency
    assert raw.get("/no/such/path").status_code == 404
    # The API description still lists the routers' operations, with their routers' tags.
    paths = raw.get("/openapi.json").json()["paths"]
    assert paths["/hl7v2"]["post"]["tags"] == ["HL7 v2"]
    assert paths["/fhir/Patient/{res_id}/$everything"]["get"]["tags"] == ["FHIR R4"]
    assert "/certificates/verify" in paths and "/fhir/AuditEvent" in paths


def test_a_flattened_router_keeps_its_prefix_dependencies_and_handlers():
    seen: list[str] = []

    def stamp(request: Request) -> None:
        seen.append(request.url.path)

    router = APIRouter(prefix="/things", dependencies=[Depends(stamp)])

    @router.get("/{name}")
    def thing(name: str) -> dict:
        return {"name": name}

    @router.post("/{name}")
    def make(name: str) -> dict:
        return {"made": name}

    started: list[bool] = []
    router.on_startup.append(lambda: started.append(True))
    app = FastAPI()
    add_routes(app, router)
    assert not any(type(route).__name__ == "_IncludedRouter" for route in app.routes)
    with TestClient(app) as client:
        assert started == [True]
        assert client.get("/things/a").json() == {"name": "a"}
        assert client.post("/things/b").json() == {"made": "b"}
        assert client.put("/things/c").status_code == 405
        assert client.get("/a").status_code == 404
    assert seen == ["/things/a", "/things/b"]

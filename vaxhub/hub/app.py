"""The composition root: builds the FastAPI app from Settings.

Tests and the CLI call `build_app(settings)`; nothing is created at import time.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from vaxhub import __version__
from vaxhub.hub.api import metadata, resources
from vaxhub.hub.api.outcomes import install_handlers
from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings, load_settings


def build_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or load_settings()
    engine = engine or make_engine(settings.database_url, pool_size=settings.db_pool_size, echo=settings.sql_echo)
    if settings.auto_migrate:
        upgrade(engine)
    store = FhirStore(engine)
    released = datetime.now(timezone.utc).date().isoformat()

    app = FastAPI(
        title="vaxhub",
        version=__version__,
        description="FHIR R4 hub for vaccination records: Patient, Immunization, Organization, Location, Practitioner.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.store = store
    install_handlers(app)
    app.include_router(metadata.build_router(settings, released))
    app.include_router(resources.build_router(store, settings))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app

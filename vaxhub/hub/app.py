"""The composition root: builds the FastAPI app from Settings.

Tests and the CLI call `build_app(settings)`; nothing is created at import time.
"""

from __future__ import annotations

from datetime import datetime, timezone

import anyio.to_thread
import orjson
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from vaxhub import __version__
from vaxhub.adapters.sms import ConsoleSms, SmsSender
from vaxhub.hub.api import audit_events, auth, metadata, resources, verification
from vaxhub.hub.api import certificates, hl7v2, imports
from vaxhub.hub.api import mpi as mpi_api, patient_match
from vaxhub.hub.api import bulk_export as bulk_export_api
from vaxhub.hub.bulk_export.runner import BackgroundExporter, ExportOptions, ExportRunner, export_jobs
from vaxhub.hub.api import reminders as reminders_api
from vaxhub.hub.api import health
from vaxhub.hub.api import corrections as corrections_api
from vaxhub.hub.healthbook.correction_queue import CorrectionQueue
from vaxhub.hub.hub_store import hub_store
from vaxhub.hub.api.flat_routes import add_routes
from vaxhub.hub.api.access import AuditMiddleware
from vaxhub.hub.api.outcomes import install_handlers
from vaxhub.hub.api.url_guard import RefuseControlCharacters
from vaxhub.hub.api.writes_first import WritesFirst
from vaxhub.hub.certificates.service import CertificateService
from vaxhub.hub.logging_setup import configure_logging
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.observability import endpoint as metrics_endpoint
from vaxhub.hub.observability.middleware import RequestObservation
from vaxhub.hub.security.citizen_login import ExternalIdentityProvider, OtpLogin
from vaxhub.hub.security.clients import ClientRegistry
from vaxhub.hub.security.rate_limits import build_rate_limiter
from vaxhub.hub.security.tokens import TokenService, load_or_create_signing_key
from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.hub.web import install_pages
from vaxhub.settings import Settings, load_settings


def token_service(settings: Settings) -> TokenService:
    key = load_or_create_signing_key(settings.signing_key_path(), create=settings.environment == "development")
    return TokenService(key, issuer=settings.auth_issuer, audience=settings.auth_audience, leeway=settings.clock_skew_seconds)


def national_eid(settings: Settings) -> ExternalIdentityProvider | None:
    if not settings.eid_issuer:
        return None
    jwks = orjson.loads(settings.eid_jwks_file.read_bytes()) if settings.eid_jwks_file else None
    return ExternalIdentityProvider(
        issuer=settings.eid_issuer,
        audience=settings.eid_audience or settings.auth_audience,
        jwks=jwks,
        jwks_url=settings.eid_jwks_url,
        id_claim=settings.eid_id_claim,
        leeway=settings.clock_skew_seconds,
    )


def build_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    sms: SmsSender | None = None,
    eid: ExternalIdentityProvider | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    engine = engine or make_engine(
        settings.database_url, pool_size=settings.db_pool_size, echo=settings.sql_echo, statement_timeout_ms=settings.statement_timeout_ms
    )
    if settings.auto_migrate:
        upgrade(engine)
    store, trail = hub_store(engine, settings)
    mpi = MasterPatientIndex(engine, trail=trail)
    tokens = token_service(settings)
    clients = ClientRegistry(engine, leeway=settings.clock_skew_seconds)
    otp = OtpLogin(engine, store, sms or ConsoleSms(), secret=tokens.key.private_numbers().private_value.to_bytes(32, "big"))
    released = datetime.now(timezone.utc).date().isoformat()
    configure_logging(settings.effective_log_format(), settings.log_level)

    app = FastAPI(
        title="vaxhub",
        version=__version__,
        description="FHIR R4 hub for vaccination records: Patient, Immunization, Organization, Location, Practitioner.",
        # The hub's metrics are Prometheus and its logs JSON lines (vaxhub.hub.observability);
        # FastAPI's own OpenTelemetry bridge would otherwise look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.store = store
    app.state.mpi = mpi
    app.state.tokens = tokens
    app.state.clients = clients
    app.state.audit = trail
    app.state.rate_limiter = build_rate_limiter(
        settings.rate_limit_backend, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst, engine=engine, redis_url=settings.redis_url,
        local_share=settings.rate_limit_local_share,
    )
    app.router.on_shutdown.append(app.state.rate_limiter.close)  # the share's last counts, before the process ends
    app.router.on_startup.append(lambda: _limit_request_threads(settings.api_threads))
    install_handlers(app)
    app.add_middleware(RefuseControlCharacters)  # inside the audit middleware: refusals are audited
    app.add_middleware(AuditMiddleware, trail=trail)
    if settings.writes_first:  # inside the observation: a request's time and metrics include its wait for a place
        app.add_middleware(WritesFirst, places=settings.api_threads)
    app.add_middleware(RequestObservation)  # added last, so outermost: the request id is bound for the audit too
    # FastAPI tries the routes in order, each a regular expression (the
    # routers' routes are put in the app's own list, `flat_routes`): the
    # routes the national load sends most (HL7 v2, certificate downloads and
    # checks, FHIR) come first. Within /fhir the fixed paths
    # stay before the generic resource routes, which would read `$export`,
    # `$match`, `metadata` or `AuditEvent`'s search as a type or an id.
    add_routes(app, hl7v2.build_router(store, settings))
    app.state.certificates = CertificateService(engine, store, trail, settings)
    add_routes(app, certificates.build_public_router(app.state.certificates))  # before `/certificates/{uvci}`
    add_routes(app, certificates.build_router(app.state.certificates, store, trail))
    add_routes(app, metadata.build_router(settings, released))
    add_routes(app, audit_events.build_router(trail, settings))
    add_routes(app, patient_match.build_router(mpi, settings))
    exports = export_jobs(engine, settings)
    exporter = BackgroundExporter(ExportRunner(store, exports, ExportOptions.from_settings(settings))) if settings.export_in_process else None
    if exporter is not None:  # the API process runs export jobs too (`vaxhub export work` needs no API)
        app.router.on_startup.append(exporter.start)
        app.router.on_shutdown.append(exporter.stop)
    add_routes(app, bulk_export_api.build_router(store, exports, settings, exporter))
    add_routes(app, resources.build_router(store, settings, trail))
    add_routes(app, auth.build_router(settings=settings, tokens=tokens, clients=clients, otp=otp, eid=eid or national_eid(settings), store=store, trail=trail))
    add_routes(app, health.build_router(engine))  # /healthz, /readyz: public, for load balancers
    add_routes(app, metrics_endpoint.build_router(settings, engine, tokens))  # GET /metrics
    add_routes(app, imports.build_router(store, settings))
    add_routes(app, verification.build_router(engine, store))
    add_routes(app, mpi_api.build_router(mpi))
    add_routes(app, reminders_api.build_router(engine))  # health book: dose reminders
    add_routes(app, corrections_api.build_router(CorrectionQueue(store, trail, app.state.certificates)))  # sites' correction queue
    install_pages(app, otp=otp)  # citizen portal, verifier page, operator dashboard (vaxhub.hub.web)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


def _limit_request_threads(threads: int) -> None:
    """Synchronous routes run on anyio's thread pool; its size is how many requests
    compete for this process's GIL and database connections at once."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads

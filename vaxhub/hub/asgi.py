"""ASGI entry point for uvicorn/gunicorn workers: `vaxhub.hub.asgi:create_app` (a factory)."""

from __future__ import annotations

from fastapi import FastAPI

from vaxhub.certificates import pdf_fonts
from vaxhub.hub.app import build_app
from vaxhub.hub.gc_tuning import settle_heap
from vaxhub.settings import load_settings


def create_app() -> FastAPI:
    settings = load_settings()
    # The parent process migrated already; workers must not race on DDL.
    app = build_app(settings.model_copy(update={"auto_migrate": False}))
    # Certificate PDFs are drawn by a niced child process, which cuts their
    # fonts as it starts; drawn here instead, the fonts are cut before the
    # first request, not by it (in the load test's first minute that was a
    # second of CPU per process, spent while every citizen's first download
    # arrived), and before the heap settles, so the garbage is collected.
    pdfs = app.state.certificates.pdfs
    if settings.pdf_process:
        app.router.on_startup.append(pdfs.start)
        app.router.on_shutdown.append(pdfs.stop)
    else:
        app.router.on_startup.append(pdf_fonts.prepare)
    # Only a serving process settles its heap: an app built in a test or a
    # script shares its process with other work whose garbage would be frozen.
    app.router.on_startup.append(lambda: settle_heap(settings.gc_thresholds))
    return app

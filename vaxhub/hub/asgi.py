"""ASGI entry point for uvicorn/gunicorn workers: `vaxhub.hub.asgi:create_app` (a factory)."""

from __future__ import annotations

from fastapi import FastAPI

from vaxhub.hub.app import build_app
from vaxhub.hub.gc_tuning import settle_heap
from vaxhub.settings import load_settings


def create_app() -> FastAPI:
    settings = load_settings()
    # The parent process migrated already; workers must not race on DDL.
    app = build_app(settings.model_copy(update={"auto_migrate": False}))
    # Only a serving process settles its heap: an app built in a test or a
    # script shares its process with other work whose garbage would be frozen.
    app.router.on_startup.append(lambda: settle_heap(settings.gc_thresholds))
    return app

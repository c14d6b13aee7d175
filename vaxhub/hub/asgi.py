"""ASGI entry point for uvicorn/gunicorn workers: `vaxhub.hub.asgi:create_app` (a factory)."""

from __future__ import annotations

from fastapi import FastAPI

from vaxhub.hub.app import build_app
from vaxhub.settings import load_settings


def create_app() -> FastAPI:
    settings = load_settings()
    # The parent process migrated already; workers must not race on DDL.
    return build_app(settings.model_copy(update={"auto_migrate": False}))

"""A router's routes put in the app's own route list, instead of
`app.include_router`.

Recent FastAPI keeps an included router as one entry of the app's list: to
route a request it asks each included router in turn, and the one that
matches walks its routes a second time to handle it, counting its routes'
versions on every ask. With the hub's twenty routers that cost 15–90 µs of
CPU per request of the load's kinds, a fifth to two fifths of what a request
costs up to its endpoint's first dependency (`bench/routing.py`). A route made
by an `APIRouter` already carries its router's prefix, tags and dependencies,
so, where nothing is added at inclusion, it can stand in the app's list as
it is and be matched once, by one regular expression each.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """What `app.include_router(router)` with no arguments does, flattened."""
    if router.on_startup or router.on_shutdown:
        app.router.on_startup.extend(router.on_startup)
        app.router.on_shutdown.extend(router.on_shutdown)
    app.router.routes.extend(router.routes)

"""Run an ASGI app with uvicorn in a background thread on a loopback port.

For tests and the demo: `with serve_in_background(app) as server:` gives
`server.url` (e.g. "http://127.0.0.1:43817"; port 0, the default, lets the
OS choose a free port) once the server accepts
connections, and stops it cleanly on exit. Requests still sleeping (a
simulated hang) are cancelled after `graceful_timeout` seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn


class BackgroundServer:
    """A uvicorn server bound to `host`:`port`, in a daemon thread."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, graceful_timeout: float = 1.0):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=graceful_timeout,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True,
            name=f"uvicorn-{self.port}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_in_background(
    app, *, host: str = "127.0.0.1", port: int = 0, graceful_timeout: float = 1.0
) -> BackgroundServer:
    """Start `app` on `host`:`port` (a free port when 0) and return the running server."""
    return BackgroundServer(app, host=host, port=port, graceful_timeout=graceful_timeout).start()

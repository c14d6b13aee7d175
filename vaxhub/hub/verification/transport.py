"""A zeep transport for many concurrent calls from one worker process.

zeep's default transport posts through `requests`, whose per-request
preparation (hooks, cookie jar, environment merging) costs about as much CPU as
zeep's own XML work; with hundreds of calls a second in flight that decides
the throughput of a worker. This transport posts SOAP envelopes straight
through a urllib3 connection pool sized to the worker's concurrency, and still
loads the WSDL through requests. urllib3 failures are raised as the requests
exceptions the SOAP adapter already translates (`requests.Timeout`,
`requests.ConnectionError`), so registry errors keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
import urllib3
import zeep
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError as Urllib3Timeout


@dataclass(frozen=True)
class _Reply:
    """The parts of a response zeep's SOAP binding reads."""

    status_code: int
    content: bytes
    headers: urllib3.HTTPHeaderDict
    encoding: str | None = None


class PooledSoapTransport(zeep.Transport):
    def __init__(self, *, pool_size: int, timeout: float, load_timeout: float = 30.0):
        session = requests.Session()
        session.trust_env = False  # no proxy lookup in the environment on each request
        super().__init__(session=session, timeout=load_timeout, operation_timeout=timeout)
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=False, retries=False)
        self._timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)

    def post(self, address, message, headers):  # noqa: ANN001 - zeep's signature
        try:
            response = self._pool.request(
                "POST", address, body=message, headers=headers, timeout=self._timeout, preload_content=True,
            )
        except NewConnectionError as exc:  # urllib3 makes it a timeout subclass; it is a refusal
            raise requests.ConnectionError(str(exc)) from exc
        except Urllib3Timeout as exc:
            raise requests.Timeout(str(exc)) from exc
        except HTTPError as exc:
            raise requests.ConnectionError(str(exc)) from exc
        return _Reply(response.status, response.data, response.headers)

"""The hub served for real (uvicorn on a free loopback port, in a thread of
this process so the tests can read the SMS it sends), with people, doses and
verified identities, for the browser journeys."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from tests.conftest import running_hub
from tests.e2e.browser import browser, page  # noqa: F401  (fixtures)
from tests.web_pages import AN, DUC, HOA, HUONG, SITE, WebHub
from vaxhub.adapters.sms import RecordingSms
from vaxhub.hub.storage.engine import make_engine, upgrade


@dataclass
class LiveHub:
    root: str
    web: WebHub
    sms: RecordingSms
    an: str

    def url(self, path: str) -> str:
        return self.root + path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveHub]:
    folder = tmp_path_factory.mktemp("pages-hub")
    engine = make_engine(f"sqlite:///{folder / 'hub.db'}")
    upgrade(engine)
    sms = RecordingSms()
    with running_hub(engine, folder / "data", sms) as (app, raw, login):
        site = login(f"site-{SITE}", "system/Patient.cruds system/Immunization.cruds system/Organization.cruds", site=SITE)
        web = WebHub(app, raw, login, site)
        org = web.site_organization()
        an = web.person(AN, [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")],
                        phone="0912345678", province="Hà Nội", site_org=org)
        web.person(HOA, [("208", "2021-08-02T15:00:00+07:00")], province="Hà Nội", birth_date="1960", site_org=org)
        web.person(HUONG, [("207", "2021-08-02"), ("207", "2021-08-23"), ("207", "2022-01-10")], province="Hồ Chí Minh")
        web.person(DUC, [("210", "2021-09-01")], province="Hải Phòng")
        web.verify_identities()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, name="hub-under-test", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the hub did not start"
        try:
            yield LiveHub(f"http://127.0.0.1:{port}", web, sms, an)
        finally:
            server.should_exit = True
            thread.join(15)
    engine.dispose()

"""The certificate PDF process: a niced child of the API process that draws
PDFs, is replaced when it dies, and ends with its parent however it ends."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader

from vaxhub.certificates.pdf import CertificateDocument, PdfDose, render_certificate_pdf
from vaxhub.certificates.pdf_process import PdfProcess

ROOT = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2022, 1, 10, 8, tzinfo=dt.timezone.utc)


@pytest.fixture
def document() -> CertificateDocument:
    return CertificateDocument(
        full_name="Trần Thị Hương", name_icao="TRAN<THI<HUONG", birth_date="1985-11-02", identifier="079185001234",
        doses=[PdfDose(1, dt.date(2021, 8, 2), "Comirnaty (Pfizer-BioNTech)", "FK5618", "Trạm y tế phường Bến Nghé")],
        complete=False, certificate_id="URN:UVCI:01:VN:TEST1#Q", issuer="Bộ Y tế / Ministry of Health of Viet Nam",
        issued_at=NOW, expires_at=NOW + dt.timedelta(days=365), qr_text="HC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3",
    )


def _text(pdf: bytes) -> str:
    return PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _with_started(work, pdfs: PdfProcess | None = None):
    """`work(pdfs)` in an event loop of its own, `pdfs` (by default a new
    PdfProcess) started before and stopped after. The loop runs in a thread
    of its own: the browser tests' Playwright keeps a loop running in the
    main thread of the worker that ran them."""
    async def scenario():
        process = pdfs or PdfProcess()
        await process.start()
        try:
            return await work(process)
        finally:
            await process.stop()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


def test_a_started_process_draws_in_a_child_niced_below_its_parent(document):
    async def work(pdfs: PdfProcess) -> dict:
        pid = pdfs.pid
        pdf = await pdfs.draw(document)
        return {"pid": pid, "nice": os.getpriority(os.PRIO_PROCESS, pid), "drawn": pdfs.drawn_in_child, "text": _text(pdf)}

    seen = _with_started(work, PdfProcess(nice=5))
    seen["ended"] = _ended(seen["pid"])
    assert seen["pid"] not in (None, os.getpid())
    assert seen["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    assert seen["drawn"] == 1
    assert "Trần Thị Hương" in seen["text"] and "Trạm y tế phường Bến Nghé" in seen["text"]
    assert seen["ended"], "stop() must end the child"


def test_several_requests_at_once_each_get_their_own_pdf(document):
    names = ["Nguyễn Văn An", "Lê Thị Hoa", "Phạm Minh Đức", "Võ Thị Sáu"]

    async def work(pdfs: PdfProcess) -> list[str]:
        drawn = await asyncio.gather(*(pdfs.draw(replace(document, full_name=n)) for n in names))
        return [_text(pdf) for pdf in drawn]

    for name, text in zip(names, _with_started(work), strict=True):
        assert name in text and all(other not in text for other in names if other != name)


def test_a_child_that_died_is_replaced_by_the_next_pdf(document):
    async def work(pdfs: PdfProcess) -> dict:
        first = pdfs.pid
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.2)
        pdf = await pdfs.draw(document)
        return {"first": first, "second": pdfs.pid, "restarts": pdfs.restarts, "drawn": pdfs.drawn_in_child, "text": _text(pdf)}

    seen = _with_started(work)
    assert "Trần Thị Hương" in seen["text"]
    assert seen["second"] not in (None, seen["first"])
    assert seen["restarts"] == 1 and seen["drawn"] == 1


def test_a_child_that_dies_drawing_costs_no_pdf(document):
    async def work(pdfs: PdfProcess) -> dict:
        first = pdfs.pid
        os.kill(first, signal.SIGSTOP)  # holds the document it is sent, unanswered …
        drawing = asyncio.create_task(pdfs.draw(document))
        await asyncio.sleep(0.2)
        assert not drawing.done()
        os.kill(first, signal.SIGKILL)  # … and dies with it
        pdf = await drawing  # drawn in this process instead
        after = await pdfs.draw(replace(document, full_name="Lê Thị Hoa"))  # by a new child
        return {"first": first, "second": pdfs.pid, "restarts": pdfs.restarts, "drawn": pdfs.drawn_in_child,
                "texts": [_text(pdf), _text(after)]}

    seen = _with_started(work)
    assert "Trần Thị Hương" in seen["texts"][0] and "Lê Thị Hoa" in seen["texts"][1]
    assert seen["second"] not in (None, seen["first"])
    assert seen["restarts"] == 1 and seen["drawn"] == 1


def test_a_child_that_cannot_start_is_given_up_after_a_few_tries(document):
    """A child that ends at once (as a broken install's would) costs no PDF,
    and after `GIVE_UP_AFTER` deaths in a row the API process stops starting new ones."""
    async def work(pdfs: PdfProcess) -> dict:
        texts = [_text(await pdfs.draw(document)) for _ in range(PdfProcess.GIVE_UP_AFTER + 2)]
        return {"texts": texts, "restarts": pdfs.restarts, "given_up": pdfs.given_up, "drawn": pdfs.drawn_in_child}

    seen = _with_started(work, PdfProcess(command=(sys.executable, "-c", "pass")))
    assert all("Trần Thị Hương" in text for text in seen["texts"])
    assert seen["given_up"] and seen["drawn"] == 0
    assert seen["restarts"] == PdfProcess.GIVE_UP_AFTER - 1  # the first child, then one per death until giving up


def test_a_document_that_cannot_be_drawn_raises_and_the_child_goes_on(document):
    broken = replace(document, qr_png=b"not an image")
    with pytest.raises(Exception) as drawn_here:  # noqa: PT011 - whatever fpdf2 raises for it, the child's path must raise too
        render_certificate_pdf(broken)

    async def work(pdfs: PdfProcess) -> dict:
        pid = pdfs.pid
        with pytest.raises(drawn_here.type):  # the request fails as it would without a child
            await pdfs.draw(broken)
        pdf = await pdfs.draw(document)
        return {"same_child": pdfs.pid == pid, "restarts": pdfs.restarts, "text": _text(pdf)}

    seen = _with_started(work)
    assert seen["same_child"] and seen["restarts"] == 0
    assert "Trần Thị Hương" in seen["text"]


def test_the_child_ends_when_its_api_process_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import asyncio, json
        from vaxhub.certificates.pdf_process import PdfProcess

        async def main():
            pdfs = PdfProcess()
            await pdfs.start()
            print(json.dumps({"child": pdfs.pid}), flush=True)
            await asyncio.sleep(120)

        asyncio.run(main())
    """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = json.loads(parent.stdout.readline())["child"]
        assert not _ended(child)
        parent.send_signal(signal.SIGKILL)  # no shutdown code runs
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _ended(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(child), "the PDF process outlived its API process"
    finally:
        parent.kill()
        parent.wait()

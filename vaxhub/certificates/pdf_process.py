"""Certificate PDFs drawn in a child process at a lower CPU priority.

fpdf2 is pure Python: a certificate PDF takes about 40 ms of CPU, all of it
holding the interpreter's lock. Drawn in an API process, a rush of first
downloads (a travel rule changes and a province's citizens open their
certificates) takes the cores and the lock from the sites recording doses.
A served API process therefore hands its PDFs to a child of its own, niced
(`VAXHUB_PDF_NICE`): when the cores are short the kernel runs the processes
recording doses first. The request waits in the event loop, not on one of
the process's request threads, so waiting PDFs do not hold back writes; the
child also keeps fpdf2's and fontTools' garbage (thousands of objects in
cycles per PDF) out of the API's collector, and cuts the fonts once when it
starts (`pdf_fonts.prepare`).

The child is `python -m vaxhub.certificates.pdf_process`: documents
arrive on its stdin and PDFs leave on its stdout, each a pickle after its
length (4 bytes, big-endian), one at a time. It ends when its stdin closes:
when the API process stops it or dies, however it dies. When the child dies
the PDF it was drawing is drawn in the API process, on a request thread, and
the next PDF starts a new child; a document the child fails to draw is drawn
there too, so the request gets the error it would get without a child.

A plain subprocess with pipes, not `multiprocessing`: its spawned children
import the parent's main module again (the whole command line, or whatever
program serves the app), and its pools answer threads, not the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import struct
import sys
from typing import BinaryIO

import anyio

from vaxhub.certificates.pdf import CertificateDocument, render_certificate_pdf

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("!I")


class PdfProcess:
    """Draws certificate PDFs in a niced child once `start`ed (in the event
    loop that will await `draw`); before that, on a request thread."""

    # Children that die on their document one after another: a child that
    # cannot start (a broken install) would otherwise cost a new process, a
    # second of CPU, for every PDF.
    GIVE_UP_AFTER = 3

    def __init__(self, *, nice: int = 10, command: tuple[str, ...] = (sys.executable, "-m", __name__)):
        self.nice = nice
        self.command = command
        self.drawn_in_child = 0
        self.restarts = 0
        self.given_up = False
        self._deaths_in_a_row = 0
        self._child: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    async def start(self) -> None:
        """Start the child; it cuts the fonts while start-up goes on."""
        self._lock = asyncio.Lock()
        self._child = await self._spawn()
        self._started = True

    async def stop(self) -> None:
        """End the child, letting it finish a PDF it is drawing; later PDFs
        are drawn on a request thread."""
        self._started = False
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        child.stdin.close()  # the child's signal to end
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
            await child.wait()

    async def draw(self, document: CertificateDocument) -> bytes:
        """The PDF of `document`, from the child when there is one."""
        if not self._started or self.given_up:
            return await anyio.to_thread.run_sync(render_certificate_pdf, document)
        # Shielded: a request abandoned by its client must not leave an answer
        # in the pipe for the next document to read as its own.
        answer = await asyncio.shield(self._exchange(pickle.dumps(document, pickle.HIGHEST_PROTOCOL)))
        if answer is None:
            return await anyio.to_thread.run_sync(render_certificate_pdf, document)  # within the request threads' limit
        drawn, body = answer
        if drawn:
            return body
        # Drawn again here, where the error is raised for the request as it
        # would be without a child, unless it was the child's alone (code on
        # disk replaced since this process started, say).
        log.warning("the certificate PDF process could not draw a document (%s); drawing it in the API process", body)
        return await anyio.to_thread.run_sync(render_certificate_pdf, document)

    async def _exchange(self, frame: bytes) -> tuple[bool, bytes | str] | None:
        """The child's answer to `frame`; None when the child died on it."""
        async with self._lock:
            child = self._child
            try:
                if child is None or child.returncode is not None:
                    child = self._child = await self._spawn()
                    self.restarts += 1
                child.stdin.write(_LENGTH.pack(len(frame)) + frame)
                await child.stdin.drain()
                (size,) = _LENGTH.unpack(await child.stdout.readexactly(_LENGTH.size))
                answer = pickle.loads(await child.stdout.readexactly(size))
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if child is not None and child.returncode is None:
                    child.kill()
                self._child = None
                self._deaths_in_a_row += 1
                if self._deaths_in_a_row >= self.GIVE_UP_AFTER:
                    self.given_up = True
                    log.error("the certificate PDF process died on %d documents in a row; this API process draws "
                              "PDFs itself from now on", self._deaths_in_a_row)
                else:
                    log.warning("the certificate PDF process ended (%s); this PDF is drawn in the API process, "
                                "the next in a new one", type(exc).__name__)
                return None
            self._deaths_in_a_row = 0
            self.drawn_in_child += 1
            return answer

    async def _spawn(self) -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        # Niced from here, before its first instruction: the child's own start
        # (imports, cutting the fonts) is the first thing to yield.
        try:
            os.setpriority(os.PRIO_PROCESS, child.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice))
        except ProcessLookupError:
            pass  # it ended already; the first document finds out
        return child


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None  # stdin closed: the API process stopped us, or is gone
    (size,) = _LENGTH.unpack(head)
    return stream.read(size)


def _write_frame(stream: BinaryIO, value: object) -> None:
    frame = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(frame)) + frame)
    stream.flush()


def main() -> int:
    """The child: draw each document read from stdin until it closes."""
    from vaxhub.certificates import pdf_fonts

    # Ctrl-C on `vaxhub serve` reaches the whole process group; the API
    # process ends this child by closing its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = os.fdopen(0, "rb")  # buffered: a read of n bytes waits for all n
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the answers
    pdf_fonts.prepare()
    while (frame := _read_frame(requests)) is not None:
        try:
            answer: tuple[bool, bytes | str] = (True, render_certificate_pdf(pickle.loads(frame)))
        except Exception as exc:  # noqa: BLE001 - the API process raises it for its request
            answer = (False, f"{type(exc).__name__}: {exc}")
        _write_frame(answers, answer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Running export jobs: the loop of `vaxhub export work` and of the API
process's background thread (the same code; the database decides who runs
what, so any number of either may run against one database).

A job's types are read in pages (`selection`) and appended to NDJSON files
(`files`); the lease is renewed every quarter lease while writing. Losing
the lease (the client cancelled, or the worker stalled and another took the
job over) discards this attempt's files. An error gives the job back for
another attempt, and fails it after the last one.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from vaxhub.hub.bulk_export.files import NdjsonFiles, job_folder, remove_job_files
from vaxhub.hub.bulk_export.jobs import ExportJobs, Lease
from vaxhub.hub.bulk_export.selection import compartments, pages
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings

log = logging.getLogger("vaxhub.export")
SWEEP_INTERVAL = 60.0


@dataclass(frozen=True)
class ExportOptions:
    export_dir: Path
    page_size: int = 1000
    file_max_resources: int = 100_000
    poll_seconds: float = 2.0
    lease_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "ExportOptions":
        return cls(settings.export_path(), settings.export_page_size, settings.export_file_max_resources,
                   settings.export_poll_seconds, settings.export_lease_seconds)


def export_jobs(engine: Engine, settings: Settings) -> ExportJobs:
    return ExportJobs(engine, lease_seconds=settings.export_lease_seconds, settle_seconds=settings.export_settle_seconds,
                      retention_hours=settings.export_retention_hours, max_active_per_client=settings.export_max_active_per_client)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ExportRunner:
    def __init__(self, store: FhirStore, jobs: ExportJobs, options: ExportOptions, *, name: str | None = None):
        self.store = store
        self.engine = store.engine
        self.jobs = jobs
        self.options = options
        self.name = name or default_worker_name()
        self._last_sweep = 0.0
        self._stopping = threading.Event()  # set while `run` is asked to stop

    def run_next(self) -> str | None:
        """Claim one job and run it; its outcome (done, lost, retry), or None when none was claimable."""
        if not self.jobs.has_claimable():
            return None
        lease = self.jobs.claim(self.name)
        return None if lease is None else self.run_job(lease)

    def run_job(self, lease: Lease) -> str:
        job = lease.job
        folder = job_folder(self.options.export_dir, job.id) / lease.token
        files: NdjsonFiles | None = None
        written = 0
        beat_every = self.options.lease_seconds / 4
        last_beat = time.monotonic()
        try:
            files = NdjsonFiles(folder, self.options.file_max_resources)
            reach = compartments(self.engine, self.store, job)
            for rtype in job.types:
                for page in pages(self.engine, job, rtype, self.options.page_size, reach):
                    files.write(rtype, page)
                    written += len(page)
                    if self._stopping.is_set():  # shutting down: another worker starts it afresh
                        self._discard(files, job.id)
                        self.jobs.give_back(lease)
                        return "given back"
                    if time.monotonic() - last_beat >= beat_every:
                        if not self.jobs.heartbeat(lease, written=written, progress=f"{written} resources written; exporting {rtype}"):
                            self._discard(files, job.id)
                            return "lost"
                        last_beat = time.monotonic()
            if job.warnings:
                files.write_outcomes(list(job.warnings))
            output, errors = files.close()
        except Exception as exc:  # noqa: BLE001 - the job is given back, not lost
            log.exception("Export job %s: attempt %d failed", job.id, job.attempts)
            if files is not None:
                self._discard(files, job.id)
            self.jobs.release(lease, f"{type(exc).__name__}: {exc}")
            return "retry"
        if not self.jobs.complete(lease, output=output, errors=errors, written=written):
            self._discard(files, job.id)  # cancelled, or taken over, while the last page was written
            return "lost"
        self._remove_other_attempts(job.id, lease.token)
        log.info("Export job %s done: %d resources in %d files", job.id, written, len(output))
        return "done"

    def sweep(self) -> int:
        """Remove the files of jobs past their retention."""
        expired = self.jobs.expire_due()
        for job_id in expired:
            remove_job_files(self.options.export_dir, job_id)
        return len(expired)

    def run(self, stop: threading.Event, *, until_idle: bool = False, wake: threading.Event | None = None) -> int:
        """Run jobs until `stop` is set (or, with `until_idle`, until none is waiting); returns how many finished."""
        finished = 0
        wake = wake or stop
        self._stopping = stop
        while not stop.is_set():
            if time.monotonic() - self._last_sweep >= SWEEP_INTERVAL:
                self._last_sweep = time.monotonic()
                self.sweep()
            try:
                outcome = self.run_next()
            except Exception:  # noqa: BLE001 - a lost database connection must not end the loop
                log.exception("Export worker %s: claiming failed", self.name)
                outcome = None
            if outcome is not None:
                finished += outcome == "done"
                continue
            if until_idle and not self.jobs.has_active():
                break
            wake.wait(self.options.poll_seconds)
            if wake is not stop:
                wake.clear()
        return finished

    def _discard(self, files: NdjsonFiles, job_id: str) -> None:
        files.discard()
        try:  # the job's folder too, unless another attempt is writing in it
            job_folder(self.options.export_dir, job_id).rmdir()
        except OSError:
            pass

    def _remove_other_attempts(self, job_id: str, token: str) -> None:
        folder = job_folder(self.options.export_dir, job_id)
        for attempt in folder.iterdir() if folder.is_dir() else ():
            if attempt.name != token:
                shutil.rmtree(attempt, ignore_errors=True)


class BackgroundExporter:
    """The API process's export thread: started and stopped with the app, woken by kick-offs."""

    def __init__(self, runner: ExportRunner):
        self.runner = runner
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._users += 1  # one app may be entered more than once (test clients)
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bulk-export", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or self._thread is None:
                return
            self._stop.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.runner.run(self._stop, wake=self._wake)
            except Exception:  # noqa: BLE001 - keep the thread alive; the database may come back
                log.exception("Export thread stopped unexpectedly; restarting")
                self._stop.wait(self.runner.options.poll_seconds)

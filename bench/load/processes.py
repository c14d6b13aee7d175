"""The processes of a load test: the registry simulators, `vaxhub serve
--workers N`, the outbox workers (`vaxhub worker`, `vaxhub mpi work`), and
what a supervisor does to them (SIGKILL, restart).

Each process logs to its own file in the run folder, so a failed run can be
read afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
VAXHUB = [sys.executable, "-m", "vaxhub.hub.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Managed:
    """One long-running child with its command, so it can be started again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    nice: int = 0  # added to the process's niceness (its children inherit it)

    def start(self) -> Managed:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish calls in flight or give leases back."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_registries(registry_file: Path, log_dir: Path, *, latency: float, jitter: float, error_rate: float,
                     timeout_rate: float, hang_seconds: float) -> tuple[Managed, str, str]:
    """The simulators' process, and the WSDL URL and social insurance root it printed."""
    command = [sys.executable, str(Path(__file__).with_name("registries.py")), "--registry", str(registry_file),
               "--latency", str(latency), "--jitter", str(jitter), "--error-rate", str(error_rate),
               "--timeout-rate", str(timeout_rate), "--hang-seconds", str(hang_seconds)]
    log_path = log_dir / "registries.log"
    managed = Managed("registries", command, dict(os.environ), log_path)
    managed.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log_path.open("ab"), text=True)
    managed.starts = 1
    wsdl = managed.proc.stdout.readline().strip()
    insurance = managed.proc.stdout.readline().strip()
    if not wsdl.startswith("http"):
        raise RuntimeError(f"registry simulators did not start: {managed.tail()}")
    return managed, wsdl, insurance


@dataclass
class Api:
    """`vaxhub serve --workers N`: uvicorn's supervisor and its worker processes."""

    managed: Managed
    port: int
    workers: int
    known_pids: set[int] = field(default_factory=set)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.managed.alive():
                raise RuntimeError(f"vaxhub serve exited:\n{self.managed.tail()}")
            try:
                if httpx.get(f"{self.root}/fhir/metadata", timeout=2).status_code == 200 and len(self.worker_pids()) == self.workers:
                    self.known_pids = set(self.worker_pids())
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"vaxhub serve not ready in {seconds:.0f} s:\n{self.managed.tail()}")

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes (multiprocessing spawn children; not its resource tracker).
        With one worker uvicorn serves in its own process and spawns none."""
        if self.workers == 1:
            return [self.managed.pid] if self.managed.alive() else []
        try:
            children = psutil.Process(self.managed.pid).children()
        except psutil.NoSuchProcess:
            return []
        pids = []
        for child in children:
            try:
                if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    pids.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return pids

    def kill_one_worker(self) -> int:
        pid = sorted(self.worker_pids())[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_respawn(self, killed: int, seconds: float = 60) -> float | None:
        """Seconds until the supervisor has `workers` live workers again without `killed`; None if it never does."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            pids = self.worker_pids()
            if killed not in pids and len(pids) == self.workers:
                self.known_pids |= set(pids)
                return time.monotonic() - started
            time.sleep(0.2)
        return None


def start_api(env: dict[str, str], log_dir: Path, workers: int, *, nice: int = 0, name: str = "api") -> Api:
    """`nice` lowers the API's CPU priority below the outbox workers' (as a
    deployment's CPU weights would): when the cores are short, the request
    path slows down rather than the queues growing."""
    port = free_port()
    command = [*VAXHUB, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    api = Api(Managed(name, command, env, log_dir / f"{name}.log", nice=nice).start(), port, workers)
    api.wait_ready()
    return api


def start_verification_worker(env: dict[str, str], log_dir: Path, index: int) -> Managed:
    name = f"verify-{index}"
    return Managed(name, [*VAXHUB, "worker", "--name", f"load-{name}"], env, log_dir / f"{name}.log").start()


def worker_name(managed: Managed) -> str:
    """The name a `vaxhub worker` records on its leases."""
    return managed.command[managed.command.index("--name") + 1]


def restart_renamed(managed: Managed, suffix: str) -> None:
    """Start again under another lease name, so its leases are told apart from the killed one's."""
    managed.command[managed.command.index("--name") + 1] += suffix
    managed.start()


def start_link_worker(env: dict[str, str], log_dir: Path, index: int, *, nice: int = 0) -> Managed:
    """`nice` below 0 (root only) lets the link worker go before the API when
    the cores are short, as a CPU reservation would on a shared host."""
    name = f"link-{index}"
    return Managed(name, [*VAXHUB, "mpi", "work"], env, log_dir / f"{name}.log", nice=nice).start()

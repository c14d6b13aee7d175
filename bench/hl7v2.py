"""HL7 v2 benchmark: VXU^V04 messages/s into a running hub, over HTTP
(`POST /hl7v2` on `vaxhub serve`) and over MLLP (`vaxhub mllp`), each on a
fresh SQLite database, from several client connections. The floor, measured in
the same run, is parse + map of the same messages in one process (no storage).

    .venv/bin/python bench/hl7v2.py --messages 2000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hl7v2_messages import new_dose, vxu  # noqa: E402
from vaxhub.fhir.hl7v2 import translate_vxu  # noqa: E402
from vaxhub.fhir.normalise import build_cccd  # noqa: E402
from vaxhub.hub.security.client_tools import generate_key, load_key, request_token  # noqa: E402
from vaxhub.hub.security.clients import ClientRegistry  # noqa: E402
from vaxhub.hub.storage.engine import make_engine  # noqa: E402

console = Console(width=120)
START, END = b"\x0b", b"\x1c\x0d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def messages(count: int) -> list[str]:
    out = []
    for i in range(count):
        cccd = build_cccd("079", "male" if i % 2 else "female", 1950 + i % 60, i)
        out.append(vxu(f"B-{i}", cccd=cccd, mrn=f"BN-{i}", orders=[new_dose(f"IZ-{i}-1"), new_dose(f"IZ-{i}-2", date="20210901")]))
    return out


def floor(texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        translate_vxu(text)
    return len(texts) / (time.perf_counter() - start)


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the hub exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the hub did not start")


def bearer(database_url: str, port: int, workdir: Path) -> dict[str, str]:
    """Register a national sender (it writes for every site) and log it in."""
    private, public, _kid = generate_key(workdir, "hl7-sender")
    ClientRegistry(make_engine(database_url)).register(
        "hl7-sender", name="benchmark HL7 sender", kind="system", jwks=orjson.loads(public.read_bytes()),
        scopes="system/Patient.cruds system/Immunization.cruds",
    )
    token = request_token(f"http://127.0.0.1:{port}/auth/token", "hl7-sender", load_key(private))["access_token"]
    return {"authorization": f"Bearer {token}"}


def over_http(texts: list[str], port: int, clients: int, headers: dict[str, str]) -> float:
    def send(chunk: list[str]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=headers) as c:
            for text in chunk:
                r = c.post("/hl7v2", content=text.encode(), headers={"content-type": "x-application/hl7-v2+er7"})
                assert "MSA|AA|" in r.text, r.text
    chunks = [texts[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return len(texts) / (time.perf_counter() - start)


def over_mllp(texts: list[str], port: int, clients: int, _headers: dict[str, str]) -> float:
    def send(chunk: list[str]) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            for text in chunk:
                s.sendall(START + text.encode() + END)
                data = b""
                while not data.endswith(END):
                    data += s.recv(65536)
                assert b"MSA|AA|" in data, data
    chunks = [texts[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return len(texts) / (time.perf_counter() - start)


def run(command: list[str], texts: list[str], clients: int, send, workdir: Path, name: str) -> float:
    port = free_port()
    database_url = f"sqlite:///{workdir / (name + '.db')}"
    env = {**os.environ, "VAXHUB_DATABASE_URL": database_url, "VAXHUB_DATA_DIR": str(workdir / name),
           "VAXHUB_RATE_LIMIT_PER_SECOND": "100000", "VAXHUB_RATE_LIMIT_BURST": "100000"}
    proc = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", *command, "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        headers = bearer(database_url, port, workdir) if command[0] == "serve" else {}
        return send(texts, port, clients, headers)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    texts = messages(args.messages)
    table = Table(title=f"VXU^V04 ingestion, {args.messages:,} messages (1 Patient + 2 Immunizations each), SQLite, {args.clients} clients")
    for column in ("path", "messages/s"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table.add_row("HTTP POST /hl7v2 (vaxhub serve, 2 workers)", f"{run(['serve', '--workers', '2'], texts, args.clients, over_http, work, 'http'):,.0f}")
        table.add_row("MLLP (vaxhub mllp)", f"{run(['mllp'], texts, args.clients, over_mllp, work, 'mllp'):,.0f}")
    table.add_row("floor: parse + map in one process", f"{floor(texts):,.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""MLLP listener for VXU messages (HL7 v2 Transport Specification: MLLP
Release 2, §2: a block is 0x0B, the message, 0x1C 0x0D).

asyncio streams: one coroutine per connection, so many senders can stay
connected at once; translating and storing a message runs in a thread pool,
off the event loop. Bytes before a start block are skipped, a block larger
than `max_bytes` is answered AR and the connection closed, and text that is
not UTF-8 is answered AR (MSH-18 other than UNICODE UTF-8 is not supported).

Given the audit trail, every message is an audited interaction with the
peer's address: stored, its AuditEvent goes in with its records; refused or
answered from an earlier ACK, it is recorded after. Over TLS with client
certificates (`mllp_tls`), the agent is the registered client the
certificate names, and its rights check every write; without TLS the agent
is the listener itself, and any peer that reaches the port may send.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vaxhub.fhir.hl7v2 import Hl7Finding, ack_for
from vaxhub.fhir.hl7v2.er7 import APPLICATION_INTERNAL_ERROR, DATA_TYPE_ERROR
from vaxhub.hub.audit.trail import MINOR_FAILURE, AuditTrail, Interaction
from vaxhub.hub.ingest.mllp_tls import sender_name
from vaxhub.hub.ingest.vxu import VxuOutcome, VxuReceiver
from vaxhub.hub.security.policy import SiteWriteGuard
from vaxhub.hub.security.principal import SYSTEM, Principal

log = logging.getLogger("vaxhub.mllp")
START, END = b"\x0b", b"\x1c\x0d"
DEFAULT_MAX_BYTES = 1_000_000
# Without TLS client certificates MLLP carries no credentials: the listener is the agent, the peer's address its source.
LISTENER = Principal(SYSTEM, "mllp-listener", client_id="mllp-listener")


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


def _reject(message: str) -> bytes:
    return frame(ack_for("AR", {}, [Hl7Finding(DATA_TYPE_ERROR, message)]))


class MllpServer:
    def __init__(self, receiver: VxuReceiver, *, max_bytes: int = DEFAULT_MAX_BYTES, workers: int = 4, idle_seconds: float = 300,
                 trail: AuditTrail | None = None, tls: ssl.SSLContext | None = None,
                 senders: Callable[[str], Principal | None] | None = None,
                 revocations: Callable[[bytes | None], str | None] | None = None):
        self.receiver = receiver
        self.trail = trail
        self.tls = tls  # with a client certificate required (`mllp_tls.server_context`)
        self.senders = senders  # a certificate's common name to the sender's principal; None refuses it
        self.revocations = revocations  # why a client certificate (DER) is refused, or None (`mllp_tls.Revocations`)
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp")
        self.server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (pass 0 for any free one)."""
        self.server = await asyncio.start_server(self._connection, host, port, limit=self.max_bytes + 16, ssl=self.tls)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
        self.pool.shutdown(wait=False)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        peer = (writer.get_extra_info("peername") or ("", 0))[0] or None
        if task is not None:
            self._connections.add(task)
        try:
            sender = LISTENER
            if self.revocations is not None:
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
                reason = await loop.run_in_executor(self.pool, self.revocations, der)
                if reason is not None:
                    log.warning("MLLP connection from %s refused: %s", peer, reason)
                    writer.write(_reject(f"The client certificate is not accepted: {reason}"))
                    await writer.drain()
                    return
            if self.senders is not None:
                name = sender_name(writer.get_extra_info("peercert"))
                known = await loop.run_in_executor(self.pool, self.senders, name) if name else None
                if known is None:
                    log.warning("MLLP connection from %s refused: certificate %r names no registered client", peer, name)
                    writer.write(_reject("The client certificate names no registered sender"))
                    await writer.drain()
                    return
                sender = known
            while True:
                block = await self._read_block(reader)
                if block is None:
                    break
                if isinstance(block, bytes) and block.startswith(b"\x00"):
                    writer.write(_reject(f"The message is larger than {self.max_bytes} bytes"))
                    await writer.drain()
                    break
                try:
                    text = block.decode("utf-8")
                except UnicodeDecodeError:
                    writer.write(_reject("The message is not UTF-8 text"))
                    await writer.drain()
                    continue
                outcome = await loop.run_in_executor(self.pool, self._receive, text, peer, sender)
                writer.write(frame(outcome.ack))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one connection's defect must not stop the listener
            log.exception("MLLP connection failed")
            try:
                writer.write(frame(ack_for("AR", {}, [Hl7Finding(APPLICATION_INTERNAL_ERROR, "Internal error")])))
            except Exception:  # noqa: BLE001
                pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001 - the peer may already be gone
                pass

    def _receive(self, text: str, peer: str | None, sender: Principal) -> VxuOutcome:
        guard = SiteWriteGuard(sender) if sender is not LISTENER else self.receiver.guard
        if self.trail is None:
            return self.receiver.for_sender(guard, self.receiver.interaction).receive(text)
        interaction = Interaction("transaction", "MLLP", "/mllp", source_ip=peer, principal=sender)
        outcome = self.receiver.for_sender(guard, interaction).receive(text)
        if not interaction.recorded:  # nothing stored: refused, or answered with an earlier ACK
            if outcome.code != "AA":
                interaction.outcome, interaction.description = MINOR_FAILURE, f"ACK {outcome.code}"
            self.trail.record(interaction)
        return outcome

    async def _read_block(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next framed message; None at end of stream; b"\\x00…" when too large."""
        while True:
            first = await asyncio.wait_for(reader.read(1), self.idle_seconds)
            if not first:
                return None
            if first == START:
                break
        try:
            data = await asyncio.wait_for(reader.readuntil(END), self.idle_seconds)
        except asyncio.LimitOverrunError:
            return b"\x00too large"
        except asyncio.IncompleteReadError:
            return None
        if len(data) - len(END) > self.max_bytes:
            return b"\x00too large"
        body = data[: -len(END)]
        # A block must not hold another start byte: that is a sender that lost its framing.
        return body.rsplit(START, 1)[-1]


async def serve_mllp(receiver: VxuReceiver, host: str, port: int, *, trail: AuditTrail | None = None, tls: ssl.SSLContext | None = None,
                     senders: Callable[[str], Principal | None] | None = None,
                     revocations: Callable[[bytes | None], str | None] | None = None,
                     reload: Callable[[], None] | None = None) -> None:
    """Run the listener until cancelled (the `vaxhub mllp` command); SIGHUP calls `reload`."""
    server = MllpServer(receiver, trail=trail, tls=tls, senders=senders, revocations=revocations)
    bound = await server.start(host, port)
    log.info("MLLP listening on %s:%s", host, bound)
    if reload is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()

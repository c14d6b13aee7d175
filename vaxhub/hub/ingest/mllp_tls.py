"""MLLP over TLS with client certificates: the sender is who its certificate says.

MLLP carries no credentials of its own. With TLS and a client certificate
required from the CA the operator trusts for sending systems, the
certificate's subject common name names a registered client (`vaxhub
clients add`): the client's kind, site and scopes are the sender's rights,
checked on every write as they are over HTTP (a site writes only its own
records), and its id is the agent of the AuditEvents. The client is looked up
at each connection, so a disabled client's next connection is refused.

A certificate revocation list from the client CA (`--client-crl`) is checked
after each handshake and read again whenever its file changes, so a revoked
certificate is refused from its next connection without a restart. The
listener's own certificate is read again on SIGHUP (`ListenerTls.reload`):
new connections get the new one, open ones keep theirs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from vaxhub.errors import AuthenticationFailed
from vaxhub.hub.security.clients import ClientRegistry
from vaxhub.hub.security.principal import Principal


def server_context(cert_file: str | Path, key_file: str | Path, client_ca: str | Path) -> ssl.SSLContext:
    """TLS 1.2 or later, and a client certificate issued by `client_ca` required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def sender_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject common name of a verified client certificate (as `SSLObject.getpeercert()` gives it)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return value
    return None


class RegisteredSenders:
    """A certificate's common name to the registered client it names; None when unknown or disabled."""

    def __init__(self, clients: ClientRegistry):
        self.clients = clients

    def __call__(self, name: str) -> Principal | None:
        try:
            client = self.clients.get(name)
        except AuthenticationFailed:
            return None
        return Principal(client.kind, client.client_id, client_id=client.client_id, site_code=client.site_code,
                         scopes=client.scopes, roles=client.roles)


log = logging.getLogger("vaxhub.mllp")


class Revocations:
    """The client CA's certificate revocation list (PEM or DER), read again when
    its file changes; `refusal(der)` is why a client certificate is refused, or None.

    It fails closed, as OpenSSL's own CRL check does: while the list cannot be
    read, is not signed by a CA of `client_ca`, does not come from the
    certificate's issuer or is past its next update, every sender is refused
    with the reason, until a good list is in place. A list that is bad when
    the listener starts stops it from starting."""

    def __init__(self, crl_file: str | Path, client_ca: str | Path, *, clock: Callable[[], dt.datetime] | None = None):
        self.path = Path(crl_file)
        self.issuers = x509.load_pem_x509_certificates(Path(client_ca).read_bytes())
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._crl: x509.CertificateRevocationList | None = None
        self._problem: str | None = None
        self._refresh()
        if self._problem is not None:
            raise ValueError(self._problem)

    def reload(self) -> None:
        with self._lock:
            self._seen = None
        self._refresh()

    def refusal(self, der: bytes | None) -> str | None:
        self._refresh()
        crl, problem = self._crl, self._problem
        if problem is not None or crl is None:
            return problem or "no certificate revocation list"
        if der is None:
            return "no client certificate"
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer != crl.issuer:
            return "the revocation list is not from the certificate's issuer"
        if crl.next_update_utc is not None and crl.next_update_utc < self.clock():
            return f"the certificate revocation list is out of date (next update was {crl.next_update_utc.isoformat()})"
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return f"the client certificate (serial {cert.serial_number:x}) is revoked"
        return None

    __call__ = refusal

    def _refresh(self) -> None:
        with self._lock:
            try:
                stat = os.stat(self.path)
            except OSError as exc:
                self._crl, self._problem, self._seen = None, f"the certificate revocation list cannot be read: {exc}", None
                return
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen == self._seen:
                return
            self._seen = seen
            self._crl, self._problem = self._load()
            if self._problem is not None:
                log.error("MLLP client certificates refused: %s", self._problem)
            else:
                log.info("MLLP certificate revocation list read: %d revoked, next update %s", len(self._crl),
                         self._crl.next_update_utc.isoformat() if self._crl.next_update_utc else "not given")

    def _load(self) -> tuple[x509.CertificateRevocationList | None, str | None]:
        data = self.path.read_bytes()
        try:
            crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
        except ValueError as exc:
            return None, f"the certificate revocation list is not readable: {exc}"
        if not any(ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key()) for ca in self.issuers):
            return None, "the certificate revocation list is not signed by a client CA"
        return crl, None


class ListenerTls:
    """The listener's TLS context and the client CA's revocation list, both
    read again by `reload` (SIGHUP): the same context takes the new
    certificate, which new handshakes present."""

    def __init__(self, cert_file: str | Path, key_file: str | Path, client_ca: str | Path, crl_file: str | Path | None = None):
        self.cert_file, self.key_file = str(cert_file), str(key_file)
        self.context = server_context(cert_file, key_file, client_ca)
        self.revocations = Revocations(crl_file, client_ca) if crl_file else None

    def reload(self) -> None:
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            log.error("MLLP listener certificate not reloaded, the previous one stays: %s", exc)
        else:
            log.info("MLLP listener certificate reloaded from %s", self.cert_file)
        if self.revocations is not None:
            self.revocations.reload()

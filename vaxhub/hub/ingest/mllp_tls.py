"""MLLP over TLS with client certificates: the sender is who its certificate says.

MLLP carries no credentials of its own. With TLS and a client certificate
required from the CA the operator trusts for sending systems, the
certificate's subject common name names a registered client (`vaxhub
clients add`): the client's kind, site and scopes are the sender's rights,
checked on every write as they are over HTTP (a site writes only its own
records), and its id is the agent of the AuditEvents. The client is looked up
at each connection, so a disabled client's next connection is refused.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

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

"""VXU over HTTP and MLLP, stored through the transaction path, on SQLite and PostgreSQL."""

import asyncio
import functools
import itertools
import os
import random
import socket
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from tests.hl7v2_messages import historical_dose, malformed_vxu, new_dose, refused_dose, vxu
from vaxhub.hub.hub_store import hub_store
from vaxhub.hub.ingest.mllp import END, START, MllpServer
from vaxhub.hub.ingest.vxu import VxuReceiver
from vaxhub.hub.ingest.vxu_groups import VxuGroups
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.tables import ResourceRow
from vaxhub.settings import load_settings

ER7 = {"content-type": "x-application/hl7-v2+er7"}


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(ResourceRow.res_type, func.count()).group_by(ResourceRow.res_type)).all()
    return dict(rows)


def _msa(ack: str) -> str:
    return ack.split("\r")[1].split("|")[1]


def _send(client, text: str) -> str:
    r = client.post("/hl7v2", content=text.encode("utf-8"), headers=ER7)
    assert r.status_code == 200
    return r.text


def test_new_historical_and_refused_doses_are_stored_and_acknowledged(client, engine):
    ack = _send(client, vxu(orders=[new_dose(), historical_dose(), refused_dose()]))
    assert _msa(ack) == "AA" and "MSA|AA|MSG-0001" in ack
    assert _counts(engine) == {"Patient": 1, "Immunization": 3}


def test_resent_vxu_does_not_duplicate(client, engine):
    first = _send(client, vxu("MSG-1"))
    again = _send(client, vxu("MSG-1"))
    assert again == first  # same MSH-10: the same ACK, nothing processed
    resent = _send(client, vxu("MSG-2"))  # new MSH-10, same ORC-3
    assert _msa(resent) == "AA"
    assert _counts(engine) == {"Patient": 1, "Immunization": 1}


def test_entered_in_error_updates_the_stored_dose(client, store):
    _send(client, vxu("MSG-1"))
    assert _msa(_send(client, vxu("MSG-2", orders=[new_dose(action="D")]))) == "AA"
    _send(client, vxu("MSG-3", orders=[new_dose(action="D")]))
    with store.engine.connect() as conn:
        rows = conn.execute(select(ResourceRow.content, ResourceRow.version).where(ResourceRow.res_type == "Immunization")).all()
    assert len(rows) == 1 and rows[0].content["status"] == "entered-in-error" and rows[0].version == 2


def test_site_number_then_cccd_finds_the_same_patient(client, engine):
    _send(client, vxu("MSG-1", cccd=None))
    ack = _send(client, vxu("MSG-2", orders=[new_dose("IZ-0002", date="20210901")]))
    assert _msa(ack) == "AA"
    assert _counts(engine) == {"Patient": 1, "Immunization": 2}


def test_content_error_is_ae_and_stores_nothing(client, engine):
    ack = _send(client, vxu(orders=[new_dose(), new_dose("IZ-2", vaccine="999^Unknown^CVX")]))
    assert _msa(ack) == "AE" and "ERR||RXA^2^5^1^1|103^Table value not found^HL70357|E|" in ack
    assert _counts(engine) == {}


def test_malformed_messages_over_http_get_ae_or_ar_and_store_nothing(client, engine):
    rng = random.Random(4)
    codes = {"AE": 0, "AR": 0, "AA": 0}
    for _ in range(400):
        text = malformed_vxu(rng)
        r = client.post("/hl7v2", content=text.encode("utf-8"), headers=ER7)
        assert r.status_code == 200 and r.text.startswith("MSH|")
        codes[_msa(r.text)] += 1
    assert codes["AE"] + codes["AR"] > 300
    stored = _counts(engine)
    assert stored.get("Immunization", 0) <= codes["AA"]
    r = client.post("/hl7v2", content=b"\xff\xfe not utf-8", headers=ER7)
    assert _msa(r.text) == "AR"


@contextmanager
def _mllp_listener(receiver: VxuReceiver, trail=None, tls=None, senders=None, revocations=None):
    """A listener on a free loopback port; yields `exchange(blocks, tls=None) -> ACK texts`, one connection per call."""
    # The server's loop runs in a thread of its own from the start: the test's
    # thread may already be running a loop (a browser test's Playwright session
    # on the same pytest worker keeps one).
    loop = asyncio.new_event_loop()
    server = MllpServer(receiver, workers=2, trail=trail, tls=tls, senders=senders, revocations=revocations)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(30)

    def exchange(messages: list[bytes], client_tls=None) -> list[str]:
        answers = []
        with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
            s = client_tls.wrap_socket(plain, server_hostname="127.0.0.1") if client_tls else plain
            for raw in messages:
                s.sendall(raw)
                data = b""
                while not data.endswith(END):
                    chunk = s.recv(65536)
                    assert chunk
                    data += chunk
                assert data.startswith(START)
                answers.append(data[1:-2].decode("utf-8"))
        return answers

    try:
        yield exchange
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _framed(text: str) -> bytes:
    return START + text.encode() + END


def test_mllp_over_a_loopback_socket_with_many_connections(store):
    with _mllp_listener(VxuReceiver(store, base="urn:test")) as exchange:
        framed = [_framed(vxu(f"MLLP-{i}", cccd=f"07909{i:07d}", mrn=f"BN-{i}", orders=[new_dose(f"IZ-{i}")])) for i in range(8)]
        results: list[list[str]] = [[] for _ in range(8)]
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, exchange([framed[i], framed[i]]))) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(len(r) == 2 and _msa(r[0]) == "AA" and _msa(r[1]) == "AA" for r in results)
        # junk before the start byte is skipped, a non-UTF-8 block is answered AR
        (junk_then_message, bad) = exchange([b"noise" + framed[0], START + b"\xff\xfe" + END])
        assert _msa(junk_then_message) == "AA" and _msa(bad) == "AR"
    assert _counts(store.engine) == {"Patient": 8, "Immunization": 8}


def test_mllp_messages_are_audited_verified_and_linked_as_http_ones_are(engine, tmp_path):
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), data_dir=tmp_path)
    store, trail = hub_store(engine, settings)
    stored = vxu("AUD-1", cccd="079090000777", mrn="BN-777", orders=[new_dose("IZ-777")])
    refused = vxu("AUD-2", orders=[new_dose(date="20219999")])
    with _mllp_listener(VxuReceiver(store, base="urn:test", groups=VxuGroups(store)), trail) as exchange:
        acks = exchange([_framed(stored), _framed(stored), _framed(refused)])
    assert [_msa(a) for a in acks] == ["AA", "AA", "AE"]
    events, _more = trail.search(action="transaction")
    assert len(events) == 3 and trail.verify().ok
    for event in events:
        agent = event["agent"][0]
        assert agent["who"]["identifier"]["value"] == "mllp-listener" and agent["network"]["address"] == "127.0.0.1"
    assert sorted(e["outcome"] for e in events) == ["0", "0", "4"]
    patient = [c for c in _contents(engine, "Patient")][0]
    written = [e for e in events if any(x["what"]["reference"].startswith("Immunization/") for x in e.get("entity", []) if "what" in x)]
    assert len(written) == 1 and {"reference": f"Patient/{patient['id']}"} in [x["what"] for x in written[0]["entity"]]
    with engine.connect() as conn:
        assert conn.execute(select(VerificationJobRow.state).where(VerificationJobRow.patient_id == patient["id"])).scalar_one() == "queued"
        assert conn.execute(select(MpiRecordRow.state).where(MpiRecordRow.record_id == patient["id"])).scalar_one() == "queued"


def _contents(engine, rtype: str) -> list[dict]:
    with engine.connect() as conn:
        return [c for (c,) in conn.execute(select(ResourceRow.content).where(ResourceRow.res_type == rtype))]


def test_copies_of_one_message_racing_get_one_ack_and_are_stored_once(store):
    receiver = VxuReceiver(store, base="urn:test")
    text = vxu("RACE-1", cccd="079090000321", mrn="BN-RACE", orders=[new_dose("IZ-RACE")])
    outcomes = [None] * 6
    start = threading.Barrier(6)

    def send(i: int) -> None:
        start.wait()
        outcomes[i] = receiver.receive(text)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(o is not None and o.code == "AA" for o in outcomes), [o and o.ack for o in outcomes]
    assert len({o.ack for o in outcomes}) == 1  # every copy is answered with the ACK that was kept
    assert sum(not o.resent for o in outcomes) == 1
    assert _counts(store.engine) == {"Patient": 1, "Immunization": 1}


def test_a_refused_message_is_not_remembered_and_its_corrected_copy_is_stored(client, engine):
    bad = vxu("FIX-1", orders=[new_dose(date="20219999")])
    assert _msa(_send(client, bad)) == "AE"
    fixed = vxu("FIX-1", orders=[new_dose()])  # the sender corrects the record and sends the same MSH-10
    assert _msa(_send(client, fixed)) == "AA"
    assert _counts(engine) == {"Patient": 1, "Immunization": 1}


def _pki(folder):
    """A CA for sending systems, the listener's certificate for 127.0.0.1, and client certificates by common name."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def issue(name: str, issuer_name, issuer_key, *, ca: bool = False, ip: str | None = None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        if ip:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
        return cert, key

    ca_cert, ca_key = issue("sites-ca", None, None, ca=True)
    issue("mllp-listener", ca_cert.subject, ca_key, ip="127.0.0.1")
    issue("mllp-listener-next", ca_cert.subject, ca_key, ip="127.0.0.1")
    for name in ("site-79001", "unregistered-his"):
        issue(name, ca_cert.subject, ca_key)
    return folder


def _client_tls(pki, name: str | None):
    import ssl

    context = ssl.create_default_context(cafile=str(pki / "sites-ca.pem"))
    if name:
        context.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return context


def _tls_hub(engine, tmp_path):
    """The PKI, a registry with site 79001's system as a client, and the hub's store and audit trail."""
    from tests.auth_helpers import ClientKey
    from vaxhub.hub.security.clients import ClientRegistry

    pki = _pki(tmp_path)
    clients = ClientRegistry(engine)
    clients.register("site-79001", name="Bệnh viện quận 1", kind="system", jwks=ClientKey.generate().jwks(), scopes="system/*.cru",
                     site_code="79001")
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), data_dir=tmp_path / "data")
    store, trail = hub_store(engine, settings)
    return pki, clients, store, trail


def test_over_tls_a_sender_is_the_client_its_certificate_names_and_writes_only_its_sites_records(engine, tmp_path):
    import ssl

    from vaxhub.hub.ingest.mllp_tls import RegisteredSenders, server_context

    pki, clients, store, trail = _tls_hub(engine, tmp_path)
    tls = server_context(pki / "mllp-listener.pem", pki / "mllp-listener.key", pki / "sites-ca.pem")
    own = vxu("TLS-1", site="79001", cccd="079090000888", mrn="BN-888", orders=[new_dose("IZ-888")])
    foreign = vxu("TLS-2", site="01001", cccd="079090000999", mrn="BN-999", orders=[new_dose("IZ-999")])
    with _mllp_listener(VxuReceiver(store, base="urn:test"), trail, tls=tls, senders=RegisteredSenders(clients)) as exchange:
        acks = exchange([_framed(own), _framed(foreign)], _client_tls(pki, "site-79001"))
        assert [_msa(a) for a in acks] == ["AA", "AR"] and "Not allowed" in acks[1]
        (refused,) = exchange([_framed(own)], _client_tls(pki, "unregistered-his"))
        assert _msa(refused) == "AR" and "no registered sender" in refused
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            exchange([_framed(own)], _client_tls(pki, None))  # no client certificate: no handshake
        clients.disable("site-79001")
        (disabled,) = exchange([_framed(own)], _client_tls(pki, "site-79001"))
        assert _msa(disabled) == "AR"
    assert _counts(engine) == {"Patient": 1, "Immunization": 1}
    events, _more = trail.search(action="transaction")
    assert {e["agent"][0]["who"]["identifier"]["value"] for e in events} == {"site-79001"} and len(events) == 2


def _write_crl(pki, revoked: list[str], *, next_update_hours: float = 24, signer: str = "sites-ca", path=None):
    """A CRL from `signer` (its certificate and key in `pki`) revoking the certificates of `revoked`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    now = dt.datetime.now(dt.timezone.utc)
    issuer = x509.load_pem_x509_certificate((pki / f"{signer}.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{signer}.key").read_bytes(), None)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(now - dt.timedelta(hours=1))
               .next_update(now + dt.timedelta(hours=next_update_hours)))
    for name in revoked:
        serial = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes()).serial_number
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - dt.timedelta(minutes=1)).build())
    path = path or pki / "sites-ca.crl"
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def test_a_revoked_client_certificate_is_refused_from_its_next_connection_and_a_bad_list_refuses_everyone(engine, tmp_path):
    from vaxhub.hub.ingest.mllp_tls import ListenerTls, RegisteredSenders

    pki, clients, store, trail = _tls_hub(engine, tmp_path)
    crl = _write_crl(pki, ["unregistered-his"])
    listener = ListenerTls(pki / "mllp-listener.pem", pki / "mllp-listener.key", pki / "sites-ca.pem", crl)
    messages = [vxu(f"CRL-{i}", site="79001", cccd=f"07909000{i:04d}", mrn=f"BN-C{i}", orders=[new_dose(f"IZ-C{i}")]) for i in range(3)]

    later = itertools.count(1)

    def next_list(*args, **kwargs):
        written = _write_crl(*args, **kwargs)
        now = time.time_ns()
        os.utime(written, ns=(now, now + next(later) * 1_000_000_000))  # a new mtime even within the file system's tick
        return written

    with _mllp_listener(VxuReceiver(store, base="urn:test"), trail, tls=listener.context, senders=RegisteredSenders(clients),
                        revocations=listener.revocations) as exchange:
        (accepted,) = exchange([_framed(messages[0])], _client_tls(pki, "site-79001"))
        assert _msa(accepted) == "AA"
        next_list(pki, ["unregistered-his", "site-79001"])
        (revoked,) = exchange([_framed(messages[1])], _client_tls(pki, "site-79001"))
        assert _msa(revoked) == "AR" and "is revoked" in revoked
        next_list(pki, [], next_update_hours=-1)
        (stale,) = exchange([_framed(messages[1])], _client_tls(pki, "site-79001"))
        assert _msa(stale) == "AR" and "out of date" in stale
        next_list(pki, [], signer="unregistered-his", path=crl)  # not the CA's signature
        (forged,) = exchange([_framed(messages[1])], _client_tls(pki, "site-79001"))
        assert _msa(forged) == "AR" and "not signed by a client CA" in forged
        next_list(pki, [])
        (again,) = exchange([_framed(messages[2])], _client_tls(pki, "site-79001"))
        assert _msa(again) == "AA"
    assert _counts(engine) == {"Patient": 2, "Immunization": 2}
    # A listener does not start on a list it cannot trust.
    _write_crl(pki, [], signer="unregistered-his", path=crl)
    with pytest.raises(ValueError, match="not signed"):
        ListenerTls(pki / "mllp-listener.pem", pki / "mllp-listener.key", pki / "sites-ca.pem", crl)


def _presented(pki, port: int) -> bytes:
    """The certificate the listener on `port` presents (DER)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        with _client_tls(pki, "site-79001").wrap_socket(plain, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def _listener_certificates(pki) -> dict[str, bytes]:
    import ssl

    return {name: ssl.PEM_cert_to_DER_cert((pki / f"{name}.pem").read_text()) for name in ("mllp-listener", "mllp-listener-next")}


def test_reloading_the_listener_gives_new_connections_the_new_certificate(engine, tmp_path):
    import shutil

    from vaxhub.hub.ingest.mllp_tls import ListenerTls

    pki = _pki(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("pem", "key"):
        shutil.copy(pki / f"mllp-listener.{suffix}", live / f"listener.{suffix}")
    listener = ListenerTls(live / "listener.pem", live / "listener.key", pki / "sites-ca.pem")
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), data_dir=tmp_path / "data")
    store, trail = hub_store(engine, settings)

    presented = functools.partial(_presented, pki)
    expected = _listener_certificates(pki)
    loop = asyncio.new_event_loop()
    server = MllpServer(VxuReceiver(store, base="urn:test"), workers=1, trail=trail, tls=listener.context)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(30)
        assert presented(port) == expected["mllp-listener"]
        (live / "listener.key").write_text("not a key")
        listener.reload()  # a broken file: the previous certificate stays
        assert presented(port) == expected["mllp-listener"]
        for suffix in ("pem", "key"):
            shutil.copy(pki / f"mllp-listener-next.{suffix}", live / f"listener.{suffix}")
        listener.reload()
        assert presented(port) == expected["mllp-listener-next"]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_the_mllp_command_reads_its_certificate_again_on_sighup(tmp_path):
    import shutil
    import signal
    import subprocess
    import sys

    pki = _pki(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("pem", "key"):
        shutil.copy(pki / f"mllp-listener.{suffix}", live / f"listener.{suffix}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VAXHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "VAXHUB_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "vaxhub.hub.cli", "mllp", "--port", str(port), "--tls-cert", str(live / "listener.pem"),
               "--tls-key", str(live / "listener.key"), "--client-ca", str(pki / "sites-ca.pem")]
    listener = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    expected = _listener_certificates(pki)

    def presented_within(seconds: float) -> bytes | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert listener.poll() is None, listener.stdout.read().decode(errors="replace")
            try:
                return _presented(pki, port)
            except OSError:
                time.sleep(0.2)
        return None

    try:
        assert presented_within(60) == expected["mllp-listener"]
        for suffix in ("pem", "key"):
            shutil.copy(pki / f"mllp-listener-next.{suffix}", live / f"listener.{suffix}")
        assert presented_within(5) == expected["mllp-listener"]  # read at start only
        listener.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while presented_within(5) != expected["mllp-listener-next"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert presented_within(5) == expected["mllp-listener-next"]
    finally:
        listener.terminate()
        listener.wait(10)


def test_the_mllp_command_wants_its_tls_files_together(engine, tmp_path):
    from typer.testing import CliRunner

    from vaxhub.hub.cli import app as cli

    env = {"VAXHUB_DATABASE_URL": engine.url.render_as_string(hide_password=False), "VAXHUB_DATA_DIR": str(tmp_path), "VAXHUB_AUTO_MIGRATE": "false"}
    result = CliRunner().invoke(cli, ["mllp", "--port", "0", "--tls-cert", str(tmp_path / "listener.pem")], env=env)
    assert result.exit_code == 2 and "go together" in result.output
    result = CliRunner().invoke(cli, ["mllp", "--port", "0", "--client-crl", str(tmp_path / "sites-ca.crl")], env=env)
    assert result.exit_code == 2 and "--client-crl needs" in result.output
    missing = [str(tmp_path / name) for name in ("listener.pem", "listener.key", "sites-ca.pem")]
    result = CliRunner().invoke(cli, ["mllp", "--port", "0", "--tls-cert", missing[0], "--tls-key", missing[1], "--client-ca", missing[2]], env=env)
    assert result.exit_code == 2 and "No such file" in result.output

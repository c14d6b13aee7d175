"""`vaxhub keys …` (the certificate signing keys) and `vaxhub verify` (offline verification)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from vaxhub.settings import load_settings

keys_app = typer.Typer(help="Certificate signing keys: the CSCA and its document signers.", no_args_is_help=True)
console = Console(stderr=True)

IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _hub_keys():
    from vaxhub.hub.certificates.signing_keys import HubSigningKeys

    try:
        return HubSigningKeys.from_settings(load_settings())
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _describe(signer, active: bool) -> dict[str, str | bool]:
    import base64

    c = signer.certificate
    return {
        "kid": base64.b64encode(signer.kid).decode("ascii"),
        "shc_kid": signer.jwk_kid,
        "fingerprint": c.fingerprint(_sha256()).hex(),
        "algorithm": signer.algorithm,
        "not_before": c.not_valid_before_utc.isoformat(),
        "not_after": c.not_valid_after_utc.isoformat(),
        "active": active,
    }


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


@keys_app.command("init")
def keys_init(
    signer_days: int = typer.Option(730, min=1, help="Validity of the document signer certificate, in days (rotate well before it ends)."),
    csca_days: int = typer.Option(3650, min=1, help="Validity of the country signing CA, in days."),
) -> None:
    """Create the CSCA and a first document signer in VAXHUB_CERT_KEYS_DIR (keys encrypted with VAXHUB_CERT_PASSPHRASE)."""
    from vaxhub.errors import InputError

    keys = _hub_keys()
    try:
        signer = keys.init(signer_days=signer_days, csca_days=csca_days)
    except InputError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"key store created in {keys.directory}")
    typer.echo(json.dumps(_describe(signer, True), indent=2))


@keys_app.command("rotate")
def keys_rotate(
    signer_days: int = typer.Option(None, min=1, help="Validity of the new signer (default: as at init)."),
) -> None:
    """Make a new active document signer; older ones keep verifying until their certificates expire."""
    from vaxhub.errors import NotFound

    keys = _hub_keys()
    try:
        signer = keys.rotate(signer_days=signer_days)
    except NotFound as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"new active signer; {len(keys.signers())} signers kept in {keys.directory}")
    typer.echo(json.dumps(_describe(signer, True), indent=2))


@keys_app.command("list")
def keys_list() -> None:
    """Every document signer in the key store, oldest first."""
    from vaxhub.hub.certificates.signing_keys import SigningKeysUnavailable

    keys = _hub_keys()
    keys.create_missing = False
    try:
        snapshot = keys.snapshot()
    except SigningKeysUnavailable as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    typer.echo(json.dumps([_describe(s, s is snapshot.active) for s in snapshot.signers], indent=2))


def _certificate_text(argument: str) -> str:
    """The QR text: the argument itself, `-` for standard input, or a file (an image is decoded)."""
    from vaxhub.certificates.qr_reader import certificate_in_image

    if argument == "-":
        return sys.stdin.read()
    path = Path(argument)
    try:
        is_file = len(argument) < 4096 and path.is_file()
    except OSError:
        is_file = False
    if not is_file:
        return argument
    data = path.read_bytes()
    if data.startswith(IMAGE_MAGIC):
        return certificate_in_image(data)
    return data.decode("utf-8", errors="replace")


def verify(
    qr: str = typer.Argument(..., help="The QR text (HC1:…, shc:/…), '-' for standard input, or a file: a QR image, a .smart-health-card, a text file."),
    trust: list[Path] = typer.Option(None, "--trust", exists=True, dir_okay=False, help="Trust: a PEM/DER signer certificate, an EU-style trust list, a JWKS (repeatable)."),
    revocations: list[Path] = typer.Option(None, "--revocations", exists=True, dir_okay=False, help="A revocation list (GET /certificates/revocation-list)."),
    at: str = typer.Option(None, "--at", help="Verify as at this ISO 8601 time (default: now; without a zone, UTC)."),
    hub: bool = typer.Option(False, "--hub", help="Also trust what this hub trusts: its key store, imported lists, revocations (needs its database)."),
) -> None:
    """Verify an EU DCC or SMART Health Card offline; prints one JSON report and exits 0 only when valid."""
    from vaxhub.certificates.verify import Problem, Signature, Trust, VerificationReport, verify_text
    from vaxhub.errors import MalformedInput

    now = dt.datetime.now(dt.timezone.utc)
    if at:
        try:
            now = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            console.print(f"[red]--at {at!r} is not an ISO 8601 time[/red]")
            raise typer.Exit(2) from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
    material = Trust()
    if hub:
        material = _hub_trust()
    for path in trust or []:
        try:
            console.print(f"trusting {path}: {material.add_document(path.read_bytes())}")
        except MalformedInput as exc:
            console.print(f"[red]{path}: {exc.message}[/red]")
            raise typer.Exit(2) from None
    for path in revocations or []:
        try:
            material.add_revocations(json.loads(path.read_bytes()))
        except (ValueError, MalformedInput, AttributeError) as exc:
            console.print(f"[red]{path}: not a revocation list ({exc})[/red]")
            raise typer.Exit(2) from None
    try:
        text = _certificate_text(qr)
    except MalformedInput as exc:
        report = VerificationReport(None, Signature.INVALID, [Problem("malformed", exc.message)])
    else:
        report = verify_text(text, material, now=now)
    typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    raise typer.Exit(0 if report.valid else 1)


def _hub_trust():
    from vaxhub.hub.certificates.trust_store import CertificateTrust
    from vaxhub.hub.storage.engine import make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url)
    if settings.auto_migrate:
        upgrade(engine)
    keys = _hub_keys()
    keys.create_missing = False
    return CertificateTrust(engine, keys, country=settings.cert_country).verifier_trust()

"""Trust and revocation as the hub keeps them.

- **Our trust list** (public): the CSCA and every document signer still valid
  and not withdrawn, in the EU gateway's entry shape (`certificateType`
  CSCA/DSC, `kid`, `country`, `thumbprint`, `rawData`), plus the SMART Health
  Card issuer JWKS. `verify.Trust.add_document` reads it back.
- **Imported trust lists**: foreign DSC lists (EU gateway form or the simple
  form, PEM or DER certificates) and SHC issuer JWKS, each under a name; a
  re-import replaces the named list whole, in one transaction, after every
  entry was checked.
- **Revocation**: of a UVCI (every format of that certificate) and of one of
  our document signers (everything it signed). The revocation list export
  carries the EU hashes (UCI, COUNTRYCODEUCI, SIGNATURE; SHA-256 truncated to
  128 bits, base64) in gateway-style batches per signer `kid`, the withdrawn
  signers, and the SHC revocation ids.
- **The verifier's Trust**: ours, the imported lists, and every revocation.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections import defaultdict
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, delete, func, insert, literal, select, true, union_all, update

from vaxhub.certificates.dcc import decode_hc1
from vaxhub.certificates.keys import dcc_kid
from vaxhub.certificates.revocation import country_uci_hash, signature_hash, to_b64, uci_hash
from vaxhub.certificates.verify import Trust, revocation_document
from vaxhub.errors import Conflict, InvalidResource, Issue, MalformedInput, NotFound
from vaxhub.hub.certificates.issuance import card_revocation_id
from vaxhub.hub.certificates.signing_keys import HubSigningKeys, SigningKeysUnavailable, card_issuer_jwks
from vaxhub.hub.certificates.tables import CertificateRow, SignerRevocationRow, TrustedCardKeyRow, TrustedSignerRow
from vaxhub.hub.storage.engine import reader, write_transaction
from vaxhub.hub.storage.store import format_instant, utcnow

CERTIFICATE = CertificateRow.__table__
SIGNER_REVOCATION = SignerRevocationRow.__table__
TRUSTED_SIGNER = TrustedSignerRow.__table__
TRUSTED_CARD_KEY = TrustedCardKeyRow.__table__
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = hashes.SHA256()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class CertificateTrust:
    def __init__(self, engine: Engine, keys: HubSigningKeys, *, country: str):
        self.engine = engine
        self.reads = reader(engine)
        self.keys = keys
        self.country = country
        self._verifier: tuple[Any, tuple, Trust] | None = None  # (key snapshot, stamp, Trust) of the last build

    # -- what we publish ---------------------------------------------------

    def _revoked_fingerprints(self) -> set[str]:
        with self.engine.connect() as conn:
            return {fp for (fp,) in conn.execute(select(SIGNER_REVOCATION.c.fingerprint))}

    def published_signers(self, now: dt.datetime):
        """Our signers valid at `now` and not withdrawn: the ones verifiers need."""
        revoked = self._revoked_fingerprints()
        return [s for s in self.keys.signers() if s.valid_at(now) and s.certificate.fingerprint(_SHA256).hex() not in revoked]

    def card_jwks(self, now: dt.datetime) -> dict[str, Any]:
        return card_issuer_jwks(self.published_signers(now))

    def trust_list(self, now: dt.datetime, card_issuer: str) -> dict[str, Any]:
        snapshot = self.keys.snapshot()
        entries = []
        for kind, certificate in [("CSCA", snapshot.csca)] + [("DSC", s.certificate) for s in self.published_signers(now)]:
            der = certificate.public_bytes(Encoding.DER)
            entries.append(
                {
                    "certificateType": kind,
                    "country": self.country,
                    "kid": _b64(dcc_kid(der)),
                    "thumbprint": certificate.fingerprint(_SHA256).hex(),
                    "notAfter": format_instant(certificate.not_valid_after_utc.replace(tzinfo=None)),
                    "rawData": _b64(der),
                }
            )
        return {
            "country": self.country,
            "generatedAt": format_instant(now.astimezone(dt.timezone.utc).replace(tzinfo=None)),
            "certificates": entries,
            "shc": {"iss": card_issuer, "jwks": self.card_jwks(now)},
        }

    # -- imported lists ----------------------------------------------------

    def import_list(self, name: str, document: bytes, *, issuer: str | None, imported_by: str) -> dict[str, Any]:
        """Replace the trust list `name` with what `document` holds (checked whole first)."""
        if not LIST_NAME.match(name):
            raise InvalidResource(f"list name {name!r}: letters, digits, '.', '_' or '-', at most 64", [Issue("bad name", "name")])
        staged = Trust()
        staged.add_document(document)
        if staged.revocation.revoked_signers or any(staged.revocation.hashes.values()) or staged.revoked_card_ids:
            raise MalformedInput("a revocation list is not a trust list")
        card_keys = []
        for entry in staged.shc_issuers:
            key_issuer = entry.issuer or (issuer.rstrip("/") if issuer else None)
            if not key_issuer:
                raise InvalidResource(
                    "SMART Health Card keys must name their issuer: add ?issuer=<iss URL> or an `issuer` member",
                    [Issue("issuer required", "issuer", "required")],
                )
            for key in entry.keys:
                if not isinstance(key.get("kid"), str) or key.get("kty") != "EC" or "d" in key:
                    raise InvalidResource("each SMART Health Card key is a public EC JWK with a kid", [Issue("bad key", "keys")])
                card_keys.append((key_issuer, key))
        signers = list(staged.signers)
        if not signers and not card_keys:
            raise InvalidResource("the trust list holds no signer certificate and no key", [Issue("empty list", None)])
        now = utcnow()
        with write_transaction(self.engine) as conn:
            conn.execute(delete(TRUSTED_SIGNER).where(TRUSTED_SIGNER.c.list_name == name))
            conn.execute(delete(TRUSTED_CARD_KEY).where(TRUSTED_CARD_KEY.c.list_name == name))
            if signers:
                conn.execute(insert(TRUSTED_SIGNER), [
                    {"list_name": name, "fingerprint": s.fingerprint, "kid": _b64(s.kid), "country": s.country or None,
                     "certificate": _b64(s.der), "imported_by": imported_by, "imported_at": now}
                    for s in signers
                ])
            if card_keys:
                unique = {(iss, key["kid"]): key for iss, key in card_keys}
                conn.execute(insert(TRUSTED_CARD_KEY), [
                    {"list_name": name, "issuer": iss, "kid": kid, "jwk": key, "imported_by": imported_by, "imported_at": now}
                    for (iss, kid), key in unique.items()
                ])
        return {"name": name, "signers": len(signers), "card_keys": len(card_keys)}

    def lists(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            signers = conn.execute(
                select(TRUSTED_SIGNER.c.list_name, func.count(), func.max(TRUSTED_SIGNER.c.imported_at)).group_by(TRUSTED_SIGNER.c.list_name)
            ).all()
            keys = conn.execute(
                select(TRUSTED_CARD_KEY.c.list_name, func.count(), func.max(TRUSTED_CARD_KEY.c.imported_at)).group_by(TRUSTED_CARD_KEY.c.list_name)
            ).all()
        out: dict[str, dict[str, Any]] = defaultdict(lambda: {"signers": 0, "card_keys": 0, "imported_at": None})
        for name, count, when in signers:
            out[name].update(signers=count, imported_at=format_instant(when))
        for name, count, when in keys:
            out[name].update(card_keys=count, imported_at=format_instant(when))
        return [{"name": name, **values} for name, values in sorted(out.items())]

    def delete_list(self, name: str) -> None:
        with write_transaction(self.engine) as conn:
            gone = conn.execute(delete(TRUSTED_SIGNER).where(TRUSTED_SIGNER.c.list_name == name)).rowcount
            gone += conn.execute(delete(TRUSTED_CARD_KEY).where(TRUSTED_CARD_KEY.c.list_name == name)).rowcount
        if not gone:
            raise NotFound(f"no trust list named {name!r}")

    # -- revocation --------------------------------------------------------

    def revoke_certificate(self, uvci: str, *, reason: str, revoked_by: str) -> dict[str, Any]:
        """Revoke every format of the certificate `uvci`; revoking twice keeps the first reason."""
        with write_transaction(self.engine) as conn:
            rows = conn.execute(select(CERTIFICATE.c.patient_id, CERTIFICATE.c.revoked).where(CERTIFICATE.c.uvci == uvci)).all()
            if not rows:
                raise NotFound(f"no certificate {uvci} was issued here")
            conn.execute(
                update(CERTIFICATE)
                .where(CERTIFICATE.c.uvci == uvci, CERTIFICATE.c.revoked.is_(False))
                .values(revoked=True, revoked_at=utcnow(), revocation_reason=f"{reason.strip()[:1000]} (by {revoked_by})")
            )
        return {"uvci": uvci, "patient": rows[0].patient_id, "revoked": True}

    def revoke_signer(self, reference: str, *, reason: str, revoked_by: str) -> dict[str, Any]:
        """Withdraw one of our signers, named by SHA-256 fingerprint (hex) or DCC kid (base64)."""
        ref = reference.strip()
        matches = [
            s for s in self.keys.signers()
            if s.certificate.fingerprint(_SHA256).hex() == ref.lower() or _b64(s.kid) == ref or s.jwk_kid == ref
        ]
        if not matches:
            raise NotFound(f"no document signer of ours is {reference!r}")
        if len(matches) > 1:
            raise Conflict(f"{reference!r} names {len(matches)} signers: give the SHA-256 fingerprint")
        signer = matches[0]
        fingerprint = signer.certificate.fingerprint(_SHA256).hex()
        with write_transaction(self.engine) as conn:
            if not conn.execute(select(SIGNER_REVOCATION.c.fingerprint).where(SIGNER_REVOCATION.c.fingerprint == fingerprint)).first():
                conn.execute(insert(SIGNER_REVOCATION).values(
                    fingerprint=fingerprint, kid=_b64(signer.kid), jwk_kid=signer.jwk_kid,
                    reason=reason.strip()[:1000], revoked_by=revoked_by, revoked_at=utcnow(),
                ))
            signed = conn.execute(select(func.count()).select_from(CERTIFICATE).where(CERTIFICATE.c.signer_fingerprint == fingerprint)).scalar_one()
        active = self.keys.active_signer().certificate.fingerprint(_SHA256).hex() == fingerprint
        return {"fingerprint": fingerprint, "kid": _b64(signer.kid), "certificates_refused": signed, "was_active": active}

    def revocation_list(self, now: dt.datetime) -> dict[str, Any]:
        """The EU-style hash list of revoked certificates, withdrawn signers and SHC revocation ids."""
        with self.engine.connect() as conn:
            revoked = conn.execute(
                select(CERTIFICATE.c.uvci, CERTIFICATE.c.format, CERTIFICATE.c.signer_kid, CERTIFICATE.c.expires_at, CERTIFICATE.c.content)
                .where(_REVOKED, CERTIFICATE.c.format.in_(("dcc", "shc")))
                .order_by(CERTIFICATE.c.uvci)
            ).all()
            signers = conn.execute(select(SIGNER_REVOCATION).order_by(SIGNER_REVOCATION.c.revoked_at)).all()
        batches: dict[tuple[str, str], dict[str, Any]] = {}
        card_ids: list[str] = []
        for row in revoked:
            if row.format == "shc":
                card_ids.append(card_revocation_id(row.uvci))
                continue
            signature = decode_hc1(row.content).signature
            for hash_type, value in (
                ("UCI", uci_hash(row.uvci)),
                ("COUNTRYCODEUCI", country_uci_hash(self.country, row.uvci)),
                ("SIGNATURE", signature_hash(signature, "ES256" if len(signature) == 64 else "PS256")),
            ):
                batch = batches.setdefault((row.signer_kid, hash_type), {
                    "kid": row.signer_kid, "country": self.country, "hashType": hash_type, "expires": None, "entries": [],
                })
                batch["entries"].append({"hash": to_b64(value)})
                expires = format_instant(row.expires_at)
                batch["expires"] = max(batch["expires"] or expires, expires)
        return revocation_document(
            country=self.country,
            batches=batches.values(),
            revoked_signers=[{"kid": s.kid, "thumbprint": s.fingerprint, "jwkKid": s.jwk_kid} for s in signers],
            card_ids=card_ids,
            generated_at=now,
        )

    # -- what verification trusts ------------------------------------------

    def verifier_trust(self) -> Trust:
        """Our signers and SHC keys (every one ever used: validity is checked at
        verification time), the imported lists, and every revocation we know.

        Built again only when one of them changed: each call reads a stamp
        (counts and latest times of the revocations and imported entries, in
        one statement) and compares our key snapshot; the same stamp and
        snapshot return the Trust built last. Any process's change is seen at
        the next verification after it commits, as before. The stamp is read
        before the build, so a change racing a build makes the next call
        build again rather than keep a Trust older than its stamp."""
        try:
            snapshot = self.keys.snapshot()
        except SigningKeysUnavailable:
            snapshot = None
        with self.reads.connect() as conn:
            stamp = tuple(tuple(row) for row in conn.execute(_TRUST_STAMP))
        cached = self._verifier
        if cached is not None and cached[0] is snapshot and cached[1] == stamp:
            return cached[2]
        trust = self._build_verifier_trust(snapshot.signers if snapshot is not None else ())
        self._verifier = (snapshot, stamp, trust)
        return trust

    def _build_verifier_trust(self, ours: tuple) -> Trust:
        trust = Trust()
        for signer in ours:
            trust.signers.add(signer.certificate, self.country)
        if ours:
            trust.add_jwks(card_issuer_jwks(list(ours)), None)  # a card our key signed is ours, whatever its iss
        with self.engine.connect() as conn:
            for der, country in conn.execute(select(TRUSTED_SIGNER.c.certificate, TRUSTED_SIGNER.c.country)):
                trust.signers.add_der(base64.b64decode(der), country)
            by_issuer: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for issuer, jwk in conn.execute(select(TRUSTED_CARD_KEY.c.issuer, TRUSTED_CARD_KEY.c.jwk)):
                by_issuer[issuer].append(jwk)
            for uvci, fmt in conn.execute(
                select(CERTIFICATE.c.uvci, CERTIFICATE.c.format).where(_REVOKED, CERTIFICATE.c.format.in_(("dcc", "shc")))
            ):
                if fmt == "dcc":
                    trust.revocation.revoke_uvci(uvci, self.country)
                else:
                    trust.revoked_card_ids.add(card_revocation_id(uvci))
            for fingerprint, jwk_kid in conn.execute(select(SIGNER_REVOCATION.c.fingerprint, SIGNER_REVOCATION.c.jwk_kid)):
                trust.revocation.revoked_signers.add(fingerprint)
                if jwk_kid:
                    trust.revoked_card_kids.add(jwk_kid)
        for issuer, keys in by_issuer.items():
            trust.add_jwks({"keys": keys}, issuer)
        return trust


# Written as the partial index `ix_certificate_revoked` is, so the planner uses it.
_REVOKED = CERTIFICATE.c.revoked == true()
# What the verifier's Trust is built from changes only by rows added (a
# revocation, an imported entry) or removed (a deleted list): a count and the
# latest time per table notice both.
_TRUST_STAMP = union_all(
    select(literal("revoked certificates"), func.count(), func.max(CERTIFICATE.c.revoked_at)).where(_REVOKED),
    select(literal("revoked signers"), func.count(), func.max(SIGNER_REVOCATION.c.revoked_at)),
    select(literal("trusted signers"), func.count(), func.max(TRUSTED_SIGNER.c.imported_at)),
    select(literal("trusted card keys"), func.count(), func.max(TRUSTED_CARD_KEY.c.imported_at)),
)

"""What the hub adds to verifying a certificate: `CertificateTrust.verifier_trust()`
(our signers, imported lists, every revocation) on a store that has issued
many certificates, against verifying with a Trust already in hand.

A scratch PostgreSQL database gets `--issued` certificate rows (a few of them
revoked) and a key store; an HC1 signed by the hub's key is then verified
`--verifications` times each way, alternating in blocks:

- hub: `verify_text(hc1, trust.verifier_trust())`, as `POST /certificates/verify` does;
- floor: `verify_text(hc1, trust)` with one Trust built before.

Figures are CPU per verification in this process (the database's share is
the wall-clock column minus it), and hub/floor.

    .venv/bin/python bench/verifier_trust.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from vaxhub.certificates.dcc import DccPerson, DccVaccination, issue_dcc, new_uvci  # noqa: E402
from vaxhub.certificates.verify import verify_text  # noqa: E402
from vaxhub.hub.certificates.signing_keys import HubSigningKeys  # noqa: E402
from vaxhub.hub.certificates.tables import CertificateRow  # noqa: E402
from vaxhub.hub.certificates.trust_store import CertificateTrust  # noqa: E402
from vaxhub.hub.storage.bulk import bulk_insert  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402

console = Console(width=120)
NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _rows(count: int, revoked_every: int) -> list[dict]:
    fingerprint = "0" * 64  # no signer of the trust: these rows only need to be there
    return [
        {"id": f"c{n:012d}", "uvci": f"URN:UVCI:01:VN:BENCH{n:010d}", "patient_id": f"p{n}", "format": ("dcc", "shc", "ddcc")[n % 3],
         "signer_kid": "bench", "signer_fingerprint": fingerprint, "issued_at": NOW, "expires_at": NOW + dt.timedelta(days=365),
         "status": "green", "dose_number": 2, "total_doses": 2, "content": "HC1:bench", "details": {}, "issued_by": "bench",
         "identity_override": None, "revoked": n % revoked_every == 0, "revoked_at": NOW if n % revoked_every == 0 else None,
         "revocation_reason": "bench" if n % revoked_every == 0 else None}
        for n in range(count)
    ]


def _cpu_per_call(call, count: int) -> tuple[float, float]:  # noqa: ANN001 - a callable
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        call()
    return (time.process_time() - cpu0) / count * 1000, (time.perf_counter() - wall0) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True, help="an admin URL; a scratch database is created beside it")
    parser.add_argument("--issued", type=int, default=100_000, help="certificate rows in the store")
    parser.add_argument("--revoked-every", type=int, default=5000, help="one certificate in this many is revoked")
    parser.add_argument("--verifications", type=int, default=300, help="verifications per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_trust")
    engine = make_engine(url)
    try:
        upgrade(engine)
        with tempfile.TemporaryDirectory() as keys_dir:
            keys = HubSigningKeys(Path(keys_dir), b"bench passphrase", country="VN", organisation="Bench", create_missing=True)
            signer = keys.active_signer()
            with engine.begin() as conn:
                bulk_insert(conn, CertificateRow.__table__, _rows(args.issued, args.revoked_every))
                conn.exec_driver_sql("ANALYZE certificate")
            dose = DccVaccination("1119349007", "EU/1/20/1507", "ORG-100031184", 2, 2, dt.date(2021, 8, 23), "Bộ Y tế", new_uvci("VN"), country="VN")
            hc1 = issue_dcc(DccPerson("Nguyễn", "Văn An", "1990-05-04"), dose, signer, issued_at=dt.datetime.now(dt.timezone.utc), issuer_country="VN")
            trust = CertificateTrust(engine, keys, country="VN")
            in_hand = trust.verifier_trust()
            for check in (verify_text(hc1, in_hand), verify_text(hc1, trust.verifier_trust())):
                if not check.valid:
                    raise SystemExit(f"the bench's certificate does not verify: {check.errors}")
            hub, floor = [], []
            for _ in range(args.blocks):
                hub.append(_cpu_per_call(lambda: verify_text(hc1, trust.verifier_trust()), args.verifications))
                floor.append(_cpu_per_call(lambda: verify_text(hc1, in_hand), args.verifications))
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=args.keep, say=console.print)

    table = Table(title=f"one HC1 verified; {args.issued:,} certificates issued, one in {args.revoked_every:,} revoked; median of {args.blocks} blocks")
    for column in ("measure", "CPU ms per verification", "wall ms per verification"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    hub_cpu, floor_cpu = statistics.median(c for c, _ in hub), statistics.median(c for c, _ in floor)
    table.add_row("hub: verify_text(hc1, verifier_trust())", f"{hub_cpu:.3f}", f"{statistics.median(w for _, w in hub):.3f}")
    table.add_row("floor: verify_text(hc1, a Trust in hand)", f"{floor_cpu:.3f}", f"{statistics.median(w for _, w in floor):.3f}")
    table.add_row("hub / floor (CPU)", f"{hub_cpu / floor_cpu:.2f}", "")
    console.print(table)


if __name__ == "__main__":
    main()

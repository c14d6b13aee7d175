"""Certificate benchmark: issuing and verifying in one process, beside the
raw ECDSA P-256 sign and verify rates measured in the same run.

Each certificate is for a different person of a synthetic Vietnamese
population (names, birth dates, doses), with a fresh UVCI:

- HC1 string: hcert JSON → CWT → COSE_Sign1 ES256 → zlib → base45 (HCERT);
- HC1 + PNG: the same, and its QR code drawn as a PNG;
- SHC: minimal FHIR Bundle → credential → raw DEFLATE → JWS ES256;
- all three formats as the hub signs them per issuance (DCC, SHC, DDCC Bundle);
- verified/s: `vaxhub.certificates.verify.verify_text` on HC1 and on shc:/ texts.

The floor is the raw `cryptography` ECDSA P-256 (SHA-256) sign and verify of
a message the size of a DCC Sig_structure: every certificate costs one of
each. Issuing the HC1 string must keep at least 40% of the raw sign rate.

    .venv/bin/python bench/certificates.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import base45
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vaxhub.certificates import dcc, shc  # noqa: E402
from vaxhub.certificates.keys import Signer, create_csca, create_document_signer  # noqa: E402
from vaxhub.certificates.verify import Trust, verify_text  # noqa: E402
from vaxhub.fhir import synthetic  # noqa: E402
from vaxhub.hub.certificates.doses import Dose, VaccinationCourse  # noqa: E402
from vaxhub.hub.certificates.issuance import Holder, IssuerProfile, sign_certificates  # noqa: E402

console = Console(width=120)
FLOOR = 0.40
ISSUER = "Ministry of Health of Viet Nam"
CARD_ISSUER = "https://vaxhub.example.vn/shc"


def _block(work: Callable[[int], object], start: int, count: int, inputs: int) -> float:
    """CPU seconds for `count` calls of `work` (CPU time: other processes' load
    on a shared machine then slows the floor and the figure alike)."""
    begin = time.process_time()
    for i in range(start, start + count):
        work(i % inputs)
    return time.process_time() - begin


def paired_rate(work: Callable[[int], object], floor: Callable[[int], object], seconds: float, inputs: int, block: int = 100) -> tuple[float, float]:
    """Calls per CPU second of `work` and its ratio to `floor`, measured in
    alternating blocks for about `seconds`: the median of the blocks' rates
    and of their ratios, so a burst of load elsewhere cannot favour either."""
    _block(work, 0, min(block, inputs), inputs)
    _block(floor, 0, min(block, inputs), inputs)
    rates, ratios, spent, done = [], [], 0.0, 0
    while spent < seconds or len(rates) < 5:
        w = _block(work, done, block, inputs)
        f = _block(floor, done, block, inputs)
        rates.append(block / w)
        ratios.append(f / w)
        spent += w + f
        done += block
    return statistics.median(rates), statistics.median(ratios)


def people(count: int) -> list[tuple[Holder, VaccinationCourse]]:
    population = synthetic.generate_population(count * 2, seed=2021)
    out = []
    for person in population.people:
        doses = population.doses_of(person)
        if not doses:
            continue
        course = VaccinationCourse(
            tuple(Dose(d.number, person.person_id, d.dose_id, d.vaccine, d.occurred, d.lot_number, d.site.name) for d in doses),
            doses[0].vaccine.primary_doses,
        )
        holder = Holder(person.family, [*person.middle, person.given], person.birth_date_text, person.cccd, person.sex)
        out.append((holder, course))
        if len(out) == count:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="Measuring time per figure.")
    parser.add_argument("--people", type=int, default=2000)
    args = parser.parse_args()

    now = dt.datetime.now(dt.timezone.utc)
    key, cert = create_document_signer(*create_csca("VN", ISSUER, now=now - dt.timedelta(days=1)), now=now - dt.timedelta(hours=1))
    signer = Signer(cert, key)
    trust = Trust()
    trust.signers.add(cert, "VN")
    trust.add_jwks(shc.issuer_jwks([signer]), CARD_ISSUER)
    profile = IssuerProfile("VN", ISSUER, 365, CARD_ISSUER)
    cohort = people(args.people)
    n = len(cohort)
    console.print(f"{n} synthetic people; {os.cpu_count()} CPUs; about {args.seconds:.1f} CPU seconds per figure")

    message = os.urandom(360)  # about a DCC Sig_structure
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()

    def raw_sign(_i: int) -> bytes:
        return key.sign(message, ec.ECDSA(hashes.SHA256()))

    def raw_verify(_i: int) -> None:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    def hc1_of(i: int) -> str:
        holder, course = cohort[i]
        d = course.latest
        return dcc.issue_dcc(
            dcc.DccPerson(holder.family, " ".join(holder.given), holder.birth_date),
            dcc.DccVaccination(d.vaccine.dcc_vp, d.vaccine.dcc_mp, d.vaccine.dcc_ma, course.dose_number, course.total_doses,
                               d.date, ISSUER, dcc.new_uvci("VN")),
            signer, issued_at=now,
        )

    def card_of(i: int) -> str:
        holder, course = cohort[i]
        return shc.issue_card(
            shc.ShcPatient(holder.family, holder.given, holder.birth_date),
            [shc.ShcImmunization(d.vaccine.cvx or "", d.date, d.place or ISSUER, d.lot) for d in course.doses],
            signer, issuer=CARD_ISSUER, issued_at=now,
        )

    hc1_texts = [hc1_of(i) for i in range(n)]
    card_texts = [shc.encode_numeric(card_of(i)) for i in range(n)]
    assert verify_text(hc1_texts[0], trust, now=now).valid and verify_text(card_texts[0], trust, now=now).valid
    figures = [
        ("issue EU DCC: HC1 string", paired_rate(hc1_of, raw_sign, args.seconds, n), "sign"),
        ("issue EU DCC: HC1 + QR PNG", paired_rate(lambda i: dcc.render_hc1_png(hc1_of(i)), raw_sign, args.seconds, n, block=5), "sign"),
        ("issue SMART Health Card (JWS)", paired_rate(card_of, raw_sign, args.seconds, n), "sign"),
        ("issue DCC + SHC + DDCC (hub's signing step)", paired_rate(
            lambda i: sign_certificates(*cohort[i], signer, profile, uvci=dcc.new_uvci("VN"), issued=now, expires=now + dt.timedelta(days=365)),
            raw_sign, args.seconds, n, block=20), "sign"),
        ("verify HC1 (verify_text)", paired_rate(lambda i: verify_text(hc1_texts[i], trust, now=now), raw_verify, args.seconds, n), "verify"),
        ("verify shc:/ (verify_text)", paired_rate(lambda i: verify_text(card_texts[i], trust, now=now), raw_verify, args.seconds, n, block=20), "verify"),
    ]
    sign_rate = paired_rate(raw_sign, raw_sign, args.seconds / 2, n)[0]
    verify_rate = paired_rate(raw_verify, raw_verify, args.seconds / 2, n)[0]
    coses = [zlib.decompress(base45.b45decode(t[4:])) for t in hc1_texts]
    console.print(
        f"COSE_Sign1 {statistics.mean(map(len, coses)):.0f} bytes on average; zlib level 9 "
        f"{statistics.mean(len(zlib.compress(c, 9)) for c in coses):.0f}, stored blocks (as issued) "
        f"{statistics.mean(len(base45.b45decode(t[4:])) for t in hc1_texts):.0f}"
    )
    table = Table("what", "per CPU second", "ratio to raw ECDSA", title="certificates, one process (medians of alternating blocks)")
    table.add_row("raw ECDSA P-256 sign (cryptography)", f"{sign_rate:,.0f}", "1.00 (floor)")
    table.add_row("raw ECDSA P-256 verify (cryptography)", f"{verify_rate:,.0f}", "1.00 (floor)")
    for label, (value, ratio_to_floor), _floor in figures:
        table.add_row(label, f"{value:,.0f}", f"{ratio_to_floor:.2f}")
    console.print(table)
    ratio = figures[0][1][1]
    verdict = "[green]meets[/green]" if ratio >= FLOOR else "[red]below[/red]"
    console.print(f"HC1 issuing keeps {ratio:.0%} of the raw sign rate: {verdict} the {FLOOR:.0%} floor")
    return 0 if ratio >= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())

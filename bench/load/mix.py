"""The traffic mix of the load test: how a target rate of Immunizations
written per second becomes requests of each kind, and how the users are shared
out among the kinds.

The figures describe a national campaign day at its peak:

- **Doses arrive mostly in FHIR transaction Bundles** from site systems that
  upload every few minutes (`DOSES_PER_BUNDLE` doses, each with its
  Patient), and the rest as one HL7 v2 VXU^V04 per dose from hospital
  information systems that send as they record.
- **New people**: the share of doses that are someone's first defaults to the
  synthetic population's own history (first doses among all doses, about
  0.38), i.e. most doses are second doses and boosters of people the hub
  already knows. It matters because the registry verification and the master
  patient index link work scale with new Patients, not with doses: a known
  person's conditional create finds the stored Patient and queues nothing.
- **Reads are light beside writes**: the health-book app pulls a record or a
  certificate for one dose in five written (people look at their new dose),
  and checkers verify a QR code for one dose in ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BUNDLE_SHARE = 0.9  # of the doses; the rest come as VXU
DOSES_PER_BUNDLE = 20
APP_REQUESTS_PER_DOSE = 0.2
VERIFICATIONS_PER_DOSE = 0.1
# Share of the concurrent users per kind when a total is asked for (`--users`).
USER_SHARE = {"SiteBundleUser": 0.45, "VxuSenderUser": 0.2, "HealthBookUser": 0.2, "VerifierUser": 0.15}
# Otherwise each kind gets the users it needs to send its planned rate while
# answers take up to this long: a locust user waits for each answer, so with
# too few users a slow hub is simply offered less of that kind, and its reads
# starve without any error showing (the app's millions of phones do not wait
# for one another).
ANSWER_SECONDS = 3.0
# What the app downloads: the QR text it draws itself most often, the QR image
# and the PDF (rendered by the hub on every download) less.
DOWNLOADS = {"dcc.txt": 4, "shc.txt": 2, "dcc.png": 2, "certificate.pdf": 1}


@dataclass(frozen=True)
class Offered:
    """Requests per second of each user kind, and users of each kind."""

    rates: dict[str, float]
    users: dict[str, int]

    def pacing(self) -> dict[str, float]:
        """Tasks per second per user (`bench/load/pacing.py`)."""
        return {kind: self.rates[kind] / self.users[kind] for kind in self.rates}


def offered_load(immunizations_per_second: float, users: int | None = None) -> Offered:
    rates = {
        "SiteBundleUser": immunizations_per_second * BUNDLE_SHARE / DOSES_PER_BUNDLE,
        "VxuSenderUser": immunizations_per_second * (1 - BUNDLE_SHARE),
        "HealthBookUser": immunizations_per_second * APP_REQUESTS_PER_DOSE,
        "VerifierUser": immunizations_per_second * VERIFICATIONS_PER_DOSE,
    }
    if users is None:
        return Offered(rates, {kind: max(1, math.ceil(rate * ANSWER_SECONDS)) for kind, rate in rates.items()})
    if users < len(rates):
        raise ValueError(f"at least {len(rates)} users: one of each kind")
    split = {kind: max(1, int(users * share)) for kind, share in USER_SHARE.items()}
    split["SiteBundleUser"] += users - sum(split.values())  # what rounding left over
    return Offered(rates, split)

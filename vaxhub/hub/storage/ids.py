"""Identifiers for new rows that sort by creation time: UUID version 7
(RFC 9562): 48 bits of Unix milliseconds, the version, then 74 random bits.

A random (version 4) id sends every insert to a random leaf of each index
keyed on it: the resource and version keys, every search-index row's key,
the claim owners, the AuditEvent ids. Once those indexes outgrow the
database's buffer cache, each insert reads a page back and, after every
checkpoint, writes a full copy of it to the WAL. Ids that grow with time
land on the right-hand pages, which stay cached and change many times
between checkpoints. The random part keeps ids unguessable and unique
across processes; the time part says when a record was created, which its
`meta.lastUpdated` at version 1 says anyway. (Python 3.14's `uuid.uuid7`
makes the same layout.)
"""

from __future__ import annotations

import os
import time
import uuid

_RANDOM_B_BITS = 62


def _uuid7_int() -> int:
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    rand_a = (random_bits >> _RANDOM_B_BITS) & 0xFFF
    rand_b = random_bits & ((1 << _RANDOM_B_BITS) - 1)
    return (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << _RANDOM_B_BITS | rand_b


def time_ordered_id() -> str:
    """A UUIDv7 in the usual 8-4-4-4-12 form (a FHIR logical id)."""
    return str(uuid.UUID(int=_uuid7_int()))


def time_ordered_hex() -> str:
    """The same, as 32 hex digits (AuditEvent ids)."""
    return f"{_uuid7_int():032x}"

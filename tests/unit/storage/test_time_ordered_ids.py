"""New rows' ids are UUID version 7: time first, so indexes keyed on them grow at one end."""

from __future__ import annotations

import re
import time
import uuid

from vaxhub.hub.storage.ids import time_ordered_hex, time_ordered_id

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def test_the_layout_is_rfc_9562_version_7():
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(time_ordered_id())
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after  # the first 48 bits are the Unix milliseconds
    assert FHIR_ID.fullmatch(str(made))


def test_ids_sort_by_creation_time_and_do_not_repeat():
    batches = []
    for _ in range(3):
        batches.append([time_ordered_id() for _ in range(2000)])
        time.sleep(0.002)
    for earlier, later in zip(batches, batches[1:]):
        assert max(earlier) < min(later)  # a later millisecond sorts after every earlier id
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    # Within one millisecond the random part decides: ids are not guessable from the time.
    assert len({i[14:18] for i in batches[0]}) > 100


def test_the_hex_form_is_the_same_layout():
    made = uuid.UUID(hex=time_ordered_hex())
    assert made.version == 7 and len(made.hex) == 32

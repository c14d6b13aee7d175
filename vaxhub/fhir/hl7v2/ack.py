"""ACK^V04 messages (HL7 v2.5.1 §2.14.1 original acknowledgement; CDC IG §6.2,
ACK message).

MSA-1 is AA (accepted, stored or already stored), AE (an error in the content:
nothing stored) or AR (rejected: not a VXU we accept, or the hub could not
process it now; the sender may retry). Each finding becomes an ERR segment:
ERR-2 location (ERL), ERR-3 HL7 table 0357 code, ERR-4 severity (table 0516),
ERR-8 the message for a person.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Literal

from .er7 import TABLE_0357, Hl7Finding

AckCode = Literal["AA", "AE", "AR"]
_VIET_NAM = timezone(timedelta(hours=7))
RECEIVING_APPLICATION = "VAXHUB"
RECEIVING_FACILITY = "MOH"


def escape(text: str) -> str:
    """ER7 escape sequences (§2.7) for the default delimiters; line breaks,
    which would end a segment, become spaces."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\").replace("~", "\\R\\")
    return out.replace("\r", " ").replace("\n", " ")


def build_ack(
    code: AckCode,
    *,
    control_id: str = "",
    sending_application: str = "",
    sending_facility: str = "",
    processing_id: str = "P",
    version: str = "2.5.1",
    findings: list[Hl7Finding] | None = None,
    now: datetime | None = None,
    ack_control_id: str | None = None,
) -> str:
    """An ACK^V04 answering the message identified by `control_id`; the
    sender's application and facility become the ACK's receiver (MSH-5/6)."""
    moment = (now or datetime.now(_VIET_NAM)).astimezone(_VIET_NAM)
    stamp = moment.strftime("%Y%m%d%H%M%S") + moment.strftime("%z")
    msh = [
        "MSH",
        "^~\\&",
        RECEIVING_APPLICATION,
        RECEIVING_FACILITY,
        escape(sending_application),
        escape(sending_facility),
        stamp,
        "",
        "ACK^V04^ACK",
        ack_control_id or uuid.uuid4().hex[:20],
        escape(processing_id) or "P",
        escape(version) or "2.5.1",
    ]
    segments = ["|".join(msh), f"MSA|{code}|{escape(control_id)}"]
    for finding in findings or []:
        location = "^".join(escape(part) for part in finding.location.er7()) if finding.location else ""
        error = f"{finding.code}^{TABLE_0357.get(finding.code, '')}^HL70357"
        segments.append(f"ERR||{location}|{error}|{finding.severity}||||{escape(finding.message)}")
    return "\r".join(segments) + "\r"

"""The MSH segment of an incoming VXU and the checks that decide AR.

CDC HL7 v2.5.1 Implementation Guide for Immunization Messaging (R1.5), §6.1
(MSH) and §8 (acknowledgement): a message whose type, event, processing id or
version the receiver does not support is rejected with AR; so is one without
the sending facility or control id needed to acknowledge and deduplicate it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .er7 import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    Message,
    reject,
)

SUPPORTED_VERSIONS = ("2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8")
PROCESSING_IDS = ("P", "T", "D")  # HL7 table 0103
_SITE_CODE = re.compile(r"^[A-Za-z0-9.\-]{1,64}$")


@dataclass(frozen=True)
class MessageHeader:
    sending_application: str
    sending_facility: str  # MSH-4.1, the site code that scopes local identifiers
    receiving_application: str
    receiving_facility: str
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12
    message_type: str
    event: str

    @property
    def sender(self) -> str:
        """Who numbered MSH-10: control ids are unique per sending application and facility."""
        return f"{self.sending_application}|{self.sending_facility}"


def header_fields(message: Message) -> dict[str, str]:
    """MSH values an ACK echoes, read leniently (for answering even a rejected message)."""
    msh = message.segments[0]
    return {
        "sending_application": msh.value(3),
        "sending_facility": msh.value(4),
        "receiving_application": msh.value(5),
        "receiving_facility": msh.value(6),
        "control_id": msh.value(10),
        "processing_id": msh.value(11) or "P",
        "version": msh.value(12) or "2.5.1",
    }


def read_header(message: Message) -> MessageHeader:
    """MSH of a VXU^V04 that this hub accepts; raises `Hl7MessageError` (AR) otherwise."""
    msh = message.segments[0]
    fields = header_fields(message)
    message_type, event = msh.value(9, 1).upper(), msh.value(9, 2).upper()
    if not message_type:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-9 message type is required", msh.where(9, 1))
    if message_type != "VXU":
        raise reject(UNSUPPORTED_MESSAGE_TYPE, f"Message type {message_type} is not accepted; send VXU^V04", msh.where(9, 1))
    if event != "V04":
        raise reject(UNSUPPORTED_EVENT_CODE, f"Event {event or '(none)'} is not accepted; send VXU^V04", msh.where(9, 2))
    if not fields["control_id"]:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-10 message control id is required", msh.where(10))
    if len(fields["control_id"]) > 199:
        raise reject(DATA_TYPE_ERROR, "MSH-10 is longer than 199 characters", msh.where(10))
    if msh.value(11) and msh.value(11) not in PROCESSING_IDS:
        raise reject(UNSUPPORTED_PROCESSING_ID, f"Processing id {msh.value(11)!r} is not P, T or D", msh.where(11))
    if msh.value(12) and msh.value(12) not in SUPPORTED_VERSIONS:
        raise reject(UNSUPPORTED_VERSION_ID, f"Version {msh.value(12)!r} is not supported ({', '.join(SUPPORTED_VERSIONS)})", msh.where(12))
    facility = fields["sending_facility"]
    if not facility:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-4 sending facility (the site code) is required", msh.where(4, 1))
    if not _SITE_CODE.match(facility):
        raise reject(DATA_TYPE_ERROR, f"MSH-4.1 {facility[:40]!r} is not a site code (letters, digits, '.', '-')", msh.where(4, 1))
    return MessageHeader(
        sending_application=fields["sending_application"][:100],
        sending_facility=facility,
        receiving_application=fields["receiving_application"],
        receiving_facility=fields["receiving_facility"],
        control_id=fields["control_id"],
        processing_id=fields["processing_id"],
        version=fields["version"],
        message_type=message_type,
        event=event,
    )


"""One VXU from text to a Bundle, and the ACK for any outcome: the whole pure
half of HL7 v2 ingestion (the hub stores the Bundle and sends the ACK)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .ack import AckCode, build_ack
from .er7 import Hl7Finding, Hl7MessageError, parse_er7
from .header import MessageHeader, header_fields, read_header
from .vxu import VxuTranslation, map_vxu


@dataclass
class ReceivedVxu:
    header: MessageHeader
    translation: VxuTranslation


def translate_vxu(text: str, *, today: date | None = None) -> ReceivedVxu:
    """Parse, check and map a VXU^V04. Raises `Hl7MessageError` whose `echo`
    holds the MSH values the ACK must repeat (empty when MSH was unreadable)."""
    echo: dict[str, str] = {}
    try:
        message = parse_er7(text)
        echo = header_fields(message)
        header = read_header(message)
        return ReceivedVxu(header, map_vxu(message, header, today=today))
    except Hl7MessageError as exc:
        exc.echo = echo  # type: ignore[attr-defined]
        raise


def ack_for(code: AckCode, echo: dict[str, str], findings: list[Hl7Finding] | None = None, *, now: datetime | None = None) -> str:
    return build_ack(
        code,
        control_id=echo.get("control_id", ""),
        sending_application=echo.get("sending_application", ""),
        sending_facility=echo.get("sending_facility", ""),
        processing_id=echo.get("processing_id", "P"),
        version=echo.get("version", "2.5.1"),
        findings=findings,
        now=now,
    )


def ack_for_error(exc: Hl7MessageError, *, now: datetime | None = None) -> str:
    return ack_for(exc.ack_code, getattr(exc, "echo", {}), exc.findings, now=now)


def ack_for_header(header: MessageHeader, code: AckCode, findings: list[Hl7Finding] | None = None, *, now: datetime | None = None) -> str:
    echo = {
        "control_id": header.control_id,
        "sending_application": header.sending_application,
        "sending_facility": header.sending_facility,
        "processing_id": header.processing_id,
        "version": header.version,
    }
    return ack_for(code, echo, findings, now=now)

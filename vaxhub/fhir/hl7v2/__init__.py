"""HL7 v2 VXU^V04 ingestion, the pure half: parse ER7, map to a FHIR
transaction Bundle, build the ACK. No I/O; the hub stores the Bundle
(`vaxhub.hub.ingest.vxu`)."""

from .ack import build_ack
from .er7 import TABLE_0357, Hl7Finding, Hl7Location, Hl7MessageError, Message, Segment, parse_er7
from .header import MessageHeader, read_header
from .translate import ReceivedVxu, ack_for, ack_for_error, ack_for_header, translate_vxu
from .vxu import VxuTranslation, fhir_datetime, map_vxu, widen_patient_match

__all__ = [
    "TABLE_0357",
    "Hl7Finding",
    "Hl7Location",
    "Hl7MessageError",
    "Message",
    "MessageHeader",
    "ReceivedVxu",
    "Segment",
    "VxuTranslation",
    "ack_for",
    "ack_for_error",
    "ack_for_header",
    "build_ack",
    "fhir_datetime",
    "map_vxu",
    "parse_er7",
    "read_header",
    "translate_vxu",
    "widen_patient_match",
]

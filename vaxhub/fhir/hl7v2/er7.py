"""HL7 v2 ER7 ("pipe and hat") messages read into plain Python lists.

Delimiters come from MSH-1/MSH-2 (HL7 v2.5.1 Ch. 2, §2.5); escape sequences
(§2.7) are undone by python-hl7's `unescape`. The split itself is plain
`str.split`: python-hl7's `parse` builds a container object per component and
costs about 3 ms for a VXU, ten times the rest of the translation. Each
segment becomes `fields[n] -> repetitions -> components`, always lists of
strings, and a field is addressed by its HL7 position (`PID-3`, `MSH-10`: for
MSH, field 1 is the field separator itself, so positions match the standard).

Problems are reported as `Hl7Finding`s carrying an HL7 table 0357 code and an
error location (segment, sequence, field, component), which is what an ACK's
ERR segment needs (v2.5.1 §2.15.5, ERR-2 and ERR-3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import hl7

from vaxhub.errors import InputError, Issue

# HL7 table 0357, message error condition codes (v2.5.1 §2.15.5.3).
ACCEPTED = "0"
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY_IDENTIFIER = "205"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"

TABLE_0357 = {
    ACCEPTED: "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_RECORD_LOCKED: "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

Severity = Literal["E", "W", "I"]  # HL7 table 0516

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
MAX_MESSAGE_CHARS = 1_000_000


@dataclass(frozen=True)
class Hl7Location:
    """ERR-2 error location (ERL): segment id, its sequence in the message
    (1 for the first PID), field position and component, 1-based."""

    segment: str
    sequence: int = 1
    field: int | None = None
    component: int | None = None

    def er7(self) -> list[str]:
        """ERL components: segment^sequence^field^field repetition^component."""
        out = [self.segment, str(self.sequence)]
        if self.field is not None:
            out += [str(self.field), "1"]
            if self.component is not None:
                out.append(str(self.component))
        return out

    def __str__(self) -> str:
        text = self.segment if self.sequence == 1 else f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            text += f"-{self.field}"
            if self.component is not None:
                text += f".{self.component}"
        return text


@dataclass(frozen=True)
class Hl7Finding:
    """One problem in a message, as one ERR segment will report it."""

    code: str  # table 0357
    message: str
    location: Hl7Location | None = None
    severity: Severity = "E"

    def issue(self) -> Issue:
        return Issue(
            self.message,
            str(self.location) if self.location else None,
            "invalid" if self.severity == "E" else "informational",
            "error" if self.severity == "E" else "warning",
        )


class Hl7MessageError(InputError):
    """A message that is refused: `ack_code` is AR (header, framing, not v2 at
    all) or AE (content), and `findings` become the ACK's ERR segments."""

    default_code = "invalid"

    def __init__(self, findings: list[Hl7Finding], *, ack_code: Literal["AE", "AR"] = "AE"):
        first = findings[0]
        super().__init__(f"{first.location or 'message'}: {first.message}", [f.issue() for f in findings])
        self.findings = findings
        self.ack_code = ack_code


def reject(code: str, message: str, location: Hl7Location | None = None) -> Hl7MessageError:
    return Hl7MessageError([Hl7Finding(code, message, location)], ack_code="AR")


@dataclass
class Segment:
    """One segment: `fields[n]` is field n as repetitions of components."""

    name: str
    sequence: int  # 1 for the first segment with this name
    fields: list[list[list[str]]] = field(default_factory=list)

    def repetitions(self, position: int) -> list[list[str]]:
        """Every non-empty repetition of a field."""
        if position >= len(self.fields):
            return []
        return [rep for rep in self.fields[position] if any(c.strip() for c in rep)]

    def components(self, position: int) -> list[str]:
        """The first repetition's components (empty list when the field is empty)."""
        reps = self.repetitions(position)
        return reps[0] if reps else []

    def value(self, position: int, component: int = 1) -> str:
        """One component of the first repetition, stripped; "" when absent."""
        comps = self.components(position)
        return comps[component - 1].strip() if len(comps) >= component else ""

    def where(self, position: int | None = None, component: int | None = None) -> Hl7Location:
        return Hl7Location(self.name, self.sequence, position, component)


@dataclass
class Message:
    segments: list[Segment]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


@lru_cache(maxsize=16)
def _unescaper(delimiters: str) -> hl7.Message:
    """A python-hl7 message carrying only these delimiters, for its `unescape`."""
    return hl7.parse(f"MSH{delimiters}|")


def _field(raw: str, repetition: str, component: str, subcomponent: str, escape: str, unescaper: hl7.Message) -> list[list[str]]:
    reps = []
    for rep in raw.split(repetition):
        comps = []
        for comp in rep.split(component):
            # Subcomponents: the first carries the value in every VXU data type.
            value = comp.split(subcomponent, 1)[0]
            comps.append(unescaper.unescape(value) if escape in value else value)
        reps.append(comps)
    return reps


def normalise_line_breaks(text: str) -> str:
    """Segments end in CR (§2.5.2); senders also use LF or CRLF."""
    return "\r".join(line for line in re.split(r"\r\n|\n|\r", text) if line.strip())


def parse_er7(text: str) -> Message:
    """Parse ER7 text; raises `Hl7MessageError` (AR) when it is not a v2 message."""
    if not isinstance(text, str) or not text.strip():
        raise reject(REQUIRED_FIELD_MISSING, "The message is empty", Hl7Location("MSH"))
    if len(text) > MAX_MESSAGE_CHARS:
        raise reject(APPLICATION_INTERNAL_ERROR, f"The message is longer than {MAX_MESSAGE_CHARS} characters")
    cleaned = normalise_line_breaks(text.lstrip("\ufeff\x0b").rstrip("\x1c"))
    if not cleaned.startswith("MSH") or len(cleaned) < 8:
        raise reject(SEGMENT_SEQUENCE_ERROR, "The message must start with an MSH segment", Hl7Location("MSH"))
    separator, encoding = cleaned[3], cleaned[4:8]
    if separator.isalnum() or separator.isspace() or len(set(encoding + separator)) != 5 or any(c.isalnum() or c.isspace() for c in encoding):
        raise reject(DATA_TYPE_ERROR, "MSH-1/MSH-2 do not hold five distinct delimiter characters", Hl7Location("MSH", 1, 2))
    component, repetition, escape, subcomponent = encoding
    try:
        unescaper = _unescaper(separator + encoding)
    except Exception as exc:  # python-hl7 refuses some delimiter sets
        raise reject(DATA_TYPE_ERROR, f"MSH-2 encoding characters cannot be used: {exc}", Hl7Location("MSH", 1, 2)) from None
    segments: list[Segment] = []
    counts: dict[str, int] = {}
    for index, line in enumerate(cleaned.split("\r")):
        raw = line.split(separator)
        name = raw[0].strip()
        if not _SEGMENT_ID.match(name):
            raise reject(SEGMENT_SEQUENCE_ERROR, f"Segment {index + 1} has no valid segment id ({name[:10]!r})")
        counts[name] = counts.get(name, 0) + 1
        if name == "MSH":
            # MSH-1 is the field separator itself and MSH-2 the encoding characters: never split.
            fields = [[[name]], [[separator]], [[encoding]]]
            rest = raw[2:]
        else:
            fields = [[[name]]]
            rest = raw[1:]
        try:
            fields += [_field(f, repetition, component, subcomponent, escape, unescaper) for f in rest]
        except Exception as exc:  # a malformed escape sequence
            raise reject(DATA_TYPE_ERROR, f"Segment {name} has an unreadable escape sequence: {exc}", Hl7Location(name, counts[name])) from None
        segments.append(Segment(name, counts[name], fields))
    if segments[0].name != "MSH" or counts.get("MSH", 0) != 1:
        raise reject(SEGMENT_SEQUENCE_ERROR, "A message has exactly one MSH segment, first", Hl7Location("MSH"))
    return Message(segments)

"""The kick-off request's parameters (Bulk Data IG 2.0.0, "Query Parameters").

GET kick-offs carry them in the query string, POST kick-offs in a FHIR
Parameters body. Parameters the hub does not support (`_elements`,
`_typeFilter`, `includeAssociatedData`, anything unknown) are refused with
400, unless the client sent `Prefer: handling=lenient`: then they are
ignored and each one is reported in the export's error file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vaxhub.errors import Issue, MalformedInput, UnsupportedRequest
from vaxhub.fhir.resources import SUPPORTED_TYPES
from vaxhub.fhir.search_params import PATIENT_COMPARTMENT, date_range, parse_reference

SYSTEM, PATIENT, GROUP = "system", "patient", "group"
# The IG's required format and the abbreviations servers must accept; an
# unencoded "+" in a query string arrives as a space.
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson", "application/fhir ndjson"})
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class ExportRequest:
    level: str  # system | patient | group
    types: tuple[str, ...] | None  # None: every type the client may read
    since: datetime | None  # naive UTC
    patients: tuple[str, ...] | None  # the POST `patient` parameter: these compartments only
    warnings: tuple[str, ...] = ()  # parameters ignored under handling=lenient


def exportable_types(level: str) -> tuple[str, ...]:
    """Types a level exports: everything stored, or the Patient compartment's types."""
    if level == SYSTEM:
        return SUPPORTED_TYPES
    return tuple(t for t in SUPPORTED_TYPES if t in PATIENT_COMPARTMENT)


def parse_since(value: str) -> datetime:
    # A "+hh:mm" offset sent unencoded in a query string arrives as " hh:mm".
    text = re.sub(r" (\d{2}:\d{2})$", r"+\1", value.strip())
    if not _INSTANT.match(text):
        raise UnsupportedRequest(
            f"_since {value!r} is not a FHIR instant such as 2026-11-01T00:00:00+07:00",
            [Issue(f"_since must be an instant with a time zone, not {value!r}", "_since", "invalid")],
        )
    return date_range(text)[0]


def parse_export_request(level: str, items: list[tuple[str, str]], *, lenient: bool) -> ExportRequest:
    """The export request from (name, value) pairs; 400 for anything wrong or unsupported."""
    allowed = exportable_types(level)
    types: list[str] = []
    patients: list[str] = []
    since: datetime | None = None
    seen: set[str] = set()
    warnings: list[str] = []

    def unsupported(message: str, where: str) -> None:
        if not lenient:
            raise UnsupportedRequest(message + " (send Prefer: handling=lenient to have it ignored)", [Issue(message, where, "not-supported")])
        warnings.append(message + "; ignored")

    for name, value in items:
        if name in ("_outputFormat", "_since") and name in seen:
            raise UnsupportedRequest(f"{name} is given more than once", [Issue(f"Repeated {name}", name, "invalid")])
        seen.add(name)
        if name == "_outputFormat":
            if value.strip() not in OUTPUT_FORMATS:
                raise UnsupportedRequest(
                    f"_outputFormat {value!r} is not supported; use application/fhir+ndjson",
                    [Issue(f"Unsupported _outputFormat {value!r}", "_outputFormat", "not-supported")],
                )
        elif name == "_since":
            since = parse_since(value)
        elif name == "_type":
            for rtype in (part.strip() for part in value.split(",")):
                if rtype in allowed:
                    types.append(rtype)
                elif rtype in SUPPORTED_TYPES:
                    unsupported(f"{rtype} is not in the Patient compartment, so a {level}-level export has none", "_type")
                else:
                    unsupported(f"_type {rtype!r} is not a resource type this server exports ({', '.join(allowed)})", "_type")
        elif name == "patient":
            if level == SYSTEM:
                raise UnsupportedRequest("patient applies to Patient and Group exports only", [Issue("patient at system level", "patient", "not-supported")])
            ref = parse_reference(value)
            if ref is None or ref[0] != "Patient":
                raise UnsupportedRequest(f"patient {value!r} is not a Patient reference", [Issue(f"Bad patient {value!r}", "patient", "invalid")])
            patients.append(ref[1])
        else:
            unsupported(f"Parameter {name!r} is not supported by this server's $export", name)
    if "_type" in seen and not types:
        raise UnsupportedRequest("_type names no type this server exports", [Issue("No exportable _type", "_type", "not-supported")])
    return ExportRequest(
        level,
        tuple(dict.fromkeys(types)) or None,
        since,
        tuple(dict.fromkeys(patients)) or None,
        tuple(warnings),
    )


_VALUE_KEYS = ("valueString", "valueCode", "valueInstant", "valueDateTime", "valueUri", "valueUrl")


def parameters_items(body: Any) -> list[tuple[str, str]]:
    """(name, value) pairs of a kick-off's FHIR Parameters body."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise MalformedInput("A POST $export body must be a FHIR Parameters resource", [Issue("Expected Parameters", "resourceType", "structure")])
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise MalformedInput("Parameters.parameter must be a list", [Issue("Expected a list", "Parameters.parameter", "structure")])
    items: list[tuple[str, str]] = []
    for index, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{index}]"
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise MalformedInput(f"{where} has no name", [Issue("A parameter needs a name", where, "structure")])
        reference = parameter.get("valueReference")
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
            items.append((parameter["name"], reference["reference"]))
            continue
        values = [parameter[k] for k in _VALUE_KEYS if isinstance(parameter.get(k), str)]
        if len(values) != 1:
            raise MalformedInput(f"{where} ({parameter['name']}) needs one string, code, instant or reference value",
                                 [Issue("Missing or unusable value", where, "structure")])
        items.append((parameter["name"], values[0]))
    return items

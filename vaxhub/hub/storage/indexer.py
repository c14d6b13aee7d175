"""Search-index rows and identifier claims for one resource version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vaxhub.fhir.search_params import INDEXED_UNDER, SEARCH_PARAMS, extract_all
from vaxhub.fhir.text import fold, nfc

_MAX = 255  # index columns are VARCHAR(255); longer values are searchable by prefix


@dataclass
class IndexRows:
    token: list[dict[str, Any]] = field(default_factory=list)
    string: list[dict[str, Any]] = field(default_factory=list)
    date: list[dict[str, Any]] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: "IndexRows") -> None:
        self.token += other.token
        self.string += other.string
        self.date += other.date
        self.reference += other.reference
        self.claims += other.claims


def index_rows(rtype: str, res_id: str, resource: dict) -> IndexRows:
    rows = IndexRows()
    key = {"res_type": rtype, "res_id": res_id}
    extracted = extract_all(rtype, resource)
    for name, values in extracted.items():
        kind = SEARCH_PARAMS[rtype][name].type
        if kind == "token":
            for system, code in values:
                rows.token.append({**key, "param": name, "system": (system or "")[:_MAX], "value": code[:_MAX]})
        elif kind == "string":
            # Values a narrower parameter indexes already are found through it.
            narrower = INDEXED_UNDER.get((rtype, name), (name,))[1:]
            seen: set[str] = {nfc(v)[:_MAX] for other in narrower for v in extracted.get(other, ())}
            for text in values:
                exact = nfc(text)[:_MAX]
                if exact in seen:
                    continue
                seen.add(exact)
                rows.string.append({**key, "param": name, "value_exact": exact, "value_fold": fold(exact)[:_MAX]})
        elif kind == "date":
            for start, end in values:
                rows.date.append({**key, "param": name, "start": start, "end": end})
        else:
            for target_type, target_id in values:
                rows.reference.append({**key, "param": name, "target_type": target_type, "target_id": target_id})
    for system, value in claimed_identifiers(resource):
        rows.claims.append({"res_type": rtype, "system": system, "value": value, "res_id": res_id})
    return rows


def claimed_identifiers(resource: dict) -> list[tuple[str, str]]:
    """Business identifiers that must be unique per resource type: those with a system."""
    out = []
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            pair = (ident["system"][:_MAX], ident["value"][:_MAX])
            if pair not in out:
                out.append(pair)
    return out

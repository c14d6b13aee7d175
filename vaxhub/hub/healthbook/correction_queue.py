"""The sites' work queue of correction requests: list, read, accept, reject.

Accepting is one unit of work on the FHIR store: the corrected Patient or
Immunization as a new version (or the missing dose as a new Immunization),
the Task closed as `completed` with `output` naming that version, and two
AuditEvents (accepted, record corrected). Being a store write like any API
write, a changed Patient queues its registry re-verification and its master
patient index re-linking through the store's listeners in that same
transaction. Then, if the person holds a certificate, a new one is issued from
the corrected records and the old one is revoked as superseded; the Task's
output names the new certificate (a further audited version of the Task).
A certificate that cannot be issued yet (the corrected identity waits for the
registry) leaves the old one valid and says why in `businessStatus`.

Conflicts answer 409: the Task is closed already, or the record changed since
the request was filed. Claims that do not fit answer 422 and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vaxhub.errors import Conflict, Gone, InvalidResource, Issue, NotFound, VaxhubError
from vaxhub.fhir.resources import validate_resource
from vaxhub.fhir.search_params import parse_reference
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.certificates.linked_records import linked_patient_ids
from vaxhub.hub.certificates.service import CertificateService
from vaxhub.hub.healthbook.correction_apply import corrected, missing_dose, recorded_value, same_content
from vaxhub.hub.healthbook.correction_routing import SITE_SYSTEM, in_queue_of, operator_queue
from vaxhub.hub.healthbook.corrections import (
    EVIDENCE, MISSING_DOSE, STEP_ACCEPTED, STEP_CERTIFICATE, STEP_CERTIFICATE_WAITING, STEP_RECORD_CHANGED,
    STEP_REJECTED, TASK_CODE_SYSTEM, Claim, filed_version, is_correction, read_claims,
)
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import FhirStore, Stored, Writer, format_instant

OUTPUT_SYSTEM = "https://vaxhub.vn/fhir/CodeSystem/correction-output"
OPEN = "requested"
STATUSES = ("requested", "completed", "rejected")


@dataclass
class Accepted:
    task: Stored
    changed: list[Stored]
    certificates: list[dict[str, Any]] = field(default_factory=list)  # {"uvci", "supersedes"}
    waiting: str | None = None  # why no certificate was issued, when one is held


def step_event(base: Interaction, action: str, description: str) -> Interaction:
    """A further AuditEvent of the same request (same caller, address, request id)."""
    return Interaction(action, base.method, base.path, base.query, base.source_ip, base.request_id, base.principal, description=description[:1000])


class CorrectionQueue:
    def __init__(self, store: FhirStore, trail: AuditTrail, certificates: CertificateService):
        self.store = store
        self.trail = trail
        self.certificates = certificates

    # ------------------------------------------------------------------ reads

    def list(self, who: Principal, *, statuses: list[str], count: int, offset: int) -> tuple[list[Stored], int]:
        """The operator's queue, newest first, with the total."""
        items = [("code", f"{TASK_CODE_SYSTEM}|change"), ("_sort", "-authored-on"), ("_count", str(count)), ("_offset", str(offset)), ("_total", "accurate")]
        if statuses:
            items.append(("status", ",".join(statuses)))
        queue = operator_queue(who)
        if queue is not None:
            items.append(("owner-identifier", queue.token))
        page = self.store.search(parse_search("Task", items, max_count=count))
        return page.resources, page.total or 0

    def read(self, who: Principal, task_id: str) -> Stored:
        try:
            task = self.store.read("Task", task_id)
        except (NotFound, Gone):
            task = None
        return _in_scope(who, task_id, task)

    def focus_of(self, task: Stored) -> Stored | None:
        rtype, rid = _focus(task.content or {})
        try:
            return self.store.read(rtype, rid)
        except (NotFound, Gone):
            return None

    # ---------------------------------------------------------------- actions

    def accept(
        self,
        who: Principal,
        task_id: str,
        *,
        edited_input: list[Any] | None = None,
        edited_contained: list[Any] | None = None,
        note: str | None = None,
        interaction: Interaction,
        root: str,
    ) -> Accepted:
        """Apply the claims (or the site's edit of them) and close the Task; then re-issue certificates."""
        interaction.action = "update"

        def unit(w: Writer) -> Accepted:
            task = _open_task(w, who, task_id)
            content = task.content or {}
            claimed = dict(content)
            if edited_input is not None:
                claimed["input"] = edited_input
            if edited_contained is not None:
                claimed["contained"] = edited_contained
            rtype, rid = _focus(content)
            claims = read_claims(claimed, rtype, focus_id=rid)
            changes = [c for c in claims if c.field != EVIDENCE]
            if not changes:
                raise InvalidResource(
                    "The request names no corrected values: accept it with them in input (the site's edit)",
                    [Issue("nothing to apply", "input", "required")],
                )
            changed = self._apply(w, who, task, claimed, rtype, rid, changes)
            now = format_instant(w.now)
            closed = {
                **_body(content),
                **({"input": claimed["input"]} if claimed.get("input") else {}),
                **({"contained": claimed["contained"]} if claimed.get("contained") else {}),
                "status": "completed",
                "businessStatus": {"text": "applied"},
                "output": [_output("changed-record", {"valueReference": {"reference": f"{s.rtype}/{s.id}/_history/{s.version}"}}) for s in changed],
                "lastModified": now,
            }
            if note and note.strip():
                closed["statusReason"] = {"text": note.strip()[:1000]}
            validate_resource(closed, expected_type="Task", path="Task")  # edited inputs included
            stored_task = w.update("Task", task_id, closed).stored
            record_event = step_event(interaction, "update", f"{STEP_RECORD_CHANGED}: " + ", ".join(f"{s.rtype}/{s.id} version {s.version}" for s in changed) + f" by Task/{task_id}")
            for s in changed:
                record_event.touched(s.rtype, s.id, s.version, s.content)
            record_event.touched("Task", task_id, stored_task.version, stored_task.content)
            self.trail.append(w.conn, record_event)
            edited = " with the site's edits" if edited_input is not None or edited_contained is not None else ""
            interaction.description = f"{STEP_ACCEPTED}: Task/{task_id}{edited} by {who.display}"
            return Accepted(stored_task, changed)

        accepted = self.store.run_unit(unit, context=interaction)
        self._reissue_certificates(who, accepted, interaction, root)
        return accepted

    def reject(self, who: Principal, task_id: str, *, reason: str, interaction: Interaction) -> Stored:
        interaction.action = "update"
        text = reason.strip()[:1000]
        if not text:
            raise InvalidResource("Say why the request is rejected; the citizen reads it", [Issue("reason required", "reason", "required")])

        def unit(w: Writer) -> Stored:
            task = _open_task(w, who, task_id)
            closed = {
                **_body(task.content or {}),
                "status": "rejected",
                "businessStatus": {"text": "rejected"},
                "statusReason": {"text": text},
                "lastModified": format_instant(w.now),
            }
            interaction.description = f"{STEP_REJECTED}: Task/{task_id} by {who.display}: {text}"
            return w.update("Task", task_id, closed).stored

        return self.store.run_unit(unit, context=interaction)

    # -------------------------------------------------------------- internals

    def _apply(self, w: Writer, who: Principal, task: Stored, claimed: dict[str, Any], rtype: str, rid: str, changes: list[Claim]) -> list[Stored]:
        try:
            focus = w.read(rtype, rid)
        except (NotFound, Gone):
            raise Conflict(f"{rtype}/{rid} no longer exists; reject the request") from None
        changed: list[Stored] = []
        fields = [c for c in changes if c.field != MISSING_DOSE]
        if fields:
            if filed_version(task.content or {}) not in (None, focus.version):
                raise Conflict(
                    f"{rtype}/{rid} changed since the request was filed (now version {focus.version}); "
                    "check the record and reject the request, or ask the citizen to file it again",
                    [Issue("record changed since the request", "Task.focus", "conflict")],
                )
            content = corrected(focus.content or {}, fields)
            if same_content(content, focus.content or {}):
                raise Conflict(f"{rtype}/{rid} already holds these values", [Issue("nothing would change", "Task.input", "conflict")])
            changed.append(w.update(rtype, rid, content, if_match=focus.etag).stored)
        for claim in changes:
            if claim.field == MISSING_DOSE:
                queue = operator_queue(who)
                site = queue.code if queue is not None and queue.system == SITE_SYSTEM else None
                changed.append(w.create(missing_dose(claimed, claim, site_code=site, task_id=task.id)).stored)
        return changed

    def _reissue_certificates(self, who: Principal, accepted: Accepted, interaction: Interaction, root: str) -> None:
        """New certificates for the person, from the corrected records; the old ones revoked as superseded."""
        task = accepted.task
        person = _patient_id(task.content or {})
        holders = [pid for pid in linked_patient_ids(self.store, person) if any(not c.revoked for c in self.certificates.for_patient(pid))]
        if not holders:
            return
        for pid in holders:
            old = [c.uvci for c in self.certificates.for_patient(pid) if not c.revoked]
            issue_event = step_event(interaction, "issue-certificate", "")
            try:
                issued = self.certificates.issue(pid, who=who, root=root, interaction=issue_event)
            except VaxhubError as exc:
                accepted.waiting = exc.message
                continue
            for uvci in old:
                self.certificates.trust.revoke_certificate(uvci, reason=f"superseded by {issued.uvci} after correction Task/{task.id}", revoked_by=who.display)
            accepted.certificates.append({"patient": pid, "uvci": issued.uvci, "supersedes": old})
        outputs = [_output("certificate", {"valueString": c["uvci"]}) for c in accepted.certificates]
        if accepted.certificates:
            status = "applied; certificate re-issued"
            description = f"{STEP_CERTIFICATE}: " + "; ".join(f"{c['uvci']} supersedes {', '.join(c['supersedes'])} (revoked)" for c in accepted.certificates)
        else:
            status = f"applied; certificate not re-issued yet: {accepted.waiting}"[:500]
            description = f"{STEP_CERTIFICATE_WAITING}: {accepted.waiting}"
        event = step_event(interaction, "update", f"{description} after Task/{task.id}")

        def unit(w: Writer) -> Stored:
            current = w.read("Task", task.id)
            content = current.content or {}
            updated = {**_body(content), "businessStatus": {"text": status}, "output": [*(content.get("output") or []), *outputs]}
            return w.update("Task", task.id, updated).stored

        accepted.task = self.store.run_unit(unit, context=event)


def _in_scope(who: Principal, task_id: str, task: Stored | None) -> Stored:
    """The Task if it is a correction in the operator's queue; otherwise unknown to them."""
    if task is None or task.content is None or not is_correction(task.content) or not in_queue_of(who, task.content):
        raise NotFound(f"Task/{task_id} is not in your correction queue")
    return task


def _open_task(w: Writer, who: Principal, task_id: str) -> Stored:
    try:
        task = w.read("Task", task_id)
    except (NotFound, Gone):
        task = None
    task = _in_scope(who, task_id, task)
    status = (task.content or {}).get("status")
    if status != OPEN:
        raise Conflict(f"Task/{task_id} is {status} already", [Issue(f"the request is {status}", "Task.status", "conflict")])
    return task


def _focus(task: dict[str, Any]) -> tuple[str, str]:
    parsed = parse_reference(((task.get("focus") or {}).get("reference")) or "")
    if parsed is None:
        raise Conflict("The request names no record", [Issue("no focus", "Task.focus", "conflict")])
    return parsed


def _patient_id(task: dict[str, Any]) -> str:
    parsed = parse_reference(((task.get("for") or {}).get("reference")) or "")
    return parsed[1] if parsed else ""


def _body(content: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in content.items() if k != "meta"}


def _output(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": {"coding": [{"system": OUTPUT_SYSTEM, "code": code}]}, **value}


def claim_rows(task: dict[str, Any], record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each claimed value beside what the record holds now, for the site's view."""
    rtype, rid = _focus(task)
    try:
        claims = read_claims(task, rtype, focus_id=rid)
    except InvalidResource:  # only checked requests are stored; an edited-away shape shows nothing rather than fail the page
        return []
    return [{"field": c.field, "claimed": c.value, "recorded": recorded_value(record, c.field)} for c in claims]

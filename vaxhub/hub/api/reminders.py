"""`GET /ops/reminders`: people due or overdue for their next dose, as JSON or CSV.

For operators with the `reminders` role; an operator bound to a site sees
that site's people only (the site of their last dose), whatever `site` the
request names. Every person listed is noted in the request's AuditEvent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine
from starlette.responses import Response

from vaxhub.errors import Forbidden, InvalidResource, Issue, UnsupportedRequest
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.healthbook.reminders import due_doses, to_csv_rows
from vaxhub.hub.security.principal import OPERATOR, Principal

REMINDERS_ROLE = "reminders"


def reminders_operator(who: Principal = Depends(principal)) -> Principal:
    if who.kind != OPERATOR or REMINDERS_ROLE not in who.roles:
        raise Forbidden("The reminder list needs an operator token with the 'reminders' role")
    return who


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/ops/reminders", tags=["Operations: dose reminders"])

    @router.get("", summary="People due or overdue for their next dose (JSON, or CSV with format=csv)")
    def reminders(
        site: str | None = Query(None, description="Site code of the last dose"),
        province: str | None = Query(None, description="Two-digit province code or name of the person's address"),
        as_of: str | None = Query(None, description="Local date, YYYY-MM-DD (default: today)"),
        format: str = Query("json", description="json or csv"),
        who: Principal = Depends(reminders_operator),
        audit: Interaction = Depends(interaction),
    ) -> Any:
        if format not in ("json", "csv"):
            raise UnsupportedRequest("format must be json or csv", [Issue(f"Unknown format {format!r}", "format", "value")])
        day = _as_of(as_of)
        if who.site_code is not None:
            if site not in (None, who.site_code):
                raise Forbidden(f"An operator of site {who.site_code} sees that site's reminders only")
            site = who.site_code
        try:
            with engine.connect() as conn:
                found = due_doses(conn, day, site=site, province=province)
        except InvalidResource as exc:  # an unknown province
            raise UnsupportedRequest(str(exc), [Issue(str(exc), "province", "value")]) from None
        audit.action = "search"
        for dose in found:
            audit.touched("Patient", dose.patient_id, None, {"resourceType": "Patient"})
        if format == "csv":
            out = io.StringIO()
            csv.writer(out).writerows(to_csv_rows(found))
            name = f"reminders-{site or 'all'}-{day.isoformat()}.csv"
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return {"as_of": day.isoformat(), "site": site, "province": province, "total": len(found), "reminders": [d.as_row() for d in found]}

    return router


def _as_of(text: str | None) -> dt.date:
    if text is None or not text.strip():
        return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=7)).date()
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UnsupportedRequest(f"as_of {text!r} is not a date (YYYY-MM-DD)", [Issue("Bad as_of", "as_of", "value")]) from None

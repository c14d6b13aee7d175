"""HL7 v2 and spreadsheet ingestion under access control: senders write only as their own site."""

from __future__ import annotations

from tests.hl7v2_messages import new_dose, vxu

ER7 = {"content-type": "x-application/hl7-v2+er7"}


def _msa(ack: str) -> str:
    return next(s for s in ack.split("\r") if s.startswith("MSA")).split("|")[1]


def test_vxu_needs_a_token(hub):
    _app, raw, _login = hub
    r = raw.post("/hl7v2", content=vxu("M-0", orders=[new_dose()]).encode(), headers=ER7)
    assert r.status_code == 401


def test_site_stores_its_own_vxu_and_not_another_sites(hub):
    app, raw, login = hub
    site = {**login("his-79001", "system/Patient.cruds system/Immunization.cruds", site="79001"), **ER7}
    own = raw.post("/hl7v2", content=vxu("M-1", site="79001", orders=[new_dose()]).encode(), headers=site)
    assert _msa(own.text) == "AA", own.text
    foreign = raw.post("/hl7v2", content=vxu("M-2", site="01001", orders=[new_dose("IZ-9")]).encode(), headers=site)
    assert _msa(foreign.text) == "AR"
    assert "Not allowed" in foreign.text
    assert app.state.audit.verify().ok


def test_import_upload_for_another_site_is_refused(hub):
    _app, raw, login = hub
    site = login("his-79001", "system/Patient.cruds system/Immunization.cruds", site="79001")
    csv = "họ và tên,giới tính,ngày sinh\nNguyễn Văn An,Nam,1990\n".encode()
    headers = {"authorization": site["authorization"]}
    r = raw.post("/imports", files={"file": ("a.csv", csv, "text/csv")}, data={"site": "01001"}, headers=headers)
    assert r.status_code == 403
    assert raw.post("/imports", files={"file": ("a.csv", csv, "text/csv")}, data={"site": "79001"}).status_code == 401

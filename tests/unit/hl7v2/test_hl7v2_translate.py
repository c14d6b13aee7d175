import random
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hl7v2_messages import historical_dose, malformed_vxu, new_dose, refused_dose, vxu
from vaxhub.fhir.hl7v2 import Hl7MessageError, ack_for_error, ack_for_header, fhir_datetime, parse_er7, translate_vxu

TODAY = date(2022, 6, 1)


def _immunizations(bundle: dict) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Immunization"]


def _error(text: str) -> Hl7MessageError:
    with pytest.raises(Hl7MessageError) as caught:
        translate_vxu(text, today=TODAY)
    return caught.value


def test_new_dose_maps_rxa_fields_to_immunization():
    bundle = translate_vxu(vxu(), today=TODAY).translation.bundle
    patient = bundle["entry"][0]
    assert patient["request"]["ifNoneExist"] == "identifier=https://vaxhub.vn/fhir/sid/cccd|079090012345"
    assert patient["resource"]["name"][0]["text"] == "Nguyễn Văn An"
    assert patient["resource"]["birthDate"] == "1990-05-04"
    assert patient["resource"]["telecom"][0]["value"] == "+84912345678"
    assert patient["resource"]["contact"][0]["relationship"][0]["coding"][0]["code"] == "MTH"
    (imm,) = _immunizations(bundle)
    res = imm["resource"]
    assert res["occurrenceDateTime"] == "2021-08-01T09:30:00+07:00"
    assert {"system": "http://hl7.org/fhir/sid/cvx", "code": "210"}.items() <= res["vaccineCode"]["coding"][0].items()
    assert res["lotNumber"] == "A1234" and res["expirationDate"] == "2022-12-31"
    assert res["manufacturer"]["identifier"]["value"] == "AZ"
    assert res["identifier"] == [{"use": "official", "system": "https://vaxhub.vn/fhir/sid/site/79001/immunization", "value": "IZ-0001"}]
    assert res["route"]["coding"][0]["code"] == "C28161" and res["site"]["coding"][0]["code"] == "LD"
    assert res["status"] == "completed" and res["primarySource"] is True
    assert res["protocolApplied"][0]["doseNumberPositiveInt"] == 1
    assert imm["request"]["method"] == "POST"


def test_historical_dose_without_order_number_gets_a_stable_key_and_a_warning():
    first = translate_vxu(vxu(orders=[historical_dose()]), today=TODAY).translation
    again = translate_vxu(vxu("MSG-9", orders=[historical_dose()]), today=TODAY).translation
    (imm,) = _immunizations(first.bundle)
    assert imm["resource"]["primarySource"] is False
    assert imm["resource"]["reportOrigin"]["coding"][0]["code"] == "01"
    assert imm["resource"]["identifier"][0]["value"].startswith("k-")
    assert imm["resource"]["identifier"] == _immunizations(again.bundle)[0]["resource"]["identifier"]
    assert [w.code for w in first.warnings] == ["101"]


def test_refused_dose_is_not_done_with_its_reason():
    (imm,) = _immunizations(translate_vxu(vxu(orders=[refused_dose()]), today=TODAY).translation.bundle)
    assert imm["resource"]["status"] == "not-done"
    assert imm["resource"]["statusReason"]["coding"][0]["code"] == "00002"


def test_entered_in_error_is_a_conditional_update_on_orc3():
    (imm,) = _immunizations(translate_vxu(vxu(orders=[new_dose(action="D")]), today=TODAY).translation.bundle)
    assert imm["resource"]["status"] == "entered-in-error"
    assert imm["request"]["method"] == "PUT"
    assert imm["request"]["url"].endswith("/immunization|IZ-0001")


def test_patient_without_cccd_is_identified_by_the_site_number():
    patient = translate_vxu(vxu(cccd=None), today=TODAY).translation.bundle["entry"][0]
    assert patient["request"]["ifNoneExist"] == "identifier=https://vaxhub.vn/fhir/sid/site/79001/patient|BN-123"


@pytest.mark.parametrize(
    ("message", "code", "location"),
    [
        (vxu().replace("210^Vaxzevria^CVX", "999^Unknown^CVX"), "103", "RXA-5.1"),
        (vxu(birth="19901345"), "102", "PID-7"),
        (vxu(orders=[new_dose(date="20990101")]), "102", "RXA-3"),
        (vxu(cccd="123"), "102", "PID-3.1"),
        (vxu(name=""), "101", "PID-5.1"),
        (vxu(orders=[new_dose(), new_dose()]), "205", "ORC[2]-3"),
        (vxu(name="NguyÔn^An^V¨n"), "102", "PID-5"),
    ],
)
def test_content_errors_answer_ae_with_located_err(message, code, location):
    exc = _error(message)
    assert exc.ack_code == "AE"
    assert (exc.findings[0].code, str(exc.findings[0].location)) == (code, location)
    ack = ack_for_error(exc)
    assert "MSA|AE|MSG-0001" in ack
    assert f"|{code}^" in ack and "^HL70357|E|" in ack


@pytest.mark.parametrize(
    ("change", "code"),
    [("ADT^A01", "200"), ("VXU^V05", "201")],
)
def test_unsupported_message_type_answers_ar(change, code):
    exc = _error(vxu().replace("VXU^V04^VXU_V04", change))
    assert exc.ack_code == "AR" and exc.findings[0].code == code


def test_unsupported_version_and_processing_id_answer_ar():
    assert _error(vxu().replace("|P|2.5.1|", "|P|9.9|")).findings[0].code == "203"
    assert _error(vxu().replace("|P|2.5.1|", "|Q|2.5.1|")).findings[0].code == "202"


def test_ack_accepts_with_warnings_and_echoes_control_id():
    received = translate_vxu(vxu(orders=[historical_dose()]), today=TODAY)
    ack = ack_for_header(received.header, "AA", received.translation.warnings)
    segments = ack.split("\r")
    assert segments[0].split("|")[8] == "ACK^V04^ACK"
    assert segments[1] == "MSA|AA|MSG-0001"
    assert segments[2].startswith("ERR||ORC^1^3^1|101^Required field missing^HL70357|W|")


def test_line_feeds_and_escapes_are_read():
    text = vxu(name="Nguyễn^An^Văn").replace("\r", "\n").replace("12 Lê Lợi", "12 Lê Lợi \\T\\ 14")
    patient = translate_vxu(text, today=TODAY).translation.bundle["entry"][0]["resource"]
    assert patient["address"][0]["line"] == ["12 Lê Lợi & 14"]


def test_hl7_dates_keep_their_precision():
    assert fhir_datetime("1990") == ("1990", date(1990, 1, 1))
    assert fhir_datetime("199005")[0] == "1990-05"
    assert fhir_datetime("20210801")[0] == "2021-08-01"
    assert fhir_datetime("202108010930-0500")[0] == "2021-08-01T09:30:00-05:00"
    assert fhir_datetime("20210230") is None


def test_ten_thousand_malformed_messages_are_refused_never_crash():
    rng = random.Random(20210801)
    outcomes = {"AE": 0, "AR": 0, "accepted": 0}
    for _ in range(10_000):
        text = malformed_vxu(rng)
        try:
            translate_vxu(text, today=TODAY)
            outcomes["accepted"] += 1
        except Hl7MessageError as exc:
            outcomes[exc.ack_code] += 1
            ack_for_error(exc)
    # Only breakage that leaves a valid message (reversed OBX/RXR) may pass.
    assert outcomes["AE"] > 2000 and outcomes["AR"] > 2000
    assert outcomes["accepted"] < 1000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_anything_but_a_refusal(text):
    try:
        translate_vxu(text, today=TODAY)
    except Hl7MessageError as exc:
        assert exc.ack_code in ("AE", "AR")
        ack_for_error(exc)


segment_text = st.text(alphabet=st.sampled_from(list("|^~\\&ABCDEFPIDRXAORC0123456789 .-é\r")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(segment_text, max_size=6))
def test_arbitrary_segments_after_a_valid_header_never_crash(parts):
    text = vxu().split("\r")[0] + "\r" + "\r".join(parts)
    try:
        translate_vxu(text, today=TODAY)
    except Hl7MessageError:
        pass


def test_parse_gives_fields_by_hl7_position():
    message = parse_er7(vxu())
    msh = message.first("MSH")
    assert msh.value(10) == "MSG-0001" and msh.value(9, 2) == "V04"
    assert message.first("PID").repetitions(3)[1][0] == "079090012345"

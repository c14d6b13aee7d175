"""Whatever arrives at a page or form, the answer is a page with a 4xx (or the
normal page), never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.web_pages import csrf_token

FORMS = ["/portal/lookup", "/portal/code", "/portal/certificate", "/portal/correction", "/portal/sign-out",
         "/verify", "/dashboard/sign-in", "/dashboard/sign-out"]


@pytest.fixture
def token(pages_client) -> str:
    return csrf_token(pages_client.get("/portal").text)


@pytest.mark.parametrize("path", FORMS)
@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"--x\r\nContent-Disposition: form-data; name=\"qr\"\r\n\r\nabc", "multipart/form-data; boundary=x"),
        (b"--x\r\nbroken", "multipart/form-data"),
        (b'{"name": "a"}', "application/json"),
        (b"a=" + b"b" * 2_000_000, "application/x-www-form-urlencoded"),
        (b"", "text/plain"),
    ],
    ids=["not-utf8", "unterminated-multipart", "no-boundary", "json", "two-megabytes", "empty"],
)
def test_malformed_form_bodies_get_a_4xx_page(pages_client, path, body, content_type):
    response = pages_client.post(path, content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])


@pytest.mark.parametrize("path", FORMS)
def test_forms_with_files_where_none_belong_or_too_many_fields(pages_client, token, path):
    files = {"name": ("x.txt", b"x" * 100, "text/plain"), "other": ("y.txt", b"y", "text/plain")}
    assert 400 <= pages_client.post(path, data={"csrf": token}, files=files).status_code < 500
    many = {f"field{i}": "x" for i in range(50)}
    assert 400 <= pages_client.post(path, data={"csrf": token, **many}).status_code < 500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=300),
    birth_date=st.text(max_size=40),
    phone=st.text(max_size=40),
    code=st.text(max_size=20),
)
def test_any_typed_lookup_or_code_is_answered_without_error(pages_client, token, name, birth_date, phone, code):
    looked = pages_client.post("/portal/lookup", data={"csrf": token, "name": name, "birth_date": birth_date, "phone": phone}, follow_redirects=False)
    assert looked.status_code in (303, 400, 429)
    assert pages_client.post("/portal/code", data={"csrf": token, "code": code}).status_code in (401, 403)


@pytest.mark.parametrize("query", ["province=%00", "since=%ff%fe", "until=9999999-01-01", "province=" + "9" * 500, "lang=%00"])
def test_odd_query_strings_on_pages(pages_client, query):
    for path in ("/portal", "/verify", "/dashboard", "/dashboard/data"):
        response = pages_client.get(f"{path}?{query}", follow_redirects=False)
        assert response.status_code < 500, (path, query, response.status_code)


def test_unknown_pages_and_methods_are_4xx(pages_client):
    assert pages_client.get("/portal/nothing-here").status_code == 404
    assert pages_client.put("/portal/lookup").status_code == 405
    assert pages_client.get("/portal/certificate/../../etc/passwd").status_code == 404
    assert pages_client.get("/web-static/../../settings.py").status_code == 404

"""Vietnamese by default, English on request, from gettext catalogs; dates and
numbers in each locale's own form."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from tests.web_pages import portal_sign_in
from vaxhub.hub.web.i18n import Formats, translations

WEB = Path(__file__).resolve().parents[3] / "vaxhub" / "hub" / "web"


def _template_messages() -> set[str]:
    found = extract_from_dir(str(WEB), method_map=[("**/templates/**.html", "jinja2")], options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}})
    return {message if isinstance(message, str) else message[0] for _file, _line, message, _comments, _context in found}


def test_every_message_of_the_pages_has_a_vietnamese_translation():
    catalog = translations("vi")
    messages = _template_messages()
    assert len(messages) > 100
    missing = sorted(m for m in messages if catalog.gettext(m) == m)
    assert missing == []


@pytest.mark.parametrize("path", ["/portal", "/verify", "/dashboard/sign-in"])
def test_pages_are_vietnamese_by_default_and_english_on_request(browser_client, path):
    vietnamese = browser_client.get(path)
    assert '<html lang="vi">' in vietnamese.text and "Hồ sơ tiêm chủng" in vietnamese.text
    english = browser_client.get(path, params={"lang": "en"})
    assert '<html lang="en">' in english.text and "Vaccination records" in english.text and "Hồ sơ tiêm chủng" not in english.text
    # The choice is kept in a cookie for the next pages.
    assert '<html lang="en">' in browser_client.get(path).text
    assert '<html lang="vi">' in browser_client.get(path, params={"lang": "vi"}).text


def test_an_unknown_language_falls_back_to_vietnamese(browser_client):
    assert '<html lang="vi">' in browser_client.get("/portal", params={"lang": "xx"}).text


def test_the_record_page_formats_dates_in_each_language(web, two_people, browser_client, sms):
    vietnamese = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    assert "4/3/1990" in vietnamese.text and "Mũi 1" in vietnamese.text and "2/8/2021" in vietnamese.text
    english = browser_client.get("/portal/record", params={"lang": "en"})
    assert "04/03/1990" in english.text and "Dose 1" in english.text and "02/08/2021" in english.text


def test_numbers_and_percentages_follow_the_locale():
    vi, en = Formats("vi"), Formats("en")
    assert (vi.number(12345), en.number(12345)) == ("12.345", "12,345")
    assert (vi.percent(0.125), en.percent(0.125)) == ("12,5 %", "12.5 %")
    assert vi.date(dt.date(2021, 8, 4)) == "4/8/2021" and en.date("2021-08-04") == "04/08/2021"
    assert vi.instant(dt.datetime(2021, 8, 4, 17, 30)).startswith("00:30")  # UTC stored, Viet Nam time shown

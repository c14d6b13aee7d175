"""Languages of the web pages: Vietnamese by default, English on request.

Templates are written with English message ids (`{% trans %}`, `_()`), and
the Vietnamese catalog is a gettext `.po` file beside this module, read with
Babel's `read_po` and compiled in memory when the hub starts: a fresh clone
needs no build step, and translators edit the `.po` file only. Dates and
numbers are formatted by Babel with the locale's own rules (`vi_VN`: 04/08/2021,
1.234, 12,5 %), never by hand.

The language is `?lang=vi|en` when given (then kept in a cookie), else the
cookie, else Vietnamese.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"vi": "vi_VN", "en": "en_GB"}  # page language -> Babel locale for dates and numbers
DEFAULT_LANGUAGE = "vi"
LANGUAGE_COOKIE = "vaxhub_lang"
VIET_NAM = dt.timezone(dt.timedelta(hours=7))


@lru_cache(maxsize=None)
def translations(language: str) -> NullTranslations:
    """The compiled catalog of `language` (English is the message ids themselves)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=LANGUAGES[language])
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def requested_language(request: Request) -> str | None:
    """The language asked for in the query string, if it is one we have."""
    asked = request.query_params.get("lang")
    return asked if asked in LANGUAGES else None


def language_of(request: Request) -> str:
    chosen = requested_language(request) or request.cookies.get(LANGUAGE_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Formats:
    """Locale-aware formatting for one language, used as Jinja filters."""

    language: str

    @property
    def locale(self) -> str:
        return LANGUAGES[self.language]

    def date(self, value: dt.date | str | None, skeleton: str = "yMd") -> str:
        """A calendar date by CLDR skeleton: "yMd" 4/8/2021 (vi) or 04/08/2021 (en), "MMMd" for chart axes."""
        if value in (None, ""):
            return ""
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value[:10])
            except ValueError:
                return value
        if isinstance(value, dt.datetime):  # an instant: its day in Viet Nam (naive ones are UTC, as stored)
            value = (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(VIET_NAM).date()
        return format_skeleton(skeleton, value, locale=self.locale)

    def instant(self, value: dt.datetime | None, form: str = "short") -> str:
        """A moment shown in Viet Nam time (stored instants are UTC)."""
        if value is None:
            return ""
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return format_datetime(aware.astimezone(VIET_NAM), format=form, locale=self.locale, tzinfo=VIET_NAM)

    def country(self, code: str | None) -> str:
        """A country's name in the page's language ("VN" → "Việt Nam"); anything else as it is."""
        if not code:
            return ""
        return Locale.parse(self.locale).territories.get(code.upper(), code) if len(code) == 2 and code.isalpha() else code

    def number(self, value: float | int | None) -> str:
        return "" if value is None else format_decimal(value, locale=self.locale)

    def percent(self, value: float | None) -> str:
        return "–" if value is None else format_percent(value, format="#,##0.0 %", locale=self.locale)

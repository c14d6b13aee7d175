"""Vietnamese personal names: one canonical spelling and FHIR HumanName parts.

Canonical spelling (`normalise_name`):

- Unicode NFC, single spaces, `Ð`/`ð` (Icelandic eth, a common stand-in)
  replaced by `Đ`/`đ`.
- Each word capitalised: "NGUYỄN văn an" -> "Nguyễn Văn An".
- Tone marks placed in the *classic* style ("kiểu cũ"): in an open syllable
  ending in oa, oe or uy the mark sits on the first vowel ("Hòa", "Khỏe",
  "Thủy"). This is the spelling of the official province names ("Thanh Hóa",
  "Khánh Hòa", "Hòa Bình") and of most civil-registry records. The *modern*
  style ("kiểu mới", "Hoà", "Thuỷ") puts it on the second vowel; both styles
  are read, and `place_tone_marks(text, style="modern")` converts the other way.
  Every syllable's mark is re-placed by the same rules, so misplaced marks
  ("hóan") are repaired too. The rules are those of traditional Vietnamese
  typesetting (the classic/modern split is only rule 3):
    1. a vowel with a shape mark (ă â ê ô ơ ư) takes the tone; in "ươ" the ơ;
    2. otherwise, before a final consonant, the last vowel ("Hoàng", "Huỳnh");
    3. otherwise a lone vowel takes it, two vowels the first (classic) or,
       for oa/oe/uy, the second (modern), three vowels the middle ("Ngoái");
  "qu" and "gi" before a vowel are onsets: "Quý", "Giàu".

Name parts (`split_name`): Vietnamese order is family, middle(s), given
("Nguyễn Văn An"). FHIR `HumanName.given` holds "given names (not always
'first'), includes middle names", so family is the first word and `given`
is every following word in order, one entry per word: family "Nguyễn",
given ["Văn", "An"]. The match key is `vaxhub.fhir.text.fold` of the text.

Given-first inputs (from systems with "first name / last name" fields) are
recognised by a list of common surnames when the first word is not one:
"An Văn Nguyễn" (surname last) and "An Nguyễn Văn" (surname, middle after the
given name) both become "Nguyễn Văn An".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.text import fold, nfc

ToneStyle = Literal["classic", "modern"]
NameOrder = Literal["auto", "family-first", "given-first"]

# Combining tone marks: huyền, sắc, ngã, hỏi, nặng.
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_VOWELS = frozenset("aăâeêioôơuưy")
_SHAPED_VOWELS = frozenset("ăâêôơư")
_ONSETS = frozenset(
    "b c ch d đ g gh gi h k kh l m n ng ngh nh p ph qu r s t th tr v x".split()
) | {""}
_CODAS = frozenset("c ch m n ng nh p t".split()) | {""}
_MODERN_PAIRS = frozenset({"oa", "oe", "uy"})
_WORD = re.compile(r"[^\W\d_]+")
_ETH = str.maketrans({"Ð": "Đ", "ð": "đ"})

# The most frequent surnames (together about 90% of the population); a
# given-first order is only inferred from these, since rarer surnames such
# as Mai, Hà, Lâm or Kim are also common given names.
LEADING_SURNAMES: frozenset[str] = frozenset(
    """Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý
    Đinh Trịnh Trương Đoàn Lương Vương Đào""".split()
)
# Wider list: a first word found here is taken as a surname (no reordering).
COMMON_SURNAMES: frozenset[str] = LEADING_SURNAMES | frozenset(
    """Lâm Mai Tô Hà Tạ Cao Quách Lưu Chu Châu Thái Kiều La Mạc Tăng Triệu Từ
    Khúc Khổng Lò Mã Nông Âu Hứa Kim Giang Phùng Tôn Tống Thân Phí Diệp Quan
    Ninh Ông Đồng Doãn Cù Cấn Bạch Bế Vi Hầu Lã Lại Lục Nghiêm Viên Khương
    Tiêu Đàm Đường Hàn Sầm Thạch Danh Kha Lữ Giáp Ung Tào Thiều Chung Trình
    Cung Khuất Nhâm Phó Quản Tiết Lăng Lạc Nhan Tiền""".split()
)


def _retone_syllable(word: str, style: ToneStyle) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    tones = [ch for ch in decomposed if ch in _TONES]
    if len(tones) != 1:
        return word
    base = unicodedata.normalize("NFC", "".join(ch for ch in decomposed if ch not in _TONES))
    index = _tone_index(base, style)
    if index is None:
        return word
    marked = unicodedata.normalize("NFC", base[index] + tones[0])
    return base[:index] + marked + base[index + 1:]


def _tone_index(base: str, style: ToneStyle) -> int | None:
    """Index of the letter that carries the tone in a toneless syllable, or
    None when the word is not a Vietnamese syllable (left untouched)."""
    lower = base.lower()
    if len(lower) != len(base):
        return None
    if lower[:2] in ("qu", "gi") and len(lower) > 2 and lower[2] in _VOWELS:
        start = 2
    else:
        start = next((i for i, ch in enumerate(lower) if ch in _VOWELS), -1)
        if start < 0:
            return None
    end = start
    while end < len(lower) and lower[end] in _VOWELS:
        end += 1
    onset, nucleus, coda = lower[:start], lower[start:end], lower[end:]
    if onset not in _ONSETS or coda not in _CODAS:
        return None
    shaped = [i for i, ch in enumerate(nucleus) if ch in _SHAPED_VOWELS]
    if shaped:
        position = shaped[-1]
    elif coda:
        position = len(nucleus) - 1
    elif len(nucleus) == 1:
        position = 0
    elif len(nucleus) == 2:
        position = 1 if style == "modern" and nucleus in _MODERN_PAIRS else 0
    elif len(nucleus) == 3:
        position = 1
    else:
        return None
    return start + position


def place_tone_marks(text: str, style: ToneStyle = "classic") -> str:
    """Re-place every syllable's tone mark in the given style; other
    characters, case and non-Vietnamese words are left as they are."""
    composed = unicodedata.normalize("NFC", text)
    return _WORD.sub(lambda m: _retone_syllable(m.group(0), style), composed)


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:].lower()


def normalise_name(text: str, style: ToneStyle = "classic") -> str:
    """Canonical spelling of a personal name (see the module docstring)."""
    cleaned = nfc(text.translate(_ETH))
    if not cleaned:
        raise InvalidResource("name is empty", [Issue("name is empty", code="required")])
    return _WORD.sub(lambda m: _capitalise(m.group(0)), place_tone_marks(cleaned, style))


def name_match_key(text: str) -> str:
    """Diacritic-free, lower-case key for matching ("nguyen van hoa")."""
    return fold(text.translate(_ETH))


def _is_surname(word: str, surnames: frozenset[str]) -> bool:
    # An ASCII spelling ("Nguyen") is compared folded; a word written with
    # diacritics must match exactly, so the given name "Lệ" is not "Lê".
    if fold(word) == word.lower():
        return any(fold(s) == word.lower() for s in surnames)
    return word in surnames


@dataclass(frozen=True)
class VietnameseName:
    """A name split into FHIR parts, in Vietnamese order."""

    text: str  # "Nguyễn Văn An"
    family: str | None  # "Nguyễn"; None for a one-word name
    given: tuple[str, ...]  # ("Văn", "An"): middle names then the given name
    order: Literal["family-first", "given-first"]  # order the input was in

    @property
    def given_name(self) -> str:
        """The personal name proper, the last word ("An")."""
        return self.given[-1]

    @property
    def middle(self) -> tuple[str, ...]:
        return self.given[:-1]

    @property
    def match_key(self) -> str:
        return name_match_key(self.text)

    def to_fhir(self) -> dict:
        """FHIR R4 HumanName (use "official")."""
        name: dict = {"use": "official", "text": self.text}
        if self.family:
            name["family"] = self.family
        name["given"] = list(self.given)
        return name


def split_name(
    text: str, order: NameOrder = "auto", style: ToneStyle = "classic"
) -> VietnameseName:
    """Normalise `text` and split it into family and given parts.

    `order="auto"` keeps Vietnamese order unless the first word is not a
    common surname and a leading surname appears last ("An Văn Nguyễn") or
    second, followed by more words ("An Nguyễn Văn"). `"given-first"` forces
    the surname-last reading; `"family-first"` never reorders.
    """
    words = normalise_name(text, style).split(" ")
    if len(words) == 1:
        return VietnameseName(words[0], None, (words[0],), "family-first")
    detected: Literal["family-first", "given-first"] = "family-first"
    family, given = words[0], words[1:]
    first_is_surname = _is_surname(words[0], COMMON_SURNAMES)
    if order == "given-first" or (
        order == "auto" and not first_is_surname and _is_surname(words[-1], LEADING_SURNAMES)
    ):
        family, given, detected = words[-1], [*words[1:-1], words[0]], "given-first"
    elif (
        order == "auto"
        and not first_is_surname
        and len(words) >= 3
        and _is_surname(words[1], LEADING_SURNAMES)
    ):
        family, given, detected = words[1], [*words[2:], words[0]], "given-first"
    full = " ".join([family, *given])
    return VietnameseName(full, family, tuple(given), detected)


def human_name(text: str, order: NameOrder = "auto") -> dict:
    """FHIR HumanName dict for a full name: `{"use": "official", "text": …,
    "family": …, "given": […]}`."""
    return split_name(text, order).to_fhir()


def patient_full_name(patient: dict[str, Any]) -> str:
    """The full name a FHIR Patient states, NFC: its official name (else its
    first), as `text` or as family then `given` (middle names, given name),
    the Vietnamese order."""
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    if not names:
        return ""
    name = next((n for n in names if n.get("use") == "official"), names[0])
    if name.get("text"):
        return nfc(str(name["text"]))
    return nfc(" ".join([str(name.get("family") or ""), *(str(g) for g in name.get("given") or [])]))

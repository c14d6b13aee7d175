"""Vietnamese text mangled by legacy font encodings, detected before it is stored.

Before Unicode, Vietnamese was typed with 8-bit "font encodings": TCVN3 (ABC,
fonts named `.VnTime`) and VNI (fonts named `VNI-Times`). Their bytes are
Latin-1/cp1252 bytes, so a spreadsheet typed in those fonts, once the font is
gone, shows "NguyÔn V¨n An" (TCVN3) or "Nguyeãn Vaên An" (VNI) for
"Nguyễn Văn An". UTF-8 read as cp1252 gives a third kind ("Nguyá»…n").

The check is by form, never by dictionary: Vietnamese letters in Unicode are
a-z, đ and the vowels a ă â e ê i o ô ơ u ư y with five tone marks. The
mangled forms contain one of:

- a Latin-1 letter or sign that is not a Vietnamese letter (¨ © µ ¸ Þ ö ñ ø ï
  û å ä ë ü "»" …), which TCVN3 and VNI use for tone-marked vowels and
  UTF-8 mojibake produces everywhere;
- an upper-case accented letter after a lower-case one inside a word
  ("NguyÔn"): TCVN3 puts lower-case letters at upper-case code points;
- a plain a/e followed by an accented vowel, or o before â/ê/ô ("Vaên",
  "Leâ", "Nguyeãn"): VNI writes a mark as a second character; no Vietnamese
  vowel cluster has that shape (oa/oe with the tone on the second vowel,
  "hoà", are fine).
"""

from __future__ import annotations

import re
import unicodedata

# Latin-1 letters and signs that no Vietnamese word contains (Ð/ð are left out:
# they are common stand-ins for Đ/đ and are normalised, not refused).
_FOREIGN = set("¡¢£¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿ÄÅÆÇËÎÏÑÖ×ØÛÜÞßäåæçëîïñö÷øûüþÿ")
_FOREIGN |= {chr(c) for c in range(0x80, 0xA0)}  # C1 controls, what undecodable cp1252 bytes become
_ACCENTED_VOWEL = "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
_VNI_PAIR = re.compile(f"[aeAE][{_ACCENTED_VOWEL}]|[oO][âêôÂÊÔ]")


def _upper_inside_word(text: str) -> str | None:
    for before, after in zip(text, text[1:]):
        if before.islower() and after.isupper() and not after.isascii():
            return before + after
    return None


def mangled_reason(text: str) -> str | None:
    """Why `text` looks like a legacy-encoded or mis-decoded Vietnamese string,
    or None when it does not."""
    if not text or text.isascii():
        return None
    composed = unicodedata.normalize("NFC", text)
    foreign = sorted({ch for ch in composed if ch in _FOREIGN})
    if foreign:
        return f"characters {''.join(foreign)!r} are not used in Vietnamese"
    lowered = composed.lower()
    if match := _VNI_PAIR.search(lowered):
        return f"letter pairs such as {match[0]!r} are not Vietnamese"
    if pair := _upper_inside_word(composed):
        return f"an upper-case accented letter inside a word ({pair!r})"
    return None


def legacy_text_message(text: str) -> str | None:
    """The row-report message for a mangled cell, or None when it is fine."""
    reason = mangled_reason(text)
    if reason is None:
        return None
    return (
        f"{text[:40]!r} looks typed in a legacy Vietnamese font encoding (TCVN3/VNI) or mis-decoded: "
        f"{reason}; convert the file to Unicode (e.g. Unikey's converter) and submit it again"
    )

"""Text folding for search and matching of Vietnamese strings.

`fold` turns any spelling of a name into one diacritic-free, lower-case key:
"Nguyễn Văn Hoà", "NGUYEN van hòa" and "Nguyên Văn Hoa" all fold to
"nguyen van hoa". `Đ`/`đ` have no Unicode decomposition, so they are mapped
explicitly. Search indexes and the master patient index use the same function,
so a query and a stored value always fold alike.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_D_STROKE = str.maketrans({"Đ": "D", "đ": "d", "Ð": "D", "ð": "d"})
_SPACES = re.compile(r"\s+")


def nfc(text: str) -> str:
    """Canonical composed form with collapsed whitespace."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


@lru_cache(maxsize=1 << 16)  # names repeat: the same family and given names fold again for every record
def fold(text: str) -> str:
    """Diacritic-free, lower-case, single-spaced form of `text`."""
    decomposed = unicodedata.normalize("NFD", text.translate(_D_STROKE))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped).strip().casefold()

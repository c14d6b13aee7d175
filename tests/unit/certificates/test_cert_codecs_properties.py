"""Property-based round trips of the text encodings."""

from __future__ import annotations

import b45
import base45
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.certificates import shc
from vaxhub.certificates.dcc import is_valid_uvci, new_uvci, transliterate_icao

JWS_CHARS = st.characters(min_codepoint=45, max_codepoint=122)


@given(st.binary(max_size=600))
def test_base45_round_trip(data):
    text = base45.b45encode(data).decode("ascii")
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert base45.b45decode(text) == data


@given(st.binary(max_size=600))
def test_issuing_encoder_agrees_with_the_strict_decoder(data):
    # HC1 strings are encoded with b45 (vectorised) and decoded with base45 (strict).
    text = b45.encode(data)
    assert text == base45.b45encode(data).decode("ascii")
    assert base45.b45decode(text) == data


@given(st.text(alphabet=JWS_CHARS, max_size=800))
def test_shc_numeric_round_trip(text):
    encoded = shc.encode_numeric(text)
    assert encoded[5:].isdigit() or text == ""
    assert len(encoded) == 5 + 2 * len(text)
    if text:
        assert shc.decode_numeric(encoded) == text


@given(st.text(alphabet=JWS_CHARS, min_size=2, max_size=300), st.integers(min_value=2, max_value=4))
def test_shc_chunks_reassemble(text, count):
    digits = shc.encode_numeric(text)[5:]
    step = max(2, len(digits) // count // 2 * 2)
    parts = [digits[i : i + step] for i in range(0, len(digits), step)]
    chunks = [f"shc:/{i}/{len(parts)}/{p}" for i, p in enumerate(parts, start=1)]
    assert shc.decode_numeric(list(reversed(chunks))) == text


@given(st.text(max_size=120))
def test_transliteration_only_yields_icao_characters(name):
    result = transliterate_icao(name)
    assert set(result) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ<")
    assert len(result) <= 80
    assert not result.startswith("<") and not result.endswith("<") and "<<" not in result


@settings(max_examples=50)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=40))
def test_uvci_checksum_always_validates(opaque):
    assert is_valid_uvci(new_uvci("VN", opaque=opaque, checksum=True))

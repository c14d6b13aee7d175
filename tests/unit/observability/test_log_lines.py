"""Log lines: one JSON object per line with the bound request id, secrets
masked in every field; request ids from callers accepted only when sane."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from vaxhub.hub.logging_setup import configure_logging, make_handler
from vaxhub.hub.observability.request_context import (
    bound_request_id,
    current_request_id,
    outgoing_headers,
    sane_request_id,
)

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzaXRlLTc5MDAxIn0.c2lnbmF0dXJl"


@pytest.fixture
def capture():
    stream = io.StringIO()
    logger = logging.getLogger("vaxhub.test.lines")
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_the_standard_fields(capture):
    logger, stream = capture
    with bound_request_id("req-42"):
        logger.info("stored %s Patients", 3, extra={"site": "79001"})
    logger.warning("outside any request")
    first, second = lines(stream)
    assert first["message"] == "stored 3 Patients" and first["level"] == "INFO" and first["logger"] == "vaxhub.test.lines"
    assert first["request_id"] == "req-42" and first["site"] == "79001"
    assert first["timestamp"].endswith("+00:00") and "T" in first["timestamp"]
    assert second["request_id"] is None


def test_secrets_are_masked_in_the_message_extras_and_tracebacks(capture):
    logger, stream = capture
    logger.info("header authorization=Bearer %s", JWT)
    logger.info("form received", extra={"form": f"grant_type=client_credentials&client_assertion={JWT}"})
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logger.exception("refused")
    text = stream.getvalue()
    assert JWT not in text
    assert "[redacted" in text
    assert [r["message"] for r in lines(stream)] == ["header authorization=Bearer [redacted]", "form received", "refused"]


def test_a_code_field_next_to_quotes_still_gives_valid_json(capture):
    logger, stream = capture
    logger.info('posted "code=123456"')
    (record,) = lines(stream)
    assert "123456" not in record["message"]


def test_text_lines_carry_the_request_id():
    stream = io.StringIO()
    handler = configure_logging("text", "INFO", stream=stream)
    try:
        with bound_request_id("req-text-1"):
            logging.getLogger("vaxhub.test.text").info("hello")
        logging.getLogger("vaxhub.test.text").info("bye")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO vaxhub.test.text [req-text-1] hello")
    assert second.endswith("[-] bye")


def test_configuring_again_replaces_the_hub_handler():
    root = logging.getLogger()
    first = configure_logging("json", "INFO", stream=io.StringIO())
    second = configure_logging("text", "INFO", stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
    finally:
        root.removeHandler(second)


@pytest.mark.parametrize("given", ["8f14e45fceea167a5a36dedd4bea2543", "hospital-79001:batch/17.3", "01J9Z3Q7W8X5C2V6B4N1M0K9", "a" * 64])
def test_sane_request_ids_are_kept(given):
    assert sane_request_id(given) == given


@pytest.mark.parametrize("given", ["", "a" * 65, "two words", "quote\"d", "line\nbreak", "<script>", "-leading-dash", "ünïcode", None])
def test_other_request_ids_are_not(given):
    assert sane_request_id(given) is None


def test_binding_is_per_thread_and_restored():
    seen = {}
    with bound_request_id("outer"):
        with bound_request_id("inner"):
            assert outgoing_headers() == {"X-Request-ID": "inner"}
        assert current_request_id() == "outer"
        worker = threading.Thread(target=lambda: seen.setdefault("thread", current_request_id()))
        worker.start()
        worker.join()
    assert current_request_id() is None and outgoing_headers() == {}
    assert seen["thread"] is None  # a plain thread starts unbound: workers bind each job's id themselves


def test_access_lines_are_written_in_json_mode_and_at_debug_only_in_text_mode():
    access = logging.getLogger("vaxhub.access")
    root = logging.getLogger()
    try:
        for fmt, level, expected in (("json", "INFO", True), ("text", "INFO", False), ("text", "DEBUG", True)):
            handler = configure_logging(fmt, level, stream=io.StringIO())
            assert access.isEnabledFor(logging.INFO) is expected, (fmt, level)
            root.removeHandler(handler)
    finally:
        access.setLevel(logging.NOTSET)


def test_the_http_clients_request_lines_stay_out_of_the_log_unless_debugging():
    # httpx logs each registry call's URL, which carries the person's CCCD.
    client = logging.getLogger("httpx")
    root = logging.getLogger()
    try:
        for level, expected in (("INFO", False), ("DEBUG", True)):
            handler = configure_logging("json", level, stream=io.StringIO())
            assert client.isEnabledFor(logging.INFO) is expected, level
            root.removeHandler(handler)
    finally:
        client.setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)


def test_cutting_a_font_leaves_no_lines_in_the_log():
    # fontTools reports each table and every glyph name it keeps at INFO.
    from importlib import resources

    from fontTools import subset, ttLib

    stream = io.StringIO()
    root = logging.getLogger()
    handler = configure_logging("json", "INFO", stream=stream)
    try:
        with resources.as_file(resources.files("vaxhub.certificates").joinpath("fonts", "DejaVuSans.ttf")) as path:
            font = ttLib.TTFont(path)
            options = subset.Options()
            options.drop_tables += ["FFTM"]  # as pdf_fonts does; otherwise fontTools warns it cannot cut that table
            cutter = subset.Subsetter(options)
            cutter.populate(unicodes=[ord(c) for c in "Nguyễn"])
            cutter.subset(font)
        assert len(font.getGlyphOrder()) < 20  # the cut happened
        assert "fontTools" not in stream.getvalue()
    finally:
        root.removeHandler(handler)
        logging.getLogger("fontTools").setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)


def test_the_hub_handler_writes_to_the_stderr_of_the_moment(monkeypatch):
    import sys

    handler = configure_logging("text", "INFO")
    try:
        swapped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", swapped)  # as a CliRunner does for one command
        logging.getLogger("vaxhub.test").info("during the command")
        swapped.close()  # the runner closes its stream when the command ends
        monkeypatch.undo()
        later = io.StringIO()
        monkeypatch.setattr(sys, "stderr", later)
        logging.getLogger("vaxhub.test").info("after the command")
        assert "after the command" in later.getvalue() and "Logging error" not in later.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)

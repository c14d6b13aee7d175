"""Every script and style the pages use is shipped with the hub: nothing from a
CDN, the vendored npm builds unchanged, the files served with the right types."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "vaxhub" / "hub" / "web"
VENDOR = WEB / "static" / "vendor"


def test_templates_load_nothing_from_another_origin():
    for template in (WEB / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), template.name


def test_vendored_files_match_the_checksums_in_their_readme():
    readme = (VENDOR / "README.md").read_text()
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, flags=re.M)
    assert len(listed) == 3
    for digest, name in listed:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for folder in ("chart.js", "zxing-wasm"):
        assert any(p.name.startswith("LICENSE") for p in (VENDOR / folder).iterdir()), folder


@pytest.mark.parametrize(
    "path, media_type",
    [
        ("/web-static/web.css", "text/css"),
        ("/web-static/verify.js", "javascript"),
        ("/web-static/dashboard.js", "javascript"),
        ("/web-static/vendor/chart.js/chart.umd.min.js", "javascript"),
        ("/web-static/vendor/zxing-wasm/reader.iife.js", "javascript"),
        ("/web-static/vendor/zxing-wasm/zxing_reader.wasm", "application/wasm"),
    ],
)
def test_static_files_are_served_with_their_types(pages_client, path, media_type):
    response = pages_client.get(path)
    assert response.status_code == 200 and media_type in response.headers["content-type"]


def test_pages_send_a_content_security_policy_that_allows_only_the_hub(pages_client):
    headers = pages_client.get("/verify").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"

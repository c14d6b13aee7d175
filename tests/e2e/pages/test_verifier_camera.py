"""The verifier page's camera path: chromium's fake camera plays a video of a
hub-issued QR code, the vendored zxing-wasm reads it in the page, and the
page shows green. (Chromium reads the fake camera from a Y4M file.)"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect

from tests.e2e.browser import chromium_path, screenshot

WIDTH, HEIGHT = 640, 480


def qr_video(png: bytes, path: Path, frames: int = 5) -> Path:
    """A few frames of the QR code centred on white, as a YUV 4:2:0 Y4M file."""
    code = Image.open(io.BytesIO(png)).convert("L")
    side = HEIGHT - 40
    code = code.resize((side, side), Image.NEAREST)
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(code, ((WIDTH - side) // 2, (HEIGHT - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_the_camera_reads_a_qr_code_in_the_page_and_the_hub_verifies_it(browser, live, tmp_path: Path):
    web = live.web
    uvci = web.raw.post(f"/certificates/patients/{live.an}", headers=web.site).json()["uvci"]
    video = qr_video(web.raw.get(f"/certificates/{uvci}/dcc.png", headers=web.site).content, tmp_path / "qr.y4m")
    # A browser of its own: the fake camera is a launch option.
    with_camera = browser.browser_type.launch(executable_path=chromium_path(), args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ])
    try:
        context = with_camera.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN", permissions=["camera"])
        page = context.new_page()
        page.goto(live.url("/verify"))
        scan = page.locator("#scan")
        expect(scan).to_be_visible()  # shown only when the reader loaded and a camera API exists
        scan.click()
        verdict = page.locator("#verdict")
        expect(verdict).to_have_attribute("data-valid", "true", timeout=20_000)
        expect(page.locator("#holder")).to_have_text("Nguyễn Văn An")
        screenshot(page, "verify-camera")
    finally:
        with_camera.close()

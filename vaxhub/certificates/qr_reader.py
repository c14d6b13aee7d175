"""Read the QR codes in an image (a photo or a screenshot of a certificate).

Decoding is zxing-cpp's (its wheel ships the native library); Pillow opens
the image. Images are bounded before decoding: a small file may declare
a huge canvas (a decompression bomb).
"""

from __future__ import annotations

import io
import warnings

from vaxhub.errors import MalformedInput

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


def read_qr_codes(data: bytes) -> list[str]:
    """The text of every QR code in the image, in reading order. Raises
    MalformedInput when the bytes are no image, too large, or hold no QR code."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise MalformedInput(f"image of {len(data)} bytes: at most {MAX_IMAGE_BYTES} are read")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette PNGs with transparency, EXIF quirks
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise MalformedInput(f"image of {width}x{height} pixels is too large to read")
                image.load()
                results = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MalformedInput(f"not a readable image: {exc}") from exc
    texts = [r.text for r in results if r.valid and r.text]
    if not texts:
        raise MalformedInput("no QR code found in the image")
    return texts


def certificate_in_image(data: bytes) -> str:
    """The health certificate QR text in an image: the first code that is an
    EU DCC or a SMART Health Card (an image may hold other codes too), else
    the first code."""
    texts = read_qr_codes(data)
    return next((t for t in texts if t.startswith(("HC1:", "shc:/"))), texts[0])

"""Reading the QR code in a patrol photo on the server: a worker who cannot scan in the app
(DingTalk, WeCom on a desktop) sends a photo of the checkpoint's label instead.

CPU-bound and synchronous on purpose: the caller runs it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

# A phone photo is 12 MP (4032x3024). A label photographed from arm's length is still hundreds
# of pixels wide at about 2000 px, which the JPEG decoder gives directly (a draft at 1/2 the
# size): such a photo is read in ~20 ms, against ~40 ms in full.
LONG_SIDE = 2000
QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)     # and its Micro and rMQR kin

# What Pillow raises for bytes that are not an image, or a damaged one: an unknown format or a
# truncated file (OSError, its UnidentifiedImageError, EOFError), a bad header (ValueError,
# SyntaxError), or a size that would fill the memory (DecompressionBombError).
_NOT_AN_IMAGE = (OSError, EOFError, ValueError, SyntaxError, Image.DecompressionBombError)


def decode_qr(data: bytes) -> list[str]:
    """The texts of the QR codes found in an image (JPEG/PNG bytes), each once, in the order
    zxing finds them; [] when none or when the bytes are not an image.

    A large photo is read at a reduced size first (fast); when nothing is found there it is
    read once more at full size, for a small label far away in a big photo."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            reduced = _grey(image, LONG_SIDE)
        found = _read(reduced)
        if not found and reduced.size != size:
            with Image.open(io.BytesIO(data)) as image:
                found = _read(_grey(image, max(size)))
    except _NOT_AN_IMAGE:
        return []
    return found


def _grey(image: Image.Image, long_side: int) -> Image.Image:
    """The image (just opened) in grey, about `long_side` px on its long side if it is larger.
    A JPEG is decoded straight to grey (half the time of colour) and at 1/2, 1/4 or 1/8 of its
    size where that is enough (draft); then any image is averaged down by a whole factor."""
    longest = max(image.size)
    image.draft("L", (image.width * long_side // longest, image.height * long_side // longest))
    grey = image.convert("L")
    factor = round(max(grey.size) / long_side)
    return grey.reduce(factor) if factor > 1 else grey


def _read(grey: Image.Image) -> list[str]:
    return list(dict.fromkeys(code.text for code in zxingcpp.read_barcodes(grey, formats=QR)))

"""Reading the QR code in a patrol photo on the server: a worker who cannot scan in the app
(DingTalk, WeCom on a desktop) sends a photo of the checkpoint's label instead.

CPU-bound and synchronous on purpose: the caller runs it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

# A phone photo is 12 MP; QR codes on a label photographed from arm's length are still hundreds
# of pixels wide at this size, and zxing reads a ~2 MP image in a few tens of milliseconds.
LONG_SIDE = 1800
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
            large = max(image.size) > LONG_SIDE
            if large:
                # For a JPEG, thumbnail() asks the decoder for a draft at 1/2, 1/4 or 1/8 of
                # the size: the full 12 MP are never decoded.
                image.thumbnail((LONG_SIDE, LONG_SIDE))
            found = _read(image)
        if not found and large:
            with Image.open(io.BytesIO(data)) as image:
                found = _read(image)
    except _NOT_AN_IMAGE:
        return []
    return found


def _read(image: Image.Image) -> list[str]:
    barcodes = zxingcpp.read_barcodes(image.convert("L"), formats=QR)
    return list(dict.fromkeys(barcode.text for barcode in barcodes))

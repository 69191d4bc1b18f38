"""A worker's photo of a checkpoint's label is read on the server; anything else reads as no
code at all, never as an error."""

import io
import random

import pytest
from PIL import Image

from bot.media.qr import decode_qr
from tests.qr_photos import label_photo

PAYLOAD = "cp1.A3-01.7f3kq9.Xb2mN8pQ4rT6vW1yZ3aC5eG7iK9mO"


@pytest.mark.parametrize("angle", [8.0, 10.0, 15.0])
def test_a_photo_of_a_label_gives_its_payload(angle: float) -> None:
    assert decode_qr(label_photo(PAYLOAD, angle=angle)) == [PAYLOAD]


def test_a_small_label_in_a_large_photo_is_found_at_full_size() -> None:
    # The code is ~100 px wide in 4000: too small to read once the photo is reduced to 1800.
    label = Image.open(io.BytesIO(label_photo(PAYLOAD))).resize((400, 300))
    photo = Image.new("RGB", (4000, 3000), (128, 128, 128))
    photo.paste(label, (100, 100))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=85)
    assert decode_qr(out.getvalue()) == [PAYLOAD]


def test_a_photo_without_a_code_gives_nothing() -> None:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((1600, 1200)).convert("RGB").save(out, "JPEG")
    assert decode_qr(out.getvalue()) == []


@pytest.mark.parametrize("data", [
    b"",
    random.Random(7).randbytes(50_000),
    label_photo(PAYLOAD)[:5_000],                   # a JPEG cut short in transfer
    b"\x89PNG\r\n\x1a\n" + bytes(100),              # a PNG signature and nothing else
], ids=["empty", "random", "truncated-jpeg", "bad-png"])
def test_bytes_that_are_not_an_image_give_nothing(data: bytes) -> None:
    assert decode_qr(data) == []

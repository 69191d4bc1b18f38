"""Photos of a checkpoint's label as a worker's phone takes them: the QR code on a white card,
on a grey, unevenly lit and noisy background, a little askew, JPEG-compressed. The unit tests
decode them; the end-to-end tests send them through the WeCom and DingTalk simulators."""

from __future__ import annotations

import io
import random

import segno
from PIL import Image, ImageDraw, ImageFilter

SIZE = (1280, 960)


def label_photo(payload: str, *, angle: float = 10.0) -> bytes:
    """JPEG bytes (quality 70) of a label carrying `payload`, turned by `angle` degrees; the
    same payload and angle give the same bytes."""
    photo = _background(random.Random(f"{payload}/{angle}"))
    card = _card(payload).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True,
                                 fillcolor=(0, 0, 0, 0))
    photo.paste(card, ((SIZE[0] - card.width) // 2, (SIZE[1] - card.height) // 2), card)
    out = io.BytesIO()
    photo.filter(ImageFilter.GaussianBlur(0.8)).save(out, "JPEG", quality=70)    # a soft lens
    return out.getvalue()


def _card(payload: str) -> Image.Image:
    """The printed label: the QR code with its quiet zone on white, a grey rule below."""
    qr = io.BytesIO()
    segno.make(payload, error="q", micro=False).save(qr, kind="png", scale=7, border=4)
    code = Image.open(qr).convert("RGBA")
    card = Image.new("RGBA", (code.width + 40, code.height + 120), (250, 250, 245, 255))
    card.paste(code, (20, 20))
    ImageDraw.Draw(card).rectangle((20, code.height + 50, card.width - 20, code.height + 70),
                                   fill=(90, 90, 90, 255))
    return card


def _background(rng: random.Random) -> Image.Image:
    """Grey with light falling off to one side, and sensor noise."""
    light = Image.linear_gradient("L").resize(SIZE).point(lambda v: 150 - v // 4)
    noise = Image.frombytes("L", SIZE, rng.randbytes(SIZE[0] * SIZE[1]))
    grey = Image.blend(light, noise, 0.12).filter(ImageFilter.GaussianBlur(1))
    return Image.merge("RGB", (grey, grey, grey))

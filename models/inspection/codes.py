"""What a checkpoint's QR code carries: `SBX1:<code>:<signature>`, the signature an HMAC of the
code under the plant's own key. A label printed by another plant, or a code typed into a QR
generator, fails the check; the short code printed beside it is what people type where the
platform cannot scan (it proves less, and the visit records how it came).

The key is made once per database, at random, and never leaves it: no secret in the files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.sql import insert_once

PREFIX = "SBX1"
SIGNATURE_CHARS = 16           # 80 bits of base32: short enough for a small, sturdy QR code
# A checkpoint's short code, as printed and typed: A3-01, T1-02, WS3-B-12 (the hyphen tells it
# from other words typed in chat: a quiz's letters, 好, OK).
CODE = re.compile(r"(?=.{3,32}$)[A-Z0-9]+(?:-[A-Z0-9]+)+")
PAYLOAD = re.compile(rf"{PREFIX}:({CODE.pattern}):([A-Z2-7]{{{SIGNATURE_CHARS}}})")


class SigningKey(Model):
    id = fields.IntField(primary_key=True)
    secret = fields.CharField(max_length=64)      # hex

    class Meta:
        table = "inspection_key"


class Refusal(StrEnum):
    NOT_OURS = "not_ours"       # a QR code that is not a checkpoint's label
    FORGED = "forged"           # our format, a signature this plant never made


async def signing_key() -> bytes:
    """The plant's key, made on first use (loading the checkpoints makes it)."""
    row = await SigningKey.get_or_none(id=1)
    if row is None:
        await insert_once(SigningKey, [{"id": 1, "secret": secrets.token_hex(32)}], unique="id")
        row = await SigningKey.get(id=1)
    return bytes.fromhex(row.secret)


def _signature(key: bytes, code: str) -> str:
    digest = hmac.new(key, f"{PREFIX}:{code}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:SIGNATURE_CHARS]


def sign(key: bytes, code: str) -> str:
    """The text of `code`'s QR code."""
    return f"{PREFIX}:{code}:{_signature(key, code)}"


def read_payload(key: bytes, text: str) -> str | Refusal:
    """The checkpoint code a scanned text names, or why it is refused."""
    found = PAYLOAD.fullmatch(text.strip())
    if found is None:
        return Refusal.NOT_OURS
    code, signature = found.groups()
    if not hmac.compare_digest(signature, _signature(key, code)):
        return Refusal.FORGED
    return code

"""WeCom callback crypto (WXBizMsgCrypt): signatures, AES-256-CBC framing, safe XML parsing.

The only module that imports wechatpy: its cipher does the AES; the framing around it is ours so
that it can be strict where wechatpy is lax (constant-time signature check, padding validated,
CSPRNG prefix, receive id compared) — see shared/reference/chat-protocols.md §1.3.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import xml.etree.ElementTree as ET
from typing import Any

from wechatpy.crypto.base import WeChatCipher  # type: ignore[import-untyped]

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
REPEATED = frozenset({"SelectedItem", "OptionId", "item"})  # lists even when there is only one


class CryptoError(Exception):
    """A callback we must not trust; `code` follows the official library's numbering."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class BadSignature(CryptoError):
    def __init__(self) -> None:
        super().__init__(-40001, "signature mismatch")


class WrongReceiver(CryptoError):
    def __init__(self) -> None:
        super().__init__(-40005, "receive id (corp id) mismatch")


class BadXml(CryptoError):
    def __init__(self, reason: str) -> None:
        super().__init__(-40002, reason)


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """Parse a WeCom XML document; DTDs and entities are refused, never expanded.

    ElementTree's C parser rather than xmltodict: every callback parses two documents (the
    envelope and the decrypted message), and this is several times faster."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise BadXml("XML with a DTD is refused")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        raise BadXml(f"malformed XML: {exc}") from None
    doc = _as_dict(root) if root.tag == "xml" else None
    if not isinstance(doc, dict):
        raise BadXml("no <xml> root element")
    return doc


def _as_dict(node: ET.Element) -> Any:
    """An element as text (None when empty) or as a dict of its children; a child that occurs
    more than once, or is named in REPEATED, becomes a list. Attributes are not used."""
    if len(node) == 0:
        return (node.text or "").strip() or None
    children: dict[str, Any] = {}
    for child in node:
        value = _as_dict(child)
        if child.tag in REPEATED:
            children.setdefault(child.tag, []).append(value)
        elif child.tag in children:
            earlier = children[child.tag]
            children[child.tag] = [*earlier, value] if isinstance(earlier, list) else [earlier,
                                                                                       value]
        else:
            children[child.tag] = value
    return children


class WeComCrypto:
    """Encrypts and decrypts for one app: `receive_id` is the CorpID for self-built apps."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:
            raise CryptoError(-40004, "EncodingAESKey must decode to 32 bytes")
        self._token = token
        self._cipher = WeChatCipher(key)
        self._receive_id = receive_id.encode()

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = signature(self._token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise BadSignature()

    def decrypt(self, encrypted: str) -> str:
        try:
            plain = self._cipher.decrypt(base64.b64decode(encrypted, validate=True))
        except (binascii.Error, ValueError):
            raise CryptoError(-40010, "bad base64 or cipher text") from None
        pad = plain[-1] if plain else 0
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError(-40007, "bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise CryptoError(-40008, "buffer too short")
        (length,) = struct.unpack(">I", content[:4])
        message, receive_id = content[4:4 + length], content[4 + length:]
        if len(message) != length:
            raise CryptoError(-40008, "length field exceeds the buffer")
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise WrongReceiver()
        return message.decode("utf-8")

    def encrypt(self, message: str, prefix: bytes | None = None) -> str:
        """`prefix` is the 16 random bytes; given only by conformance tests."""
        raw = message.encode("utf-8")
        body = (prefix or os.urandom(16)) + struct.pack(">I", len(raw)) + raw + self._receive_id
        pad = BLOCK - len(body) % BLOCK
        return base64.b64encode(self._cipher.encrypt(body + bytes([pad]) * pad)).decode()

    def open_echo(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification: the plaintext to answer with."""
        try:
            self.verify(msg_signature, timestamp, nonce, echostr)
        except BadSignature:
            # aiohttp decodes '+' as a space; WeCom percent-encodes it, but some proxies do not.
            if " " not in echostr:
                raise
            echostr = echostr.replace(" ", "+")
            self.verify(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def open_message(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """A POSTed callback: verify the outer envelope and return the plaintext XML."""
        envelope = parse_xml(body)
        encrypted = envelope.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise BadXml("no Encrypt element")
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def seal(self, plaintext: str, timestamp: str, nonce: str,
             prefix: bytes | None = None) -> tuple[str, str]:
        """Encrypt and sign: returns (Encrypt, msg_signature)."""
        encrypted = self.encrypt(plaintext, prefix)
        return encrypted, signature(self._token, timestamp, nonce, encrypted)

    def seal_xml(self, plaintext: str, timestamp: str, nonce: str) -> tuple[bytes, str]:
        """A complete callback body as WeCom would POST it, and its signature."""
        encrypted, sig = self.seal(plaintext, timestamp, nonce)
        body = (f"<xml><ToUserName><![CDATA[{self._receive_id.decode()}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                "<AgentID><![CDATA[0]]></AgentID></xml>")
        return body.encode(), sig

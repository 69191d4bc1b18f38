"""Conformance: the official Tencent vectors, wechatpy's vectors and the project-generated card
event vector of chat-protocols.md §5, plus the refusals a hostile body must meet."""

import base64

import pytest

from bot.channels.wecom import parse_event
from bot.channels.wecom_crypto import (
    BadSignature,
    BadXml,
    CryptoError,
    WeComCrypto,
    WrongReceiver,
    parse_xml,
    signature,
)
from models.inbound import InboundKind

# §5.1 official sample (sbzhu/weworkapi_python callback/Sample.py)
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
ECHO = ("fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==")
MSG_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzB"
    "hzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWco"
    "D4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy2"
    "4qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8j"
    "mnKiypE+"
)
MSG_BODY = (
    f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n<Encrypt><![CDATA[{MSG_ENCRYPT}]]>"
    "</Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
).encode()
MSG_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)


@pytest.fixture
def official() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_official_url_verification(official: WeComCrypto) -> None:
    echo = official.open_echo("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373",
                              "47744683", ECHO)
    assert echo == "1288432023552776189"


def test_official_url_verification_survives_plus_decoded_as_space(official: WeComCrypto) -> None:
    mangled = ECHO.replace("+", " ")
    assert official.open_echo("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373",
                              "47744683", mangled) == "1288432023552776189"


def test_official_message_decrypts(official: WeComCrypto) -> None:
    plain = official.open_message(MSG_BODY, "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
                                  "1476422779", "1597212914")
    assert plain == MSG_PLAIN
    event = parse_event(plain, CORP_ID)
    assert (event.user_id, event.kind, event.text) == ("ChenJiaShun", InboundKind.TEXT, "你好")
    assert event.dedup_key == f"wecom:{CORP_ID}:msg:1456453720"


def test_official_vectors_reencrypt_byte_for_byte(official: WeComCrypto) -> None:
    """The IV is fixed, so the official random prefixes reproduce the official ciphertexts."""
    assert official.encrypt(MSG_PLAIN, b"694ce5a83ae07fe3") == MSG_ENCRYPT
    assert official.encrypt("1288432023552776189", b"8908d0ff052afda0") == ECHO


def test_wechatpy_vectors() -> None:
    crypto = WeComCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
                         "wx49f0ab532d5d035a")
    echo = ("4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p"
            "+Q==")
    assert crypto.open_echo("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780",
                            "437374425", echo) == "5927782489442352469"
    with pytest.raises(BadSignature):
        crypto.open_echo("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780",
                         "437374424", echo)
    reply = ("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
             "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
             "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
             "<CreateTime>1411525903</CreateTime>\n</xml>")
    encrypted, sig = crypto.seal(reply, "1411525903", "461056294", b"1234567890123456")
    assert encrypted.startswith("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdY")
    assert encrypted.endswith("Yjxx" + "EE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3")
    assert sig == "407518b7649e86ef23978113f92d27afa9296533"


def test_wechatpy_decrypt_vector() -> None:
    crypto = WeComCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
                         "wx49f0ab532d5d035a")
    enc = ("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6I"
           "HCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTd"
           "aXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmU"
           "HzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGh"
           "cUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")
    body = (f"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
            f"<Encrypt><![CDATA[{enc}]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>")
    plain = crypto.open_message(body.encode(), "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
                                "1411525903", "461056294")
    assert "<MsgId>4363689963896700987</MsgId>" in plain
    assert parse_event(plain, "wx49f0ab532d5d035a").text == "test"


CARD_EVENT = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[manager01]]>"
    "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[approve]]></EventKey>"
    "<TaskId><![CDATA[hz-20231114-0001]]></TaskId><CardType><![CDATA[button_interaction]]>"
    "</CardType><ResponseCode><![CDATA[RESPONSE_CODE_SAMPLE]]></ResponseCode><AgentID>1000002"
    "</AgentID></xml>"
)


def test_project_generated_card_event_vector(official: WeComCrypto) -> None:
    encrypted, sig = official.seal(CARD_EVENT, "1700000000", "1234567890", b"0123456789abcdef")
    assert sig == "f256e50710c9de8e8c260d4a4674a6de9213bd4a"
    assert encrypted.startswith("scEag1243Fmy/fYz4Ux8D/VPFh644O8NGFcF6To4LK2Tr5eWtGLokEcp9i9K4")
    assert encrypted.endswith("PGrY7E0slFPi7TxpkTTe+d+wlA+jnkql81q9L0Bpv/YGdBCfTOX2ZMruvoB1zN1l"
                              "HzgnE5Y7M11mgoRIdRQYuceZU8DJLz2PBfLvrmOZq+MBHXOlNqVZ2WPw0Kz0bst1SY4"
                              "wQTNSNisBNZfvMsjMscDF3v7Nxce8uNIcaJ/5ZVqGKoL59uayPo1DIRJ9iHjpeZ9ujOJtM=")
    event = parse_event(official.decrypt(encrypted), CORP_ID)
    assert event.kind is InboundKind.CARD_ACTION
    assert (event.user_id, event.event_key, event.task_id, event.response_code) == (
        "manager01", "approve", "hz-20231114-0001", "RESPONSE_CODE_SAMPLE")


def test_project_generated_passive_reply_vector(official: WeComCrypto) -> None:
    plain = ("<xml><ToUserName><![CDATA[ChenJiaShun]]></ToUserName><FromUserName><![CDATA["
             "ww1436e0e65a779aee]]></FromUserName><CreateTime>1476422779</CreateTime><MsgType>"
             "<![CDATA[text]]></MsgType><Content><![CDATA[已收到隐患上报]]></Content></xml>")
    encrypted, sig = official.seal(plain, "1476422779", "1597212914", b"aaaabbbbccccdddd")
    assert sig == "08bb3c908710d48f353934ffb5a85875f507661c"
    assert encrypted.startswith("RBkZDeI8jqj0PZbWAaXjNQpi0R+vgTNwp7ur4A4x7TGV7WWbC+Fa3HS05bpi8g")


def test_selected_items_are_parsed_one_or_many() -> None:
    plain = CARD_EVENT.replace("</xml>", (
        "<SelectedItems><SelectedItem><QuestionKey><![CDATA[q1]]></QuestionKey><OptionIds>"
        "<OptionId><![CDATA[o1]]></OptionId><OptionId><![CDATA[o2]]></OptionId></OptionIds>"
        "</SelectedItem><SelectedItem><QuestionKey><![CDATA[q2]]></QuestionKey><OptionIds>"
        "<OptionId><![CDATA[o3]]></OptionId></OptionIds></SelectedItem></SelectedItems></xml>"))
    assert parse_event(plain, CORP_ID).selected == {"q1": ["o1", "o2"], "q2": ["o3"]}


def test_tampered_signature_is_refused(official: WeComCrypto) -> None:
    with pytest.raises(BadSignature):
        official.open_message(MSG_BODY, "0c3914025cb4b4d68103f6bfc8db550f79dcf48f",
                              "1476422779", "1597212914")


def test_other_corp_is_refused() -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, "ww0000000000000000")
    with pytest.raises(WrongReceiver):
        crypto.open_message(MSG_BODY, "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
                            "1476422779", "1597212914")


@pytest.mark.parametrize("pad", [0, 33])
def test_bad_padding_is_refused(official: WeComCrypto, pad: int) -> None:
    from wechatpy.crypto.base import WeChatCipher

    key = base64.b64decode(AES_KEY + "=")
    raw = b"x" * 16 + b"\x00\x00\x00\x01" + b"a" + CORP_ID.encode()
    raw += b"\x00" * (-len(raw) % 32 - 1) + bytes([pad])
    encrypted = base64.b64encode(WeChatCipher(key).encrypt(raw)).decode()
    with pytest.raises(CryptoError, match="padding"):
        official.decrypt(encrypted)


def test_truncated_base64_is_refused(official: WeComCrypto) -> None:
    with pytest.raises(CryptoError):
        official.decrypt(MSG_ENCRYPT[:-5])


def test_entity_expansion_is_refused() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><Encrypt>&lol2;</Encrypt></xml>')
    with pytest.raises(BadXml):
        parse_xml(bomb)


def test_malformed_xml_is_refused() -> None:
    with pytest.raises(BadXml):
        parse_xml(b"<xml><Encrypt>abc</xml>")


def test_signature_is_sha1_of_sorted_parts() -> None:
    assert signature(TOKEN, "1476416373", "47744683", ECHO) == (
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb")

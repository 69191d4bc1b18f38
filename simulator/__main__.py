"""`python -m simulator [wecom|dingtalk] ...`: play a platform for a demo.

`python -m simulator [wecom] --port 9000 --callback http://127.0.0.1:8080/wecom/callback` plays
WeCom: the bot (with SAFETYBOT_WECOM_API_BASE pointing here) sends to it, and each delivered
message is printed. Credentials come from the same SAFETYBOT_WECOM_* variables the bot reads, so
both sides agree without a second copy of the secrets.

`python -m simulator dingtalk --port 9001` plays DingTalk in Stream mode: the bot (with
SAFETYBOT_DINGTALK_API_BASE pointing here) connects to its gateway and sends to its API
(`--mode http --callback URL` posts signed callbacks instead). Credentials come from
SAFETYBOT_DINGTALK_CLIENT_ID, _CLIENT_SECRET and _ROBOT_CODE.

Type `USER TEXT` (e.g. `zhangsan 帮助`) to write to the bot as that person, or
`USER photo FILE` to send a photo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tomllib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from simulator.dingtalk import DingTalkSimulator
from simulator.wecom import WeComSimulator

PLATFORMS = ("wecom", "dingtalk")
WECOM = "SAFETYBOT_WECOM_"
WECOM_CREDENTIALS = ("CORP_ID", "AGENT_ID", "SECRET", "TOKEN", "AES_KEY")
DINGTALK = "SAFETYBOT_DINGTALK_"
DINGTALK_CREDENTIALS = ("CLIENT_ID", "CLIENT_SECRET", "ROBOT_CODE")


class Answered(Protocol):
    @property
    def status(self) -> int: ...


class Person(Protocol):
    async def says(self, text: str) -> Answered: ...

    async def sends_photo(self, data: bytes) -> Answered: ...


class Platform(Protocol):
    def user(self, user_id: str) -> Person: ...


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in PLATFORMS:
        platform, args = args[0], args[1:]
    else:
        platform = "wecom"          # `python -m simulator` alone has always meant WeCom
    return run_dingtalk(args) if platform == "dingtalk" else run_wecom(args)


def run_wecom(argv: list[str]) -> int:
    parser = _parser("wecom", 9000, "http://127.0.0.1:8080/wecom/callback")
    args = parser.parse_args(argv)
    _require(parser, WECOM, WECOM_CREDENTIALS)
    if not os.environ[WECOM + "AGENT_ID"].isdigit():
        parser.error(f"{WECOM}AGENT_ID must be a number")
    users = [user_id for user_id, _ in read_roster(parser, args.org)]
    _run(serve_wecom(args.host, args.port, args.callback, users))
    return 0


def run_dingtalk(argv: list[str]) -> int:
    parser = _parser("dingtalk", 9001, "http://127.0.0.1:8080/dingtalk/callback")
    parser.add_argument("--mode", choices=("stream", "http"), default="stream",
                        help="Stream (the bot connects here) or HTTP callbacks to --callback")
    args = parser.parse_args(argv)
    _require(parser, DINGTALK, DINGTALK_CREDENTIALS)
    _run(serve_dingtalk(args.host, args.port, args.mode, args.callback,
                        read_roster(parser, args.org)))
    return 0


def _parser(platform: str, port: int, callback: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m simulator {platform}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--callback", default=callback)
    parser.add_argument("--org", type=Path, default=Path("config/demo-org.toml"),
                        help="roster TOML with [[users]] id = ...")
    return parser


def _require(parser: argparse.ArgumentParser, prefix: str, names: tuple[str, ...]) -> None:
    missing = [prefix + name for name in names if not os.environ.get(prefix + name)]
    if missing:
        parser.error(f"set {', '.join(missing)} in the environment")


def read_roster(parser: argparse.ArgumentParser, path: Path) -> list[tuple[str, str]]:
    """(platform user id, name) of each person in the roster: their `platform_id` where the
    roster names one beside the key, else `id`."""
    try:
        with path.open("rb") as fh:
            people = tomllib.load(fh).get("users", [])
        return [(str(u.get("platform_id") or u["id"]), str(u.get("name") or "")) for u in people]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        parser.error(f"cannot read users from {path}: {exc}")


def _run(serving: Coroutine[Any, Any, None]) -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serving)


async def serve_wecom(host: str, port: int, callback: str, users: list[str]) -> None:
    env = os.environ
    sim = WeComSimulator(env[WECOM + "CORP_ID"], int(env[WECOM + "AGENT_ID"]),
                         env[WECOM + "SECRET"], env[WECOM + "TOKEN"], env[WECOM + "AES_KEY"],
                         users)
    sim.callback_url = callback
    url = await sim.start(host, port)
    logging.info("企业微信模拟器 %s，%d 名成员；请设置 SAFETYBOT_WECOM_API_BASE=%s", url,
                 len(users), url)
    try:
        await type_as_users(sim)
    finally:
        await sim.stop()


async def serve_dingtalk(host: str, port: int, mode: str, callback: str,
                         people: list[tuple[str, str]]) -> None:
    env = os.environ
    sim = DingTalkSimulator(env[DINGTALK + "CLIENT_ID"], env[DINGTALK + "CLIENT_SECRET"],
                            env[DINGTALK + "ROBOT_CODE"], mode="http" if mode == "http"
                            else "stream")
    for user_id, name in people:
        sim.add_user(user_id, name)
    sim.callback_url = callback
    url = await sim.start(host, port)
    logging.info("钉钉模拟器 %s（%s），%d 名成员；请设置 SAFETYBOT_DINGTALK_API_BASE=%s",
                 url, "Stream 模式" if mode == "stream" else "HTTP 回调模式", len(people), url)
    try:
        await type_as_users(sim)
    finally:
        await sim.stop()


async def type_as_users(sim: Platform) -> None:
    """Read `USER TEXT` lines from the terminal and deliver them as that person's messages."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        user, _, text = line.strip().partition(" ")
        if not user or not text:
            continue
        kind, _, path = text.partition(" ")
        try:
            if kind == "photo" and path:
                photo = await asyncio.to_thread(Path(path).read_bytes)
                answer = await sim.user(user).sends_photo(photo)
            else:
                answer = await sim.user(user).says(text)
        except TimeoutError:
            # DingTalk Stream: nobody ACKed; the frame stays queued for the next connection.
            logging.warning("← %s  %s（机器人未确认，连接后将重新投递）", user, text)
            continue
        except aiohttp.ClientError as exc:
            logging.warning("← %s  %s（回调失败：%s；机器人启动了吗？）", user, text, exc)
            continue
        logging.info("← %s  %s（应答 %d）", user, text, answer.status)
    await asyncio.Event().wait()   # stdin closed: keep serving the bot


if __name__ == "__main__":
    sys.exit(main())

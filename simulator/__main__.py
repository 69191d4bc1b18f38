"""`python -m simulator --port 9000 --callback http://127.0.0.1:8080/wecom/callback`

Plays WeCom for a demo: the bot (with SAFETYBOT_WECOM_API_BASE pointing here) sends to it, and each
delivered message is printed. Credentials come from the same SAFETYBOT_WECOM_* variables the bot
reads, so both sides agree without a second copy of the secrets.

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
from pathlib import Path

from simulator.wecom import WeComSimulator

ENV = "SAFETYBOT_WECOM_"
CREDENTIALS = ("CORP_ID", "AGENT_ID", "SECRET", "TOKEN", "AES_KEY")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--callback", default="http://127.0.0.1:8080/wecom/callback")
    parser.add_argument("--org", type=Path, default=Path("config/demo-org.toml"),
                        help="roster TOML with [[users]] id = ...")
    args = parser.parse_args(argv)
    missing = [ENV + name for name in CREDENTIALS if not os.environ.get(ENV + name)]
    if missing:
        parser.error(f"set {', '.join(missing)} in the environment")
    if not os.environ[ENV + "AGENT_ID"].isdigit():
        parser.error(f"{ENV}AGENT_ID must be a number")
    try:
        with args.org.open("rb") as fh:
            users = [str(u["id"]) for u in tomllib.load(fh).get("users", [])]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        parser.error(f"cannot read users from {args.org}: {exc}")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.callback, users))
    return 0


async def serve(host: str, port: int, callback: str, users: list[str]) -> None:
    env = os.environ
    sim = WeComSimulator(env[ENV + "CORP_ID"], int(env[ENV + "AGENT_ID"]), env[ENV + "SECRET"],
                         env[ENV + "TOKEN"], env[ENV + "AES_KEY"], users)
    sim.callback_url = callback
    url = await sim.start(host, port)
    logging.info("企业微信模拟器 %s，%d 名成员；请设置 SAFETYBOT_WECOM_API_BASE=%s", url,
                 len(users), url)
    try:
        await type_as_users(sim)
    finally:
        await sim.stop()


async def type_as_users(sim: WeComSimulator) -> None:
    """Read `USER TEXT` lines from the terminal and deliver them as that person's messages."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        user, _, text = line.strip().partition(" ")
        if not user or not text:
            continue
        kind, _, path = text.partition(" ")
        if kind == "photo" and path:
            photo = await asyncio.to_thread(Path(path).read_bytes)
            answer = await sim.user(user).sends_photo(photo)
        else:
            answer = await sim.user(user).says(text)
        logging.info("← %s  %s（回调应答 %d）", user, text, answer.status)
    await asyncio.Event().wait()   # stdin closed: keep serving the bot


if __name__ == "__main__":
    sys.exit(main())

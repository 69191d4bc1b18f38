"""Test harness: the service on a real port, and the credentials it shares with the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("SAFETYBOT_TEST_BACKEND", "sqlite")
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
SECRET = "test-secret-not-real"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
PEOPLE = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_settings(database_url: str, api_base: str, media_dir: Path, **overrides: Any
                     ) -> Settings:
    env = {
        "SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_PORT": str(free_port()),
        "SAFETYBOT_MEDIA_DIR": str(media_dir), "SAFETYBOT_POLL_SECONDS": "0.05",
        "SAFETYBOT_INBOX_RETRY_SECONDS": "0.05",
        "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
        "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
        "SAFETYBOT_WECOM_AES_KEY": AES_KEY, "SAFETYBOT_WECOM_API_BASE": api_base,
        "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1",
    }
    env.update({f"SAFETYBOT_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)


class Service:
    """The real app on a real port; `start()` again after `stop()` is a restart. `clock`, when
    given, is the service's "now" (tests move it instead of waiting)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.app: web.Application | None = None
        self.fatal: list[str] = []          # why a background loop stopped the service
        self._clock = clock
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    async def start(self, workers: bool = True) -> None:
        extra = {} if self._clock is None else {"clock": self._clock}
        self.app = create_app(self.settings, workers=workers, on_fatal=self.fatal.append, **extra)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`safetybot ARGS` run to its end in a process of its own, with `env` (and PATH) only."""
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"], **env}, timeout=60,
                          cwd=ROOT)


STOP_SECONDS = 20      # beyond the service's own grace for work in flight (10 s)


async def spawn(command: list[str], database_url: str, api_base: str, media: Path,
                log: Path | None = None, **overrides: object
                ) -> tuple[subprocess.Popen[bytes], str]:
    """`safetybot COMMAND` in a process of its own on a free port, once its /readyz answers;
    its log (stderr) goes to `log` when given."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "SAFETYBOT_DATABASE_URL": database_url,
           "SAFETYBOT_PORT": str(port), "SAFETYBOT_MEDIA_DIR": str(media),
           "SAFETYBOT_POLL_SECONDS": "0.05", "SAFETYBOT_LOG_LEVEL": "WARNING",
           "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
           "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
           "SAFETYBOT_WECOM_AES_KEY": AES_KEY, "SAFETYBOT_WECOM_API_BASE": api_base,
           # As in service_settings: an instance killed mid-refresh holds it for 2 s, not 20.
           "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1"}
    env.update({f"SAFETYBOT_{k.upper()}": str(v) for k, v in overrides.items()})
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    # A server process of its own, polled below, never waited on: nothing blocks the loop.
    with log.open("ab") if log else contextlib.nullcontext() as err:   # the child keeps a copy
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "bot.cli", *command], cwd=ROOT, env=env, stderr=err)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"safetybot {' '.join(command)} did not become ready")


async def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait for the exit without blocking the loop: the simulator serving the
    process's last sends runs in this loop."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not stop on SIGTERM within "
                             f"{STOP_SECONDS} s") from None

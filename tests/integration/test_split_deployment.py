"""The production deployment: `serve --no-workers` only acknowledges callbacks, `safetybot work`
handles what they stored and sends the replies; the two meet in the database."""

import asyncio
from pathlib import Path

import aiohttp
from tortoise.context import TortoiseContext

from models.inbox import InboxEvent, InboxStatus
from simulator.wecom import WeComSimulator
from tests.harness import spawn, stop


async def test_callbacks_in_one_process_are_handled_by_a_worker_in_another(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    web_proc, web_url = await spawn(["serve", "--no-workers"], database_url, wecom.base_url,
                                    media_dir)
    work_proc = None
    try:
        wecom.callback_url = f"{web_url}/wecom/callback"
        assert (await wecom.user("zhangsan").says("帮助")).status == 200
        assert (await wecom.user("lisi").says("帮助")).status == 200
        # Kept as a sleep: that a process does nothing has no state to wait for, so it is
        # watched for a while (ten of its workers' polls, had it any).
        await asyncio.sleep(0.5)
        assert await InboxEvent.filter(status=InboxStatus.PENDING).count() == 2
        assert wecom.messages_for("zhangsan") == []

        work_proc, work_url = await spawn(["work"], database_url, wecom.base_url, media_dir)
        await wecom.wait_for("zhangsan")
        await wecom.wait_for("lisi")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{work_url}/wecom/callback", data=b"<xml/>") as resp:
                assert resp.status == 404     # the worker answers no callbacks
            async with http.get(f"{work_url}/metrics") as resp:
                assert 'safetybot_inbox_handled_total{outcome="done"} 2.0' in await resp.text()
    finally:
        for proc in (web_proc, work_proc):
            if proc is not None:
                await stop(proc)
    assert await InboxEvent.filter(status=InboxStatus.DONE).count() == 2
    assert len(wecom.messages_for("zhangsan")) == len(wecom.messages_for("lisi")) == 1

"""Replicas on several hosts share one bucket: a photo one `work` process received is delivered by
another whose local folder is different, and the web chat of a third shows it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.clock import utc_now
from bot.roster import load_org, parse_roster
from models.hazard import Ticket
from models.org import User
from models.webchat import WebChatLine
from simulator.wecom import WeComSimulator
from tests.e2e.test_hazard_flow import accept_and_rectify, file_general
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    ROSTER_MEDIA,
    SECRET,
    TOKEN,
    settled,
    spawn,
    stop,
)
from tests.plant import DEMO_ORG, phone_of

pytestmark = pytest.mark.slow


async def test_a_photo_received_on_one_host_is_delivered_and_shown_by_others(
        db: TortoiseContext, database_url: str, tmp_path: Path,
        bucket: dict[str, str]) -> None:
    await load_org(DEMO_ORG, utc_now(), ROSTER_MEDIA)
    await User.filter(id="xuming").update(platform="webchat")     # the reviewer uses the page
    users = [u.id for u in parse_roster(DEMO_ORG.read_text(encoding="utf-8")).users]
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=users,
                         per_member_per_minute=10_000)
    await sim.start()
    hosts = {name: tmp_path / name for name in ("web", "a", "b")}   # each its own folder
    web, web_url = await spawn(["serve", "--no-workers"], database_url, sim.base_url,
                               hosts["web"], **bucket)
    work_a, _ = await spawn(["work"], database_url, sim.base_url, hosts["a"], **bucket)
    work_b = None
    try:
        sim.callback_url = f"{web_url}/wecom/callback"
        phone = phone_of(sim)
        # Host A takes 张三's report: his photo goes from WeCom into the bucket.
        _, owner, number = await file_general(phone)
        assigned = await owner.expect(f"隐患整改 {number}")
        await settled()
        await stop(work_a)

        # Host B takes it from there: 高峰's after-photo, then both to the reviewer.
        work_b, _ = await spawn(["work"], database_url, sim.base_url, hosts["b"], **bucket)
        await accept_and_rectify(owner, assigned, number)
        await settled()
    finally:
        for proc in (web, work_a, work_b):
            if proc is not None:
                await stop(proc)
        await sim.stop()

    ticket = await Ticket.get(number=number)
    [before], [after] = ticket.photos, ticket.evidence
    shown = await WebChatLine.filter(user_id="xuming", kind="image").order_by("id") \
        .values_list("media", flat=True)
    assert shown == [before, after]
    # The page on the web host shows both, from the bucket (restarted: its socket is new).
    web, web_url = await spawn(["serve", "--no-workers"], database_url, sim.base_url,
                               hosts["web"], **bucket)
    try:
        async with aiohttp.ClientSession() as http:
            for digest in (before, after):
                async with http.get(f"{web_url}/chat/media/{digest}",
                                    params={"user": "xuming"}) as resp:
                    assert resp.status == 200 and resp.content_type == "image/png"
                    assert hashlib.sha256(await resp.read()).hexdigest() == digest
            async with http.get(f"{web_url}/chat/media/{before}",
                                params={"user": "gaofeng"}) as resp:
                assert resp.status == 404          # not a line of his conversation
    finally:
        await stop(web)
    # No host kept a copy of its own.
    assert not any(any(folder.rglob("*")) for folder in hosts.values() if folder.exists())

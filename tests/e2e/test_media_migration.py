"""Moving a running plant's photos from the local folder to a bucket (`safetybot media migrate`),
switching the service over, and going on with the walk-through: every photo is still there, a
second run copies nothing, and `safetybot check-media` names the tickets whose photos are gone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tortoise.context import TortoiseContext

from models.hazard import Ticket
from simulator.wecom import WeComSimulator
from tests.e2e.test_hazard_flow import accept_and_rectify, file_general
from tests.harness import cli, service_settings, settled
from tests.plant import Person, phone_of, plant


def photos_seen(sim: WeComSimulator, user: str) -> list[str]:
    """The hashes of the photos `user` was sent, as WeCom received them."""
    return [hashlib.sha256(sim.media[m.body["image"]["media_id"]].data).hexdigest()
            for m in sim.messages_for(user) if m.msgtype == "image"]


async def test_the_folder_moves_to_a_bucket_and_the_walkthrough_still_shows_every_photo(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path,
        bucket: dict[str, str]) -> None:
    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_MEDIA_DIR": str(media_dir),
           **{f"SAFETYBOT_{k.upper()}": v for k, v in bucket.items() if k != "media_url"}}
    async with plant(database_url, media_dir) as (sim, service):
        assert isinstance(sim, WeComSimulator)
        phone = phone_of(sim)
        # On the folder: reported, accepted, rectified with an after-photo, sent for review.
        _, owner, number = await file_general(phone)
        await accept_and_rectify(owner, await owner.expect(f"隐患整改 {number}"), number)
        reviewer = Person(phone, "xuming")
        review = await reviewer.expect(f"整改复查 {number}")
        await settled()
        ticket = await Ticket.get(number=number)
        [before], [after] = ticket.photos, ticket.evidence
        assert photos_seen(sim, "xuming") == [before, after]

        # The copy runs beside the live service; the second copies only what is new. The two
        # photos, and the roster's two evacuation maps.
        first = cli("media", "migrate", "--to", bucket["media_url"], env=env)
        assert first.returncode == 0, first.stderr
        assert "4 copied and verified, 0 already in" in first.stdout
        assert f"set SAFETYBOT_MEDIA_URL={bucket['media_url']}/" in first.stdout
        await service.stop()
        again = cli("media", "migrate", "--to", bucket["media_url"], env=env)
        assert again.returncode == 0, again.stderr
        assert "0 copied and verified, 4 already in" in again.stdout

        # Switched: the same plant on the bucket, with an empty folder of its own.
        fresh = tmp_path / "fresh-host"
        service.settings = service_settings(database_url, sim.base_url, fresh,
                                            wecom_per_member_per_minute=10_000, **bucket)
        await service.start()
        sim.callback_url = f"{service.url}/wecom/callback"
        await reviewer.clicks(review, "驳回")
        await reviewer.expect("驳回原因")
        await reviewer.says("线头没有包扎")
        await reviewer.expect(f"已驳回 {number}")
        await owner.expect(f"{number} 复查未通过")
        await owner.says(f"已整改 {number}")
        await owner.expect("请发送", "整改后的照片")
        await owner.sends_photo()
        await owner.expect("已收到整改照片")
        await owner.says("提交")
        await owner.expect(f"{number} 已提交复查")
        review = await reviewer.expect(f"整改复查 {number}")
        await settled()
        await ticket.refresh_from_db()
        [again_after] = ticket.evidence
        # The before-photo came from the bucket: the reviewer sees it again, the same bytes.
        assert photos_seen(sim, "xuming") == [before, after, before, again_after]
        assert not fresh.exists()                     # nothing was kept on this host

    on_bucket = cli("check-media", env={**env, "SAFETYBOT_MEDIA_URL": bucket["media_url"]})
    assert on_bucket.returncode == 0, on_bucket.stderr
    assert "3 photos named by tickets" in on_bucket.stdout
    assert "tickets with photos missing: 0" in on_bucket.stdout
    # The folder never got the photo sent after the switch, and loses one more.
    (media_dir / before[:2] / before[2:4] / before).unlink()
    on_folder = cli("check-media", env=env)
    assert on_folder.returncode == 1
    assert f"{number}\t待复查\t整改前缺 1 张\t整改后缺 1 张\n" in on_folder.stdout
    assert "tickets with photos missing: 1" in on_folder.stdout

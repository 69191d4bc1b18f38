"""What an operator sees: liveness, readiness and metrics."""

from pathlib import Path

import aiohttp
import pytest

from simulator.wecom import WeComSimulator
from tests.harness import BACKEND, Service, service_settings


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_health_and_readiness(service: Service) -> None:
    assert (await get(f"{service.url}/healthz"))[0] == 200
    status, body = await get(f"{service.url}/readyz")
    assert status == 200 and "ready" in body


async def test_metrics_show_callbacks_queues_and_api_errors(
        service: Service, wecom: WeComSimulator) -> None:
    wecom.fail_next("message/send", -1)
    await wecom.user("zhangsan").says("帮助")
    await wecom.wait_for("zhangsan", timeout=15)
    status, text = await get(f"{service.url}/metrics")
    assert status == 200
    assert 'safetybot_callback_seconds_bucket{le="0.05",platform="wecom"}' in text
    assert "safetybot_inbox_lag_seconds" in text
    assert "safetybot_outbox_pending" in text
    assert 'errcode="-1"' in text


@pytest.mark.skipif(BACKEND != "sqlite", reason="uses a throw-away SQLite file of its own")
async def test_not_ready_until_migrated(tmp_path: Path, wecom: WeComSimulator) -> None:
    url = f"sqlite://{tmp_path / 'empty.sqlite3'}"
    svc = Service(service_settings(url, wecom.base_url, tmp_path), )
    await svc.start(workers=False)
    try:
        status, body = await get(f"{svc.url}/readyz")
    finally:
        await svc.stop()
    assert status == 503 and "migrations pending" in body

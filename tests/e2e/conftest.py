"""Fixtures the end-to-end walk-throughs share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from tests.harness import Service
from tests.plant import around_the_clock, web_chat_plant


@pytest.fixture
async def web_chat_demo(db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path
                        ) -> AsyncIterator[tuple[aiohttp.ClientSession, Service]]:
    """The demo plant in the web chat as `make run` leaves it, every hour working time (the
    README's walk-throughs move the clock to mornings to come)."""
    async with web_chat_plant(database_url, media_dir, **around_the_clock(tmp_path)) as plant:
        yield plant

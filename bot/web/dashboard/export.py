"""The ledger's export as xlsx: the current filter's tickets written a batch at a time with
openpyxl's write-only workbook (rows go to disk as they come, so a hundred thousand never sit
in memory), the writing off the event loop, then sent as a stream."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from openpyxl import Workbook
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from models.catalog import Catalog
from models.dashboard.access import Viewer
from models.dashboard.ledger import TicketFilter, ledger_rows
from models.hazard import LABELS, Ticket
from models.org import area_names, user_names

HEADER = ("编号", "上报时间", "区域", "类别", "等级", "描述", "上报人", "整改责任人", "复查人",
          "整改期限", "状态", "闭环时间", "上报次数")
CHUNK = 256 * 1024


async def write_ledger(path: Path, fd: int, viewer: Viewer, f: TicketFilter, now: datetime,
                       tz: ZoneInfo, catalog: Catalog) -> int:
    """Write the filtered ledger to `path` (open as `fd`, closed here); how many rows."""
    os.close(fd)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("隐患台账")
    sheet.append(HEADER)
    areas: dict[str, str] = {}
    written = 0
    async for batch in ledger_rows(viewer, f, now, tz):
        missing_areas = {t.area_id for t in batch if t.area_id and t.area_id not in areas}
        if missing_areas:
            areas.update(await area_names(missing_areas))
        people = await user_names({p for t in batch
                                   for p in (t.reporter_id, t.owner_id, t.reviewer_id) if p})
        rows = [_row(t, areas, people, catalog, tz) for t in batch]
        await asyncio.to_thread(_append, sheet, rows)
        written += len(rows)
    await asyncio.to_thread(book.save, path)
    return written


def _row(t: Ticket, areas: dict[str, str], people: dict[str, str], catalog: Catalog,
         tz: ZoneInfo) -> tuple[Any, ...]:
    def local(moment: datetime | None) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else ""

    return (t.number or t.label, local(t.created_at), areas.get(t.area_id or "", ""),
            catalog.name_of(t.category), t.grade.value, t.description,
            people.get(t.reporter_id, t.reporter_id), people.get(t.owner_id or "", ""),
            people.get(t.reviewer_id or "", ""), local(t.deadline), LABELS[t.status],
            local(t.closed_at), t.reports)


def _append(sheet: WriteOnlyWorksheet, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        sheet.append(row)


async def send_file(request: web.Request, path: Path, headers: dict[str, str]
                    ) -> web.StreamResponse:
    """Stream a file a chunk at a time, the reads off the event loop."""
    size = (await asyncio.to_thread(path.stat)).st_size
    response = web.StreamResponse(headers={**headers, "Content-Length": str(size)})
    await response.prepare(request)
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            await response.write(chunk)
    finally:
        await asyncio.to_thread(handle.close)
    await response.write_eof()
    return response

"""The monthly 《隐患闭环分析报告》: a markdown summary, a chart and an Excel ledger, sent through
the outbox on the first day of the month, or written to a folder by `safetybot report --month`.

The numbers and their definitions are in `models.closure`; this module only lays them out. The
chart and the workbook are drawn by a process of its own (`scheduler.report_files`), fed the
ledger's rows a page at a time: matplotlib and openpyxl are seconds of pure-Python work for a
large plant's month (benchmarks/README.md, tick benchmark --monthly), which in a thread would hold
the GIL and stop the event loop's callbacks, inbox and outbox for as long.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.worksheet import Worksheet

from models import atomic, markup
from models.catalog import Catalog
from models.closure import (
    RECURRED_SHOWN,
    Breakdown,
    LedgerRow,
    MonthlyClosure,
    Recurrences,
    closure_for,
    ledger_pages,
)
from models.outbox import all_queued, enqueue
from models.outgoing import File, Image, Markdown, Outgoing

log = logging.getLogger(__name__)

TITLE = "隐患闭环分析报告"
# message/send takes 2048 bytes of markdown (chat-protocols.md §4.2; the 4096 bytes often quoted
# are the group robot's, §4.4), and the simulator refuses more with 45002 as WeCom does.
MARKDOWN_MAX_BYTES = 2048
DESCRIPTION_CHARS = 15          # of a repeated hazard's description in the markdown
CHART_AREAS = 12
# Fonts with the simplified Chinese glyphs, best first; Debian: fonts-noto-cjk.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK", "Source Han Sans SC", "Source Han Sans",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei",
             "PingFang SC")
CJK_FILES = ("NotoSansCJK", "SourceHanSans", "wqy-", "msyh", "simhei", "PingFang")


class MediaSink(Protocol):
    """Where the chart and the ledger are kept by content hash (bot.media.MediaStore)."""

    async def put(self, data: bytes) -> str: ...


@dataclass(frozen=True)
class Rendered:
    markdown: str
    chart: Path           # PNG
    ledger: Path          # xlsx


class RenderFailed(RuntimeError):
    """The process drawing the chart and the ledger failed; its last words are the message."""


def file_name(month: str, suffix: str) -> str:
    return f"{TITLE}-{month}{suffix}"


async def render(month: str, tz: ZoneInfo, catalog: Catalog, folder: Path,
                 more: Sequence[str] = ()) -> Rendered:
    """The month's numbers, then its .png and .xlsx written in `folder` (file_name)."""
    report = await closure_for(month, tz, catalog)
    chart, ledger = folder / file_name(month, ".png"), folder / file_name(month, ".xlsx")
    await _draw(report, ledger_pages(month, tz, catalog), chart, ledger)
    return Rendered(render_markdown(report, more), chart, ledger)


async def _draw(report: MonthlyClosure, pages: AsyncIterator[list[LedgerRow]], chart: Path,
                ledger: Path) -> None:
    """Run `scheduler.report_files` and stream it the report, then the ledger's pages, as
    pickles on its stdin (our own process, so pickle is safe). The pipe's buffer paces the
    reading: a page is read from the database when the child has taken the last. The child
    imports the code this process runs (its sys.path, without the working directory)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "scheduler.report_files", str(chart), str(ledger),
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert child.stdin is not None and child.stderr is not None
    # Read while writing: a child that fills its stderr pipe would wait for us as we wait
    # for it to take the next page.
    said = asyncio.ensure_future(child.stderr.read())
    try:
        try:
            child.stdin.write(pickle.dumps(report))
            async for page in pages:
                child.stdin.write(pickle.dumps(page))
                await child.stdin.drain()
            child.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass        # the child is gone: its stderr says why
        if await child.wait():
            raise RenderFailed((await said).decode(errors="replace").strip()[-2000:])
    finally:
        if child.returncode is None:       # cancelled, or the database failed mid-way
            child.kill()
            await child.wait()
        await said


async def write_monthly(month: str, tz: ZoneInfo, catalog: Catalog, out_dir: Path
                        ) -> list[Path]:
    """`safetybot report --month`: the three files in `out_dir`; the .md, .png, .xlsx paths."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    rendered = await render(month, tz, catalog, out_dir)
    text = markup.render_markdown(rendered.markdown, room=None)   # descriptions as typed
    md = out_dir / file_name(month, ".md")
    await asyncio.to_thread(md.write_bytes, text.encode())
    return [md, rendered.chart, rendered.ledger]


async def send_monthly(month: str, now: datetime, tz: ZoneInfo, catalog: Catalog,
                       media: MediaSink, platform: str, recipients: list[str],
                       more: Sequence[str] = ()) -> bool:
    """Queue the summary, the chart and the ledger to `recipients`, once per month: the
    idempotency keys are `monthly:{month}:text|chart|ledger`. Returns whether anything was
    queued. The report is built outside any transaction (seconds on a large plant, holding no
    connection) and its three messages are queued in one. `more`: other modules' lines for
    the summary (the drills held this year)."""
    keys = {part: f"monthly:{month}:{part}" for part in ("text", "chart", "ledger")}
    if not recipients:
        log.warning("monthly report has no recipients", extra={"month": month})
        return False
    if await all_queued(keys.values()):
        return False        # sent before: not worth drawing the chart again
    with tempfile.TemporaryDirectory(prefix="safetybot-monthly-") as folder:
        rendered = await render(month, tz, catalog, Path(folder), more)
        chart = await media.put(await asyncio.to_thread(rendered.chart.read_bytes))
        ledger = await media.put(await asyncio.to_thread(rendered.ledger.read_bytes))
    messages: list[tuple[str, Outgoing]] = [
        (keys["text"], Markdown(rendered.markdown)),
        (keys["chart"], Image(chart, about=f"{month} 月报")),
        (keys["ledger"], File(ledger, file_name(month, ".xlsx"), about=f"{month} 月报")),
    ]
    queued = False
    async with atomic():
        for key, message in messages:
            queued |= await enqueue(key, message, now=now, platform=platform,
                                    to_users=recipients)
    return queued


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(r: MonthlyClosure, more: Sequence[str] = ()) -> str:
    """WeCom's markdown subset (no tables): quoted lines, trimmed to MARKDOWN_MAX_BYTES by
    leaving out the areas (and, with a huge library, categories) that fit only in the ledger.
    Descriptions are people's text, marked `literal` for the channel to escape."""
    c, d = r.current, r.change
    cancelled = f"，另有已取消{c.cancelled}项" if c.cancelled else ""
    head = [
        f"## {TITLE}（{month_label(r.month)}）",
        f"**总体情况**（与{month_label(r.previous_month)}相比）",
        f"> 上报隐患：{c.filed}项{_more(d.filed, '项')}{cancelled}",
        f"> 闭环率：{percent(c.closure_rate)}（{c.closed_of_filed}/{c.filed}）"
        f"{_more(d.closure_rate, '个百分点')}",
        f"> 本月闭环：{c.closed}项，按期闭环率：{percent(c.on_time_rate)}"
        f"（{c.on_time}/{c.closed}）{_more(d.on_time_rate, '个百分点')}",
        f"> 闭环用时：平均{duration(c.mean_hours)}{_more(d.mean_hours, '', duration)}，"
        f"中位数{duration(c.median_hours)}{_more(d.median_hours, '', duration)}",
        f"> 月末未闭环：{c.open_at_end}项，其中逾期"
        f"<font color=\"warning\">{c.overdue_at_end}项</font>{_more(d.overdue_at_end, '项')}",
    ]
    repeated = [f"> {x.number}（{x.area} · {x.category}）：上报{x.reports}次，{x.status}，"
                f"{markup.literal(_clip(x.description))}" for x in r.repeated]
    tail = (["**重复上报最多的隐患**", *repeated] if repeated else []) + [
        *_recurrences(r.recurrences), *more, "图表和《隐患台账》见随后的图片与附件。"]
    area_title = ["**按区域**"] if r.by_area else []
    category_title = ["**按类别**"] if r.by_category else []
    # Each block of rows adds its bytes and one line break to the fixed lines.
    room = MARKDOWN_MAX_BYTES - _size(head + area_title + category_title + tail) - 2
    categories = _fit(_rows(r.by_category), room // 2, "其余{}个类别见附件")
    areas = _fit(_rows(r.by_area), room - _size(categories), "其余{}个区域见附件")
    return "\n".join([*head, *area_title, *areas, *category_title, *categories, *tail])


def _recurrences(r: Recurrences) -> list[str]:
    """复发: how many came back, where, of what kind, under whom; the first few by name."""
    if not r.count:
        return []

    def top(counts: tuple[tuple[str, int], ...]) -> str:
        return "、".join(f"{name} {n}项" for name, n in counts[:3])

    return [f"**复发隐患**（本月{r.count}项）",
            f"> 按区域：{top(r.by_area)}；按类别：{top(r.by_category)}；"
            f"按整改责任人：{top(r.by_owner)}",
            *(f"> {t.number}（{t.area} · {t.category}）：复发自{'、'.join(t.earlier)}，{t.status}"
              for t in r.first[:RECURRED_SHOWN])]


def _rows(rows: Sequence[Breakdown]) -> list[str]:
    return [f"> {b.name}：上报{b.filed}项，闭环{b.closed}项（{percent(b.closure_rate)}），"
            f"逾期{b.overdue}项" for b in rows]


def _fit(lines: list[str], budget: int, rest: str) -> list[str]:
    """The first lines that fit in `budget` bytes, then a line saying how many were left out."""
    if _size(lines) <= budget:
        return lines
    kept: list[str] = []
    for line in lines:
        if _size([*kept, line, "> " + rest.format(len(lines) - len(kept) - 1)]) > budget:
            break
        kept.append(line)
    return [*kept, "> " + rest.format(len(lines) - len(kept))]


def _size(lines: Sequence[str]) -> int:
    return len("\n".join(lines).encode())


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_CHARS else text[:DESCRIPTION_CHARS] + "…"


def _more(change: float | None, unit: str, shown: Callable[[float], str] | None = None) -> str:
    """"，较上月+3项" / "，与上月持平"; nothing when last month had nothing to compare."""
    if change is None:
        return ""
    if round(change, 1) == 0:
        return "，与上月持平"
    sign = "+" if change > 0 else "−"
    amount = shown(abs(change)) if shown else f"{abs(change):.1f}".removesuffix(".0")
    return f"，较上月{sign}{amount}{unit}"


def month_label(month: str) -> str:
    year, number = month.split("-")
    return f"{year}年{int(number)}月"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def duration(hours: float | None) -> str:
    """Days and hours, e.g. 3天20小时."""
    if hours is None:
        return "—"
    days, rest = divmod(round(hours), 24)
    if not days and not rest:
        return "不足1小时"
    return (f"{days}天" if days else "") + (f"{rest}小时" if rest or not days else "")


# ---------------------------------------------------------------------------------------------
# Chart


def render_chart(r: MonthlyClosure) -> bytes:
    """PNG: the areas' filed, closed and overdue counts, and the two rates against last month."""
    # Imported here: matplotlib takes a noticeable part of a second to import, and only this
    # monthly job needs it. Figure without pyplot keeps no global figure state.
    import matplotlib
    from matplotlib.figure import Figure

    font = _cjk_font()
    fonts = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": fonts,
                                "axes.unicode_minus": False}), warnings.catch_warnings():
        if font is None:   # boxes for the Chinese glyphs, and no warning per glyph
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig = Figure(figsize=(11, 5.5), dpi=110, layout="constrained")
        by_area, rates = fig.subplots(1, 2, width_ratios=(3, 2))
        _area_bars(by_area, r.by_area[:CHART_AREAS], len(r.by_area) > CHART_AREAS)
        _rate_bars(rates, r)
        fig.suptitle(f"{TITLE}（{month_label(r.month)}）", fontsize=15)
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _area_bars(ax: Any, rows: Sequence[Breakdown], trimmed: bool) -> None:
    names = [b.name for b in reversed(rows)]
    series = (("上报", [b.filed for b in reversed(rows)], "#1f6feb"),
              ("闭环", [b.closed for b in reversed(rows)], "#00a870"),
              ("逾期", [b.overdue for b in reversed(rows)], "#e37318"))
    height = 0.8 / len(series)
    for i, (label, values, color) in enumerate(series):
        ax.barh([y + (1 - i) * height for y in range(len(rows))], values, height=height,
                label=label, color=color)
    ax.set_yticks(range(len(rows)), names)
    if not rows:
        _nothing(ax, "本月无上报的隐患")
        return
    ax.set_title("各区域隐患" + (f"（前{CHART_AREAS}个）" if trimmed else ""))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")


def _nothing(ax: Any, text: str) -> None:
    """An empty panel says so, without axes that measure nothing."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#6b7785",
            transform=ax.transAxes)


def _rate_bars(ax: Any, r: MonthlyClosure) -> None:
    rates = (r.previous.closure_rate, r.previous.on_time_rate, r.current.closure_rate,
             r.current.on_time_rate)
    if all(rate is None for rate in rates):
        _nothing(ax, "两个月均无可计算的闭环率")
        return
    groups = ("闭环率", "按期闭环率")
    months = ((month_label(r.previous_month), r.previous, "#c9cdd4"),
              (month_label(r.month), r.current, "#1f6feb"))
    for i, (label, headline, color) in enumerate(months):
        values = [(rate or 0.0) * 100 for rate in (headline.closure_rate, headline.on_time_rate)]
        bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(len(groups))], values, width=0.38,
                      label=label, color=color)
        ax.bar_label(bars, labels=[percent(rate) for rate in
                                   (headline.closure_rate, headline.on_time_rate)], fontsize=9)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 125)         # room above 100 % for the legend
    ax.set_ylabel("%")
    ax.set_title("闭环率与按期闭环率")
    ax.legend(loc="upper center", ncols=2, fontsize=9)


@functools.cache
def _cjk_font() -> str | None:
    """The best installed font with Chinese glyphs. matplotlib keeps the font list it found on
    its first run, so a font installed since is looked for by its file name."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    name = _preferred({entry.name for entry in manager.ttflist})
    if name is None:
        for path in font_manager.findSystemFonts():
            if any(part in Path(path).name for part in CJK_FILES):
                manager.addfont(path)
        name = _preferred({entry.name for entry in manager.ttflist})
    if name is None:
        log.info("no CJK font for the monthly chart; install fonts-noto-cjk")
    return name


def _preferred(installed: set[str]) -> str | None:
    for wanted in CJK_FONTS:
        found = sorted(name for name in installed if name.startswith(wanted))
        if found:
            return found[0]
    return None


# ---------------------------------------------------------------------------------------------
# Excel ledger

LEDGER_COLUMNS = (("编号", 18), ("区域", 14), ("类别", 12), ("等级", 6), ("隐患类型", 10),
                  ("隐患描述", 40), ("上报人", 8), ("整改责任人", 10), ("复查人", 8),
                  ("上报时间", 17), ("整改期限", 17), ("状态", 10), ("闭环时间", 17),
                  ("是否逾期", 8), ("复发自", 20))
HEADLINE_ROWS = (("上报隐患（项）", "filed"), ("已取消（项）", "cancelled"),
                 ("其中已闭环（项）", "closed_of_filed"), ("闭环率", "closure_rate"),
                 ("本月闭环（项）", "closed"), ("其中按期（项）", "on_time"),
                 ("按期闭环率", "on_time_rate"), ("平均闭环用时（小时）", "mean_hours"),
                 ("闭环用时中位数（小时）", "median_hours"), ("月末未闭环（项）", "open_at_end"),
                 ("月末逾期（项）", "overdue_at_end"))
TIME_FORMAT = "yyyy-mm-dd hh:mm"
BOLD = Font(bold=True)


Sheet: TypeAlias = Worksheet | WriteOnlyWorksheet


def render_ledger(r: MonthlyClosure, pages: Iterable[Sequence[LedgerRow]],
                  out: Path | IO[bytes]) -> None:
    """xlsx: sheet 隐患台账 (every ticket filed in the month, local times) and sheet 统计.
    Written row by row (openpyxl's write-only mode): a month of a hundred thousand tickets
    never sits in memory as cells."""
    tz = ZoneInfo(r.timezone)
    book = Workbook(write_only=True)
    ledger = book.create_sheet("隐患台账")
    table_header(ledger, LEDGER_COLUMNS)

    def local(moment: datetime | None) -> Cell:
        # Excel has no time zones: the plant's wall-clock time, as people read it.
        return _styled(ledger, moment.astimezone(tz).replace(tzinfo=None) if moment else None,
                       number_format=TIME_FORMAT)

    for page in pages:
        for t in page:
            ledger.append([t.number, t.area, t.category, t.grade, t.defect_type,
                           t.description, t.reporter, t.owner, t.reviewer, local(t.filed_at),
                           local(t.deadline), t.status, local(t.closed_at),
                           "是" if t.overdue else "否", "、".join(t.recurs)])
    _statistics(book.create_sheet("统计"), r)
    book.save(out)


def table_header(sheet: Sheet, columns: Sequence[tuple[str, int]]) -> None:
    """A sheet that is one table: its bold header row, the columns' widths, the header kept in
    view while scrolling. Called on an empty sheet: a write-only one writes its widths and
    panes with its first row."""
    for i, (_, width) in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    _header(sheet, [name for name, _ in columns])


def _header(sheet: Sheet, names: Sequence[str]) -> None:
    sheet.append([_styled(sheet, name, font=BOLD) for name in names])


def _styled(sheet: Sheet, value: object, *, font: Font | None = None,
            number_format: str | None = None) -> Cell:
    """A cell with its style, for either kind of sheet (a write-only one has no cells to
    style after the row is written)."""
    cell = WriteOnlyCell(sheet, value)
    if font is not None:
        cell.font = font
    if number_format is not None:
        cell.number_format = number_format
    return cell


def _statistics(sheet: Sheet, r: MonthlyClosure) -> None:
    for letter, width in zip("ABCDEF", (24, 14, 14, 20, 14, 40), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.append([_styled(sheet, f"{TITLE}（{month_label(r.month)}）",
                          font=Font(bold=True, size=14))])
    sheet.append([])
    _header(sheet, ["指标", month_label(r.month), month_label(r.previous_month),
                    "变化（比率为百分点）"])
    for label, name in HEADLINE_ROWS:
        now, before, change = (getattr(h, name) for h in (r.current, r.previous, r.change))
        rate = name.endswith("_rate")
        digits = 4 if rate else 1     # rates are shown as 0.0%
        shown = "0.0%" if rate else None
        sheet.append([label, _styled(sheet, _cell(now, digits), number_format=shown),
                      _styled(sheet, _cell(before, digits), number_format=shown),
                      _cell(change, 1)])
    for title, rows in (("区域", r.by_area), ("类别", r.by_category)):
        sheet.append([])
        _header(sheet, [title, "上报（项）", "其中已闭环（项）", "闭环率", "月末逾期（项）"])
        for b in rows:
            sheet.append([b.name, b.filed, b.closed,
                          _styled(sheet, b.closure_rate, number_format="0.0%"), b.overdue])
    sheet.append([])
    _header(sheet, ["重复上报最多的隐患", "区域", "类别", "上报（次）", "状态", "隐患描述"])
    for x in r.repeated:
        sheet.append([x.number, x.area, x.category, x.reports, x.status, x.description])


def _cell(value: float | None, digits: int) -> float | None:
    return round(value, digits) if isinstance(value, float) else value

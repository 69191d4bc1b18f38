"""Printable label sheets for patrol checkpoints (扫码巡检): A4 pages of eight labels, each with
the checkpoint's QR code, its area and name, and its short code in large type for a worker who
types it instead of scanning (DingTalk has no scan in a chat).

The QR code is embedded as a PNG image (segno), not drawn as vectors: a printer renders it the
same, and a test can take it out of the PDF and decode it. Chinese text uses reportlab's built-in
CID font STSong-Light, which PDF readers supply, so no font file ships with the package.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import segno
from reportlab.lib.colors import Color, black
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

COLUMNS, ROWS = 2, 4
MARGIN = 10 * mm            # most office printers cannot print closer to the edge
HEADER = 10 * mm            # the sheet's title band, kept when there is none: labels keep size
PADDING = 4 * mm
QR_SIDE = 46 * mm           # a version 5 code (~50 characters at level Q): ~1 mm a module
CJK = "STSong-Light"
LATIN_BOLD = "Helvetica-Bold"
GREY = Color(0.4, 0.4, 0.4)
CUT_LINE = Color(0.6, 0.6, 0.6)
FOOTER = "扫码巡检 · 安全助手"


@dataclass(frozen=True)
class Label:
    code: str       # the checkpoint's short code, e.g. "A3-01": printed large, workers type it
    name: str       # the checkpoint, e.g. "1号空压机"
    area: str       # e.g. "3号车间"
    payload: str    # the text the QR code carries, signed by the caller; opaque ASCII


def write_labels(labels: Sequence[Label], out: BinaryIO, *, title: str = "") -> int:
    """A4 sheets of labels, 2 columns by 4 rows a page, in the order given, written to `out`
    as PDF; returns the number of pages. ValueError when there are no labels: an empty sheet
    would be printed for nothing."""
    if not labels:
        raise ValueError("no checkpoints to print")
    pdfmetrics.registerFont(UnicodeCIDFont(CJK))
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle(title or "巡检点标签")
    canvas.setAuthor("安全助手")
    per_page = COLUMNS * ROWS
    pages = (len(labels) + per_page - 1) // per_page
    for page in range(pages):
        if title:
            _fitted_line(canvas, title, CJK, 14, 10, MARGIN, A4[1] - MARGIN - 7 * mm,
                         A4[0] - 2 * MARGIN)
        for slot, label in enumerate(labels[page * per_page:(page + 1) * per_page]):
            row, column = divmod(slot, COLUMNS)
            _draw_label(canvas, label, *_cell_origin(row, column))
        canvas.showPage()
    canvas.save()
    return pages


def _cell_size() -> tuple[float, float]:
    return ((A4[0] - 2 * MARGIN) / COLUMNS, (A4[1] - 2 * MARGIN - HEADER) / ROWS)


def _cell_origin(row: int, column: int) -> tuple[float, float]:
    """The bottom-left corner of a label; rows count from the top of the page."""
    width, height = _cell_size()
    return MARGIN + column * width, A4[1] - MARGIN - HEADER - (row + 1) * height


def _draw_label(canvas: Canvas, label: Label, x: float, y: float) -> None:
    width, height = _cell_size()
    canvas.setStrokeColor(CUT_LINE)
    canvas.setLineWidth(0.5)
    canvas.setDash(3, 3)
    canvas.rect(x, y, width, height)
    canvas.setDash()
    canvas.drawImage(ImageReader(io.BytesIO(_qr_png(label.payload))), x + PADDING,
                     y + (height - QR_SIDE) / 2, QR_SIDE, QR_SIDE)

    left = x + PADDING + QR_SIDE + 3 * mm
    room = x + width - PADDING - left
    top = y + height - PADDING
    canvas.setFillColor(GREY)
    _fitted_line(canvas, label.area, CJK, 11, 8, left, top - 11, room)
    canvas.setFillColor(black)
    _fitted_lines(canvas, label.name, CJK, 15, 10, left, top - 11 - 8 * mm, room, 2)
    code_font = LATIN_BOLD if label.code.isascii() else CJK
    _fitted_line(canvas, label.code, code_font, 34, 14, left, y + PADDING + 11 * mm, room)
    canvas.setFillColor(GREY)
    _fitted_line(canvas, FOOTER, CJK, 7, 6, left, y + PADDING + 1 * mm, room)


def _qr_png(payload: str) -> bytes:
    """Level Q survives a smudge or a scratch on a label in a workshop; segno may raise the
    level further when that does not make the code bigger."""
    out = io.BytesIO()
    segno.make(payload, error="q", micro=False).save(out, kind="png", scale=10, border=4)
    return out.getvalue()


def _fitted_line(canvas: Canvas, text: str, font: str, size: float, smallest: float,
                 x: float, y: float, width: float) -> None:
    """One line at the largest size from `size` down to `smallest` that fits `width`; at the
    smallest, cut with an ellipsis."""
    _fitted_lines(canvas, text, font, size, smallest, x, y, width, 1)


def _fitted_lines(canvas: Canvas, text: str, font: str, size: float, smallest: float,
                  x: float, y: float, width: float, most: int) -> None:
    """Up to `most` lines from the baseline `y` down, broken anywhere (Chinese has no spaces),
    at the largest size that fits; at the smallest, the last line is cut with an ellipsis."""
    while size > smallest and len(_wrap(text, font, size, width)) > most:
        size -= 1
    lines = _wrap(text, font, size, width)
    if len(lines) > most:
        lines = [*lines[:most - 1], _ellipsized("".join(lines[most - 1:]), font, size, width)]
    canvas.setFont(font, size)
    for number, line in enumerate(lines):
        canvas.drawString(x, y - number * size * 1.2, line)


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    lines = [""]
    for char in text:
        if lines[-1] and pdfmetrics.stringWidth(lines[-1] + char, font, size) > width:
            lines.append("")
        lines[-1] += char
    return lines


def _ellipsized(text: str, font: str, size: float, width: float) -> str:
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"

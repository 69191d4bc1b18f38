"""Draws the demo org's evacuation maps (config/maps/*.png): a plan of the area, its exits, the
routes out and the assembly point, labelled in Chinese. Run it again after changing a layout:

    .venv/bin/python tools/draw_maps.py

Needs Pillow (matplotlib brings it) and a CJK font (Debian: fonts-noto-cjk). The pictures are
saved with a small palette, so each stays well under 100 KB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "config" / "maps"
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
WIDTH, HEIGHT = 900, 680
GREEN = (0, 140, 70)
RED = (200, 30, 30)
GREY = (90, 90, 90)
WALL = (40, 40, 40)
ROOM = (235, 235, 235)

Point = tuple[int, int]


@dataclass(frozen=True)
class Plan:
    file: str
    title: str
    building: tuple[int, int, int, int]
    rooms: tuple[tuple[str, tuple[int, int, int, int]], ...]
    exits: tuple[tuple[str, Point, Point], ...]   # name, where, its label
    routes: tuple[tuple[Point, ...], ...]
    assembly: tuple[str, Point]
    wind: str              # where the wind usually comes from, for a gas release


PLANS = (
    Plan("a3-evacuation.png", "3号车间 应急疏散图",
         building=(80, 100, 620, 520),
         rooms=(("硝化釜平台", (120, 150, 330, 300)), ("配料间", (370, 150, 580, 300)),
                ("控制室", (120, 370, 300, 480))),
         exits=(("东门", (620, 335), (640, 370)), ("南门", (450, 520), (480, 490))),
         routes=(((140, 335), (700, 335), (700, 240), (740, 240)),
                 ((330, 500), (450, 500), (450, 570))),
         assembly=("紧急集合点（东侧空地）", (800, 240)),
         wind="常年风向：西北风，集合点在上风侧"),
    Plan("t1-evacuation.png", "罐区 应急疏散图",
         building=(80, 110, 600, 520),
         rooms=(("液氨储罐 V101", (120, 150, 300, 300)), ("甲醇储罐 V102", (360, 150, 560, 300)),
                ("装卸站", (120, 380, 330, 480))),
         exits=(("北门", (330, 110), (360, 125)), ("西门", (80, 340), (110, 310))),
         routes=(((330, 440), (330, 85), (650, 85)),
                 ((560, 340), (20, 340))),
         assembly=("紧急集合点（办公楼前）", (720, 85)),
         wind="氨泄漏时向上风向撤离，勿穿越下风区"),
)


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(BOLD if bold else FONT, size)


def arrow(draw: ImageDraw.ImageDraw, points: tuple[Point, ...]) -> None:
    draw.line(points, fill=GREEN, width=7, joint="curve")
    (x0, y0), (x1, y1) = points[-2], points[-1]
    angle = math.atan2(y1 - y0, x1 - x0)
    head = [(x1 + 18 * math.cos(angle), y1 + 18 * math.sin(angle)),
            (x1 + 18 * math.cos(angle + 2.4), y1 + 18 * math.sin(angle + 2.4)),
            (x1 + 18 * math.cos(angle - 2.4), y1 + 18 * math.sin(angle - 2.4))]
    draw.polygon(head, fill=GREEN)


def draw(plan: Plan) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    pen = ImageDraw.Draw(image)
    pen.text((WIDTH // 2, 45), plan.title, font=font(34, bold=True), fill=WALL, anchor="mm")
    pen.rectangle(plan.building, outline=WALL, width=6)
    for name, box in plan.rooms:
        pen.rectangle(box, fill=ROOM, outline=GREY, width=2)
        centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
        pen.text(centre, name, font=font(22), fill=WALL, anchor="mm")
    for route in plan.routes:
        arrow(pen, route)
    for name, (x, y), (lx, ly) in plan.exits:
        pen.rectangle((x - 24, y - 16, x + 24, y + 16), fill=GREEN)
        pen.text((x, y), "出口", font=font(16, bold=True), fill="white", anchor="mm")
        pen.text((lx, ly), f"安全出口·{name}", font=font(18), fill=GREEN, anchor="lm")
    label, (x, y) = plan.assembly
    pen.ellipse((x - 40, y - 40, x + 40, y + 40), outline=GREEN, width=6)
    pen.text((x, y), "集合", font=font(22, bold=True), fill=GREEN, anchor="mm")
    pen.text((x, y + 60), label, font=font(18), fill=WALL, anchor="mm")
    legend = 615
    pen.line((80, legend, 120, legend), fill=GREEN, width=7)
    pen.text((130, legend), "疏散路线", font=font(18), fill=WALL, anchor="lm")
    pen.text((260, legend), plan.wind, font=font(18), fill=RED, anchor="lm")
    pen.text((80, legend + 32), "发生事故时听从现场指挥，沿绿色路线撤离，到集合点报到",
             font=font(18), fill=WALL, anchor="lm")
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for plan in PLANS:
        path = OUT / plan.file
        draw(plan).quantize(colors=16).save(path, optimize=True)
        print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()

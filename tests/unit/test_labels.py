"""Checkpoint label sheets as the safety officer prints them: every label's QR code, read back
out of the PDF, carries that label's payload, and its code, name and area are on its page."""

import io

import pypdf
import pytest
from pypdf.generic import ContentStream

from bot.labels import Label, write_labels
from bot.media.qr import decode_qr

NAMES = ["1号空压机", "氨制冷机房", "3号车间东侧二层配电室1号低压配电柜及其附属电缆桥架", "配电箱",
         "消防泵房", "危化品仓库甲类库房门口紧急洗眼器与喷淋装置", "叉车充电区", "2号冷却塔",
         "锅炉房", "原料仓库二号库区北侧装卸平台液压升降机"]
LABELS = [Label(code=f"A3-{n:02d}", name=name, area="3号车间" if n < 6 else "原料仓库二号库区",
                payload=f"cp1.A3-{n:02d}.{n:03d}f3kq9Xb2mN8pQ4rT6vW1yZ3aC5eG7iK9mO")
          for n, name in enumerate(NAMES, start=1)]


def test_every_label_reads_back_from_the_sheet() -> None:
    out = io.BytesIO()
    assert write_labels(LABELS, out, title="3号车间 巡检点标签") == 2
    pages = pypdf.PdfReader(io.BytesIO(out.getvalue())).pages
    assert len(pages) == 2
    for page, labels in zip(pages, (LABELS[:8], LABELS[8:]), strict=True):
        assert [decode_qr(page.images[name].data) for name in images_in_reading_order(page)] \
            == [[label.payload] for label in labels]
        text = page.extract_text().replace("\n", "")
        assert "3号车间 巡检点标签" in text
        for label in labels:
            assert label.code in text
            assert label.area in text
            assert label.name in text or (label.name[:10] in text and "…" in text)


def test_a_long_name_is_cut_not_spilled() -> None:
    out = io.BytesIO()
    write_labels([Label("B1-01", "很长" * 40, "很长的区域名称" * 5, "x" * 50)], out)
    text = pypdf.PdfReader(io.BytesIO(out.getvalue())).pages[0].extract_text()
    assert text.count("…") == 2
    assert "很长" * 40 not in text.replace("\n", "")


@pytest.mark.parametrize(("count", "pages"), [(1, 1), (8, 1), (9, 2), (17, 3)])
def test_eight_labels_to_a_page(count: int, pages: int) -> None:
    out = io.BytesIO()
    assert write_labels((LABELS * 2)[:count], out) == pages
    assert len(pypdf.PdfReader(io.BytesIO(out.getvalue())).pages) == pages


def test_no_checkpoints_is_an_error() -> None:
    with pytest.raises(ValueError, match="no checkpoints to print"):
        write_labels([], io.BytesIO())


def images_in_reading_order(page: pypdf.PageObject) -> list[str]:
    """The page's images by where they are drawn: rows from the top, left to right."""
    placed, matrix = [], [0.0] * 6
    for operands, operator in ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"cm":
            matrix = [float(value) for value in operands]
        elif operator == b"Do":
            placed.append((-matrix[5], matrix[4], str(operands[0])))
    return [name for _, _, name in sorted(placed)]

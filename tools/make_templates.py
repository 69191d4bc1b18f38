"""Makes the import templates shipped in config/: certificates-template.xlsx
(`safetybot import-certificates`) and training-template.xlsx (`safetybot import-training`), and
the demo plant's training ledger, demo-training.xlsx (`make run` imports it). Their
header is the importer's own list of columns; two example rows name people of the demo roster,
so a template imports as it is into the demo plant. A second sheet, 填写说明, says what each
column takes. Run it again after changing the columns:

    .venv/bin/python tools/make_templates.py
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from bot.people_import import CERTIFICATE_COLUMNS, TRAINING_COLUMNS, WHO
from scheduler.monthly import table_header

OUT = Path(__file__).resolve().parent.parent / "config"
WHO_NOTE = "花名册中的工号（用户ID），或姓名（重名时须填工号）"
DATE_NOTE = "日期，如 2026-03-01"
TEMPLATES = {
    "certificates-template.xlsx": (
        CERTIFICATE_COLUMNS,
        (("gaofeng", "T-EL-HV", "T320102198503150012", date(2024, 3, 15), None, None),
         ("张三", "叉车司机N1", "TS320100202300815", date(2023, 8, 15), date(2027, 8, 14),
          None)),
        {WHO: WHO_NOTE + "；承包商资质填承包商编号或名称",
         "证书类型": "config/certificates.toml 中的代码或名称，如 T-EL-LV 或 低压电工作业",
         "证书编号": "按证书原样填写（本列为文本格式）",
         "发证日期": DATE_NOTE,
         "有效期至": DATE_NOTE + "；留空则按证书类型的有效期推算",
         "复审日期": DATE_NOTE + "；留空则按证书类型的复审周期推算"}),
    "training-template.xlsx": (
        TRAINING_COLUMNS,
        (("张三", "三级安全教育·厂级", 8, date(2026, 3, 2), 92, "是"),
         ("huangjun", "动火作业安全", 4, date(2026, 5, 20), 85, None)),
        {WHO: WHO_NOTE,
         "课程": "课程名称：线上课程（config/training/）或面授课程（training.toml 的 "
                 "classroom）；开工校验按名称核对所需培训，如 动火作业安全",
         "学时": "大于0的数字",
         "日期": DATE_NOTE,
         "成绩": "0–100，可留空",
         "是否合格": "是 或 否；留空则成绩≥60或无成绩为合格"}),
}
# The demo plant's training ledger (`make run` imports it): a year's hours for the people the
# README's walk-through checks, the hot-work course for the welders, and the contractor's entry
# training. 王海燕 has her hours but not the hot-work course.
DEMO_TRAINING = (
    *((person, "年度安全再培训", 24, date(2026, 11, 10), score, "是") for person, score in (
        ("huangjun", 90), ("wanghaiyan", 88), ("gaofeng", 95), ("zhangsan", 85),
        ("guoqiang", 91), ("zhaolei", 87))),
    ("liuyang", "安全管理人员再培训", 12, date(2026, 10, 15), 93, "是"),
    ("sunli", "安全管理人员再培训", 12, date(2026, 10, 15), 90, "是"),
    ("huangjun", "动火作业安全", 4, date(2026, 11, 12), 92, "是"),
    ("huaan-zhaogang", "承包商入厂安全教育", 8, date(2026, 11, 20), 88, "是"),
    ("huaan-zhaogang", "动火作业安全", 4, date(2026, 11, 20), 90, "是"),
)
DAY = "yyyy-mm-dd"
# Text: a long number typed as a number loses its last digits (Excel keeps 15).
FORMATS = {"证书编号": "@", "发证日期": DAY, "有效期至": DAY, "复审日期": DAY, "日期": DAY}


def template(columns: Sequence[str], examples: Sequence[Sequence[object]],
             notes: dict[str, str]) -> Workbook:
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "导入"
    table_header(sheet, [(c, 24 if FORMATS.get(c) == "@" else 14) for c in columns])
    for row in examples:
        sheet.append(list(row))
    for i, column in enumerate(columns, 1):
        shown = FORMATS.get(column)
        if shown:
            # The column's format for the rows people add, and the examples' own.
            sheet.column_dimensions[get_column_letter(i)].number_format = shown
            for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = shown
    guide = book.create_sheet("填写说明")
    table_header(guide, (("列", 14), ("填写要求", 70)))
    for column in columns:
        guide.append([column, notes[column]])
    guide.append([])
    guide.append(["", "第一行为表头，请勿修改；每行一条，空行忽略。导入时逐行检查，有误的行"
                      "列出行号和原因，不导入；其余行一次导入，重复导入不会重复登记。"])
    return book


def main() -> None:
    for name, (columns, examples, notes) in TEMPLATES.items():
        template(columns, examples, notes).save(OUT / name)
        print(f"wrote {OUT / name}")
    columns, _, notes = TEMPLATES["training-template.xlsx"]
    template(columns, DEMO_TRAINING, notes).save(OUT / "demo-training.xlsx")
    print(f"wrote {OUT / 'demo-training.xlsx'}")


if __name__ == "__main__":
    main()

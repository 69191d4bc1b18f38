"""People's files (一人一档) from and to spreadsheets: `import-certificates` and
`import-training` take the good rows of a ledger in one go and name each bad one by its row;
`export-files` writes what chat shows; `verify-records` finds history edited or removed behind
the service's back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook, load_workbook
from tortoise.context import TortoiseContext

from bot.media import opened
from bot.media.folder import FolderStore
from bot.people_export import export_files
from bot.people_import import (
    CERTIFICATE_COLUMNS,
    TRAINING_COLUMNS,
    ImportReport,
    import_certificates,
    import_training,
    read_rows,
)
from bot.qualification import load_rules
from bot.roster import load_org
from bot.training import load_training
from models.org import User
from models.people.certificates import Certificate, HolderKind
from models.people.checks import Verdict, record_check
from models.people.profiles import Contractor, record_violation, set_suspended
from models.people.records import PersonRecord, RecordKind
from models.training.records import TrainingRecord
from tests.harness import ROOT, ROSTER_MEDIA, cli
from tests.plant import DEMO_ORG

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)
RULES = load_rules(ROOT / "config" / "certificates.toml", ROOT / "config" / "work-types.toml")
CERTIFICATES_TEMPLATE = ROOT / "config" / "certificates-template.xlsx"
TRAINING_TEMPLATE = ROOT / "config" / "training-template.xlsx"
Cells = Sequence[object]


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    await load_org(DEMO_ORG, NOW, ROSTER_MEDIA)


def sheet(path: Path, columns: Sequence[str], *rows: Cells) -> Path:
    """An xlsx as people fill the template: the header, then a row each (from row 2)."""
    book = Workbook()
    page = book.active
    assert page is not None
    for row in (columns, *rows):
        page.append(list(row))
    book.save(path)
    return path


async def certificates_from(path: Path) -> ImportReport:
    return await import_certificates(read_rows(path, CERTIFICATE_COLUMNS), RULES, NOW, TZ)


async def training_from(path: Path) -> ImportReport:
    return await import_training(read_rows(path, TRAINING_COLUMNS), NOW, TZ)


async def imported() -> list[tuple[str, str, str]]:
    """(holder, type, number) of every imported certificate."""
    return sorted(await Certificate.filter(source="import").values_list(
        "holder_id", "type_code", "number"))


async def history() -> list[tuple[str, int, str]]:
    return sorted(await PersonRecord.all().values_list("holder", "seq", "digest"))


# ---------------------------------------------------------------------------------------------
# The templates


async def test_the_templates_import_into_the_demo_plant_and_again_change_nothing(
        org: None) -> None:
    certificates = await certificates_from(CERTIFICATES_TEMPLATE)
    training = await training_from(TRAINING_TEMPLATE)

    assert certificates == ImportReport(rows=2, added=2, updated=0, refused=())
    assert training == ImportReport(rows=2, added=2, updated=0, refused=())
    # Dates left empty follow the type's rule: 6 years, reviewed every 3 (特种作业操作证).
    hv = await Certificate.get(type_code="T-EL-HV", number="T320102198503150012")
    assert (hv.holder_id, hv.issued_on, hv.expires_on, hv.review_on, hv.source) == (
        "gaofeng", date(2024, 3, 15), date(2030, 3, 14), date(2027, 3, 14), "import")
    forklift = await Certificate.get(type_code="S-N1", number="TS320100202300815")
    assert (forklift.holder_id, forklift.expires_on, forklift.review_on) == (
        "zhangsan", date(2027, 8, 14), None)
    assert sorted(await TrainingRecord.all().values_list(
        "person_id", "course", "hours", "on", "score", "passed")) == [
        ("huangjun", "动火作业安全", 4.0, date(2026, 5, 20), 85.0, True),
        ("zhangsan", "三级安全教育·厂级", 8.0, date(2026, 3, 2), 92.0, True)]
    records = await PersonRecord.filter(actor="import").order_by("holder", "seq")
    assert [(r.holder, r.kind, r.data.get("event")) for r in records] == [
        ("gaofeng", RecordKind.CERTIFICATE, "registered"),
        ("huangjun", RecordKind.TRAINING, None),
        ("zhangsan", RecordKind.CERTIFICATE, "registered"),
        ("zhangsan", RecordKind.TRAINING, None)]
    before = await history()

    again = await certificates_from(CERTIFICATES_TEMPLATE), await training_from(
        TRAINING_TEMPLATE)

    assert [r.summary() for r in again] == [
        "imported 2: 0 added, 0 updated, 2 unchanged; 0 rows refused"] * 2
    assert await history() == before


async def test_a_certificate_imported_again_with_new_dates_is_brought_up_to_date(
        org: None, tmp_path: Path) -> None:
    await certificates_from(CERTIFICATES_TEMPLATE)
    reviewed = sheet(tmp_path / "reviewed.xlsx", CERTIFICATE_COLUMNS,
                     ("高峰", "高压电工作业", "T320102198503150012", "2024-03-15", None,
                      "2030-03-14"))

    report = await certificates_from(reviewed)

    assert report == ImportReport(rows=1, added=0, updated=1, refused=())
    assert (await Certificate.get(type_code="T-EL-HV")).review_on == date(2030, 3, 14)
    last = await PersonRecord.filter(holder="gaofeng").order_by("-seq").first()
    assert last is not None and last.data["event"] == "reviewed"


# ---------------------------------------------------------------------------------------------
# Bad rows: each named, the rest imported, nothing of the bad

GOOD = ("gaofeng", "T-EL-LV", "T-GOOD-1", "2025-01-10", None, None)
ALSO_GOOD = ("王海燕", "T-WELD", "T-GOOD-2", date(2024, 5, 6), None, None)


async def test_a_malformed_date_is_named_by_its_row(org: None, tmp_path: Path) -> None:
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 GOOD, ("张三", "T-EL-LV", "T-BAD", "2026-13-01", None, None), ALSO_GOOD,
                 ("李华", "T-EL-LV", "T-BAD-2", "2025-01-10", "明年", None))

    report = await certificates_from(path)

    assert report.refused == ('row 3: 发证日期 "2026-13-01" is not a date',
                              'row 5: 有效期至 "明年" is not a date')
    assert report.summary() == "imported 2: 2 added, 0 updated, 0 unchanged; 2 rows refused"
    assert await imported() == [("gaofeng", "T-EL-LV", "T-GOOD-1"),
                                ("wanghaiyan", "T-WELD", "T-GOOD-2")]


async def test_an_unknown_certificate_type_is_named_by_its_row(
        org: None, tmp_path: Path) -> None:
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 GOOD, ("张三", "X", "T-BAD", "2025-01-10", None, None), ALSO_GOOD)

    report = await certificates_from(path)

    assert report.refused == ('row 3: unknown certificate type "X"',)
    assert len(await imported()) == 2


async def test_a_person_not_in_the_roster_or_a_name_two_people_share_is_named(
        org: None, tmp_path: Path) -> None:
    await User.create(id="zhangsan2", name="张三", roles=["worker"])      # a second 张三
    await User.create(id="gone", name="离职员工", roles=["worker"], active=False)
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 GOOD, ("张三丰", "T-EL-LV", "T-BAD-1", "2025-01-10", None, None),
                 ("张三", "T-EL-LV", "T-BAD-2", "2025-01-10", None, None),
                 ("gone", "T-EL-LV", "T-BAD-3", "2025-01-10", None, None),
                 ("zhangsan2", "T-EL-LV", "T-GOOD-3", "2025-01-10", None, None))

    report = await certificates_from(path)

    assert report.refused == (
        "row 3: 张三丰 is not in the roster",
        "row 4: 张三 is the name of 2 people (zhangsan, zhangsan2): give the id",
        "row 5: gone is not in the roster")
    assert await imported() == [("gaofeng", "T-EL-LV", "T-GOOD-1"),
                                ("zhangsan2", "T-EL-LV", "T-GOOD-3")]


async def test_a_number_twice_in_the_file_refuses_both_rows(org: None, tmp_path: Path) -> None:
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 ("张三", "低压电工作业", 123, "2025-01-10", None, None), GOOD,
                 ("李华", "T-EL-LV", "123", "2025-02-10", None, None),
                 # The same number in another type is another certificate.
                 ("李华", "T-EL-HV", "123", "2025-02-10", None, None))

    report = await certificates_from(path)

    assert report.refused == (
        "row 2: certificate number 123 (低压电工作业) appears twice (rows 2 and 4)",
        "row 4: certificate number 123 (低压电工作业) appears twice (rows 2 and 4)")
    assert await imported() == [("gaofeng", "T-EL-LV", "T-GOOD-1"),
                                ("lihua", "T-EL-HV", "123")]


async def test_a_number_held_by_someone_else_is_refused_and_theirs_kept(
        org: None, tmp_path: Path) -> None:
    hers = ("lihua", "T-EL-HV", 789, "2025-01-10", None, None)
    await certificates_from(sheet(tmp_path / "first.xlsx", CERTIFICATE_COLUMNS,
                                  ("lihua", "T-EL-LV", 456, "2025-01-10", None, None), hers))
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 ("高峰", "低压电工作业", 456, "2025-03-10", None, None), ALSO_GOOD, hers)

    report = await certificates_from(path)

    assert report.refused == ("row 2: number 456 (低压电工作业) is held by lihua",)
    assert report.summary() == "imported 2: 1 added, 0 updated, 1 unchanged; 1 row refused"
    held = await Certificate.get(type_code="T-EL-LV", number="456")
    assert (held.holder_id, held.issued_on) == ("lihua", date(2025, 1, 10))


async def test_contractor_documents_are_imported_by_the_contractors_name_or_id(
        org: None, tmp_path: Path) -> None:
    await Contractor.create(id="jiangnan", name="江南建设工程有限公司")
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 ("江南建设工程有限公司", "安全生产许可证", "(苏)JZ安许证字[2025]000777",
                  date(2025, 1, 10), None, None),
                 ("jiangnan", "C-LICENCE", "91320100MA1YYYY77Q", None, date(2045, 1, 9),
                  None),
                 ("北方公司", "C-LICENCE", "91110000MA0ZZZZ00X", None, date(2045, 1, 9), None),
                 ("gaofeng", "C-LICENCE", "91110000MA0ZZZZ01X", None, date(2045, 1, 9), None))

    report = await certificates_from(path)

    assert report.refused == ("row 4: 北方公司 is not a contractor in the roster",
                              "row 5: gaofeng is not a contractor in the roster")
    rows = await Certificate.filter(holder_kind=HolderKind.CONTRACTOR, holder_id="jiangnan"
                                    ).order_by("type_code")
    assert [(c.holder_id, c.type_code, c.expires_on) for c in rows] == [
        ("jiangnan", "C-LICENCE", date(2045, 1, 9)),
        ("jiangnan", "C-SAFETY", date(2028, 1, 9))]
    assert await PersonRecord.filter(holder="contractor:jiangnan").count() == 2


async def test_bad_training_rows_are_named_and_the_rest_imported_once(
        org: None, tmp_path: Path) -> None:
    path = sheet(tmp_path / "t.xlsx", TRAINING_COLUMNS,
                 ("zhangsan", "有限空间作业安全", 4, "2026/11/3", 55, None),
                 ("zhangsan", "动火作业安全", 4, "2026-11-31", 90, "是"),
                 ("高峰", "临时用电安全", 0, "2026-11-03", None, None),
                 ("高峰", "临时用电安全", "两小时", "2026-11-03", None, None),
                 ("张三丰", "动火作业安全", 2, "2026-11-03", None, None),
                 ("黄军", "动火作业安全", 2, date(2026, 11, 3), None, "否"),
                 ("huangjun", "动火作业安全", 2, date(2026, 11, 3), None, None),
                 ("高峰", "临时用电安全", 2, "2026-11-03", 70, "maybe"),
                 ("高峰", "应急救援", 2, "2027-01-05", None, None))

    report = await training_from(path)

    assert report.refused == (
        'row 3: 日期 "2026-11-31" is not a date',
        "row 4: 学时 0 is not a positive number",
        'row 5: 学时 "两小时" is not a number',
        "row 6: 张三丰 is not in the roster",
        "row 7: 动火作业安全 on 2026-11-03 for huangjun appears twice (rows 7 and 8)",
        "row 8: 动火作业安全 on 2026-11-03 for huangjun appears twice (rows 7 and 8)",
        'row 9: 是否合格 "maybe" must be 是 or 否 (or empty)',
        "row 10: 日期 2027-01-05 is after today")
    # A score under 60 with 是否合格 left empty: not passed.
    assert await TrainingRecord.all().values_list("person_id", "course", "passed") == [
        ("zhangsan", "有限空间作业安全", False)]
    assert (await training_from(path)).added == 0
    assert await TrainingRecord.all().count() == 1


async def test_with_the_training_module_a_course_must_be_known(org: None, tmp_path: Path
                                                               ) -> None:
    """A course of config/training/ (loaded) or a classroom course of training.toml; a course
    nobody teaches is named by its row, and so is an unknown person, the rest imported."""
    async with opened(FolderStore(tmp_path / "media")) as media:
        await load_training(ROOT / "config" / "training", 80, media, NOW)
    path = sheet(tmp_path / "t.xlsx", TRAINING_COLUMNS,
                 ("zhangsan", "有限空间作业安全", 2, "2026-11-03", 90, None),
                 ("gaofeng", "年度安全再培训", 24, "2026-11-03", 90, None),
                 ("gaofeng", "叉车驾驶技巧", 2, "2026-11-03", 90, None),
                 ("王五", "年度安全再培训", 24, "2026-11-03", 90, None))
    report = await import_training(read_rows(path, TRAINING_COLUMNS), NOW, TZ,
                                   classroom=("年度安全再培训",))
    assert report.refused == (
        'row 4: 课程 "叉车驾驶技巧" is neither a course of config/training/ nor a classroom '
        "course of training.toml", "row 5: 王五 is not in the roster")
    assert sorted(await TrainingRecord.all().values_list("person_id", "course")) == [
        ("gaofeng", "年度安全再培训"), ("zhangsan", "有限空间作业安全")]


# ---------------------------------------------------------------------------------------------
# On the command line


async def test_a_file_that_is_not_a_spreadsheet_exits_2_and_imports_nothing(
        org: None, tmp_path: Path, database_url: str) -> None:
    env = {"SAFETYBOT_DATABASE_URL": database_url}
    text = tmp_path / "证书.xlsx"
    text.write_text("姓名或工号,证书类型\n张三,T-EL-LV\n", encoding="utf-8")
    missing = tmp_path / "missing.xlsx"

    runs = [await asyncio.to_thread(cli, command, str(path), env=env) for command, path in (
        ("import-certificates", text), ("import-training", missing),
        ("import-certificates", TRAINING_TEMPLATE))]

    assert [(r.returncode, r.stdout, r.stderr.splitlines()) for r in runs] == [
        (2, "", [f"safetybot: import-certificates: {text} is not an Excel workbook (.xlsx)"]),
        (2, "", [f"safetybot: import-training: cannot read {missing}: No such file or "
                 "directory"]),
        (2, "", [f"safetybot: import-certificates: {TRAINING_TEMPLATE}: the first row must "
                 "name the columns 姓名或工号 | 证书类型 | 证书编号 | 发证日期 | 有效期至 | "
                 "复审日期; 证书类型 is missing"])]
    assert await imported() == [] and not await TrainingRecord.exists()


async def test_import_on_the_command_line_exits_1_naming_bad_rows(
        org: None, tmp_path: Path, database_url: str) -> None:
    env = {"SAFETYBOT_DATABASE_URL": database_url}
    path = sheet(tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
                 GOOD, ("张三", "T-EL-LV", "T-BAD", "2026-13-01", None, None))

    bad = await asyncio.to_thread(cli, "import-certificates", str(path), env=env)
    courses = await asyncio.to_thread(cli, "load-training", env={
        **env, "SAFETYBOT_MEDIA_DIR": str(tmp_path / "media")})
    good = await asyncio.to_thread(cli, "import-training", str(TRAINING_TEMPLATE), env=env)

    assert (bad.returncode, bad.stderr, bad.stdout) == (
        1, f'safetybot: {path}: row 3: 发证日期 "2026-13-01" is not a date\n',
        f"safetybot: {path}: imported 1: 1 added, 0 updated, 0 unchanged; 1 row refused\n")
    assert (good.returncode, good.stdout) == (
        0, f"safetybot: {TRAINING_TEMPLATE}: imported 2: 2 added, 0 updated, 0 unchanged; "
           "0 rows refused\n")
    assert await imported() == [("gaofeng", "T-EL-LV", "T-GOOD-1")]
    assert courses.returncode == 0 and "courses: 4 added" in courses.stdout


# ---------------------------------------------------------------------------------------------
# Export


async def zhangsans_year() -> str:
    """The templates imported, and what else the file shows of 张三: a refused check (its
    number returned), a violation and the 停岗 that followed."""
    await certificates_from(CERTIFICATES_TEMPLATE)
    await training_from(TRAINING_TEMPLATE)
    work = RULES.work_types["临时用电"]
    check = await record_check("wangqiang", work, "A1", [
        Verdict("zhangsan", "张三", ("无低压电工作业证",), ("低压电工作业",))], NOW)
    await record_violation("zhangsan", "未经许可擅自接临时电", "sunli", NOW)
    await set_suspended("zhangsan", "违章作业，待再培训", "sunli", NOW)
    return check.label


def wall(text: str) -> datetime:
    """A date or time as a cell holds it: the plant's wall clock, without a zone."""
    return datetime.fromisoformat(text)


def read(path: Path) -> dict[str, list[tuple[object, ...]]]:
    book = load_workbook(path, read_only=True)
    try:
        return {s.title: list(s.iter_rows(values_only=True)) for s in book.worksheets}
    finally:
        book.close()


async def test_a_department_is_exported_with_what_chat_shows(org: None, tmp_path: Path
                                                             ) -> None:
    check = await zhangsans_year()

    path = await export_files(tmp_path, RULES, NOW.date(), TZ, department="生产部")

    assert path == tmp_path / "档案-生产部.xlsx"
    book = read(path)
    assert list(book) == ["人员", "证书", "培训", "开工校验", "违章与处理"]
    people = {row[0]: row for row in book["人员"][1:]}
    assert set(people) == set(await User.filter(department_id="prod", active=True)
                              .values_list("id", flat=True))
    assert people["zhangsan"][:3] == ("zhangsan", "张三", "生产部")
    # 证书数, 近12个月学时, 开工校验 通过 / 未通过, 违章, 上报隐患, 状态
    assert people["zhangsan"][7:] == (1, 8, 0, 1, 1, 0, "停岗（违章作业，待再培训）")
    assert ("zhangsan", "张三", "特种设备作业人员证（叉车司机N1）", "TS320100202300815",
            wall("2023-08-15"), wall("2027-08-14"), None, "有效", None) in book["证书"]
    assert ("huangjun", "黄军", wall("2026-05-20"), "动火作业安全", 4, 0, 85, "是",
            "导入") in book["培训"]
    assert book["开工校验"][1:] == [
        ("zhangsan", "张三", wall("2026-12-07 09:00"), check, "临时用电", "A1",
         "未通过", "无低压电工作业证")]
    assert book["违章与处理"][1:] == [
        ("zhangsan", "张三", wall("2026-12-07 09:00"), "违章", "未经许可擅自接临时电",
         "sunli"),
        ("zhangsan", "张三", wall("2026-12-07 09:00"), "停岗", "违章作业，待再培训", "sunli")]


async def test_one_persons_file_on_the_command_line(org: None, tmp_path: Path,
                                                    database_url: str) -> None:
    await certificates_from(CERTIFICATES_TEMPLATE)
    env = {"SAFETYBOT_DATABASE_URL": database_url}

    done = await asyncio.to_thread(cli, "export-files", "--person", "高峰", "--out",
                                   str(tmp_path), env=env)
    unknown = await asyncio.to_thread(cli, "export-files", "--department", "研发部", env=env)

    path = tmp_path / "档案-高峰-gaofeng.xlsx"
    assert (done.returncode, done.stdout) == (0, f"safetybot: wrote {path}\n")
    book = read(path)
    assert [row[:3] for row in book["人员"]] == [("工号", "姓名", "部门"),
                                                ("gaofeng", "高峰", "设备部")]
    assert [row[3:] for row in book["证书"][1:] if row[2] == "特种作业操作证（高压电工作业）"] == [
        ("T320102198503150012", wall("2024-03-15"), wall("2030-03-14"), wall("2027-03-14"),
         "有效", None)]
    assert (unknown.returncode, unknown.stderr) == (
        1, "safetybot: export-files: department 研发部 is not in the roster\n")


async def test_a_certificate_due_soon_or_lapsed_says_so_in_the_file(
        org: None, tmp_path: Path) -> None:
    await certificates_from(sheet(
        tmp_path / "c.xlsx", CERTIFICATE_COLUMNS,
        ("gaofeng", "T-EL-LV", "SOON", "2024-01-20", None, None),       # review by 2027-01-19
        ("gaofeng", "T-EL-HV", "LAPSED", "2022-01-10", None, None)))    # review missed 2025

    path = await export_files(tmp_path, RULES, NOW.date(), TZ, person="gaofeng")

    assert sorted(row[3:4] + row[7:] for row in read(path)["证书"][1:]
                  if row[3] in ("SOON", "LAPSED")) == [
        ("LAPSED", "已失效", "未按期复审（应于2025-01-09前复审）"),
        ("SOON", "即将到期", "应于2027-01-19前复审")]


# ---------------------------------------------------------------------------------------------
# verify-records


async def test_verify_records_finds_a_record_edited_behind_the_services_back(
        org: None, db: TortoiseContext, database_url: str) -> None:
    await zhangsans_year()
    env = {"SAFETYBOT_DATABASE_URL": database_url}
    chains = await PersonRecord.all().distinct().values_list("holder", flat=True)
    count = await PersonRecord.all().count()

    intact = await asyncio.to_thread(cli, "verify-records", env=env)

    assert (intact.returncode, intact.stdout) == (
        0, f"safetybot: verify-records: {len(set(chains))} chains, {count} records: intact\n")
    violation = await PersonRecord.get(holder="zhangsan", kind=RecordKind.VIOLATION)
    await db.db().execute_script(
        "UPDATE person_record SET data = '{\"what\": \"迟到\"}' "
        f"WHERE id = {violation.id}")

    edited = await asyncio.to_thread(cli, "verify-records", env=env)

    assert (edited.returncode, edited.stdout.splitlines()) == (1, [
        f"safetybot: verify-records: zhangsan: record #{violation.seq} (id {violation.id}): "
        "its content does not match its hash: the record was edited",
        f"safetybot: verify-records: {len(set(chains))} chains, {count} records: 1 broken"])


async def test_verify_records_finds_a_record_deleted_from_the_middle(
        org: None, db: TortoiseContext, database_url: str) -> None:
    await zhangsans_year()
    chain = await PersonRecord.filter(holder="zhangsan").order_by("seq")
    assert len(chain) >= 3
    middle, after = chain[1], chain[2]
    await db.db().execute_script(f"DELETE FROM person_record WHERE id = {middle.id}")

    done = await asyncio.to_thread(cli, "verify-records",
                                   env={"SAFETYBOT_DATABASE_URL": database_url})

    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"safetybot: verify-records: zhangsan: record #{after.seq} (id {after.id}): expected "
        f"record #{middle.seq} here, found #{after.seq}: a record is missing")

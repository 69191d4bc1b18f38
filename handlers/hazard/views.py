"""What tickets look like in chat: cards, summaries and lists, in one consistent wording.

Terms are fixed across the product: 隐患, 整改, 复查, 闭环, 治理方案. Times are shown in the
plant's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from models.audit import AuditEvent
from models.catalog import Catalog, Grade
from models.escalation import Alarm, AlarmKind
from models.hazard import (
    ACTION_WORDS,
    LABELS,
    PLAN_FIELDS,
    CardPurpose,
    Status,
    Ticket,
    TicketKind,
)
from models.markup import literal
from models.org import User, names_of
from models.outgoing import Button, Card, Markdown, Selection, fit

SHOWN_CHARS = 40   # of a long answer in a ticket's details (its record, its 治理方案's fields)
DESCRIPTION_CHARS = 200   # of the description there: with the rest it fits one message


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%m月%d日 %H:%M") if moment else "—"


@dataclass(frozen=True)
class Facts:
    """A ticket with the names people read instead of codes."""

    ticket: Ticket
    area: str
    category: str
    reporter: str
    owner: str
    reviewer: str

    @property
    def title(self) -> str:
        return f"{self.area} · {self.category}"


async def facts(ticket: Ticket, catalog: Catalog) -> Facts:
    ids = [i for i in (ticket.reporter_id, ticket.owner_id, ticket.reviewer_id) if i]
    names, area = await names_of(ids, ticket.area_id)
    category = catalog.get(ticket.category)
    kind = category.label if category else (
        "未填类别" if ticket.kind is TicketKind.HAZARD else ticket.kind.noun)
    return Facts(ticket, area or "未填区域", kind, names.get(ticket.reporter_id, ""),
                 names.get(ticket.owner_id or "", ""), names.get(ticket.reviewer_id or "", ""))


def _key(purpose: CardPurpose, action: str, task_id: str) -> str:
    return f"{purpose.value}:{action}:{task_id}"


def summary_card(f: Facts, task_id: str) -> Card:
    t = f.ticket
    reasons = f"等级建议理由：{t.grade_reason}；类型：{t.defect_reason}"
    return Card(
        task_id=task_id, title="请确认隐患上报", description=f.title,
        fields=(("区域", f.area), ("类别", f.category), ("等级", t.grade.value),
                ("类型", t.defect_type.value), ("照片", f"{len(t.photos)}张")),
        body=f"{t.description}\n{reasons}",
        buttons=(Button("提交", _key(CardPurpose.SUMMARY, "submit", task_id), 1),
                 Button("修改", _key(CardPurpose.SUMMARY, "edit", task_id), 2),
                 Button("取消", _key(CardPurpose.SUMMARY, "cancel", task_id), 2)),
    )


def owner_card(f: Facts, task_id: str, tz: ZoneInfo, candidates: list[User]) -> Card:
    t = f.ticket
    pick = Selection("transfer_to", "转派给", tuple((u.id, u.name) for u in candidates)
                     ) if candidates else None
    return Card(
        task_id=task_id, title=f"{t.kind.noun}整改 {t.number}", description=f.title,
        fields=(("等级", t.grade.value), ("期限", when(t.deadline, tz)), ("上报人", f.reporter),
                ("复查人", f.reviewer), ("上报次数", str(t.reports))),
        body=t.description,
        buttons=(*(() if t.accepted_at else
                   (Button("接收", _key(CardPurpose.ASSIGN, "accept", task_id), 1),)),
                 Button("已整改", _key(CardPurpose.ASSIGN, "done", task_id), 1),
                 Button("转派", _key(CardPurpose.ASSIGN, "transfer", task_id), 2),
                 Button("申请延期", _key(CardPurpose.ASSIGN, "extend", task_id), 2)),
        selection=pick,
    )


def review_card(f: Facts, task_id: str, tz: ZoneInfo) -> Card:
    t = f.ticket
    stage = "（复查人已通过，请主要负责人审批）" if t.first_approval else ""
    return Card(
        task_id=task_id, title=f"整改复查 {t.number}", description=f.title,
        fields=(("等级", t.grade.value), ("整改责任人", f.owner),
                ("期限", when(t.deadline, tz)), ("整改照片", f"{len(t.evidence)}张")),
        # what was found and what was done, within the card's 160 characters
        body=f"{t.kind.noun}：{_short(t.description, 50)}\n"
             f"整改说明：{_short(t.evidence_note or '无', 70)}{stage}",
        buttons=(Button("通过", _key(CardPurpose.REVIEW, "approve", task_id), 1),
                 Button("驳回", _key(CardPurpose.REVIEW, "reject", task_id), 2)),
    )


def extension_card(f: Facts, task_id: str, tz: ZoneInfo) -> Card:
    t = f.ticket
    until = datetime.fromisoformat(t.extension["until"])
    return Card(
        task_id=task_id, title=f"延期申请 {t.number}", description=f.title,
        fields=(("申请人", f.owner), ("原期限", when(t.deadline, tz)),
                ("申请延至", when(until, tz))),
        body=f"原因：{t.extension['reason']}",
        buttons=(Button("同意延期", _key(CardPurpose.EXTENSION, "yes", task_id), 1),
                 Button("不同意", _key(CardPurpose.EXTENSION, "no", task_id), 2)),
    )


def plan_card(f: Facts, task_id: str) -> Card:
    t = f.ticket
    return Card(
        task_id=task_id, title=f"重大隐患 {t.number}", description=f.title,
        fields=(("上报人", f.reporter), ("整改责任人", f.owner)),
        body=f"{t.description}\n{t.grade_reason}\n请组织制定治理方案，确定后隐患进入整改。",
        buttons=(Button("填写治理方案", _key(CardPurpose.PLAN, "write", task_id), 1),),
    )


def line(f: Facts, tz: ZoneInfo, now: datetime) -> str:
    t = f.ticket
    overdue = t.status is Status.OPEN and t.deadline is not None and t.deadline < now
    late = "，**已超期**" if overdue else ""
    deadline = f"，期限{when(t.deadline, tz)}" if t.deadline else ""
    return f"> {t.label} {f.title}（{LABELS[t.status]}{deadline}{late}）"


def details(f: Facts, history: list[AuditEvent], alarms: list[Alarm], names: dict[str, str],
            tz: ZoneInfo, room: int) -> Markdown:
    """The ticket with its record, in `room` bytes: every audit event and every reminder and
    escalation sent, in time order. What people typed (the description, the 治理方案, notes and
    reasons) is `literal`: it shows as typed, never as markup."""
    t = f.ticket
    level = max((a.level for a in alarms if a.kind is AlarmKind.ESCALATE), default=0)
    kind = (f"等级：{t.grade.value}　类型：{t.defect_type.value}" if t.kind is TicketKind.HAZARD
            else f"来自应急{t.activation_id}的评估")
    lines = [f"**{t.label} {f.title}**", f"状态：{LABELS[t.status]}　{kind}",
             f"描述：{literal(_short(t.description, DESCRIPTION_CHARS))}",
             f"上报人：{f.reporter}　整改责任人：{f.owner or '—'}　复查人：{f.reviewer or '—'}",
             f"期限：{when(t.deadline, tz)}　上报次数：{t.reports}"
             + (f"　已督办至第{level}级" if level else "")]
    if t.recurs:
        lines.append(f"复发：与已闭环的{'、'.join(t.recurs)}相似")
    if t.checklist:
        lines.append("五到位：" + "；".join(f"{k}{'已落实' if v else '待落实'}"
                                         for k, v in _five(t).items()))
    if t.grade is Grade.MAJOR and t.plan:
        lines += [f"> {label}：{literal(_short(t.plan.get(key, '')))}"
                  for key, label in PLAN_FIELDS]
    record = [(e.at, names.get(e.actor, e.actor) or "系统", ACTION_WORDS.get(e.action, e.action),
               e.note) for e in history]
    record += [(a.fired_at or a.due_at, "系统", a.label,
                "发送给" + "、".join(names.get(p, p) for p in a.recipients)) for a in alarms]
    lines.append("**记录**")
    head = "\n".join(lines)
    entries = [f"> {when(at, tz)} {who} {what}" + (f"：{literal(_short(note))}" if note else "")
               for at, who, what, note in sorted(record, key=lambda entry: entry[0])]
    return Markdown(head + "\n" + fit(entries, room=room - len(head.encode()) - 1,
                                      more="> ……（较早的记录从略）", newest_last=True))


def _short(text: str, chars: int = SHOWN_CHARS) -> str:
    """A long answer (a 治理方案 field, a reason) cut for the chat; the ledger keeps it whole."""
    return text if len(text) <= chars else text[:chars] + "…"


def _five(t: Ticket) -> dict[str, str]:
    """五到位: 措施、责任、资金、时限、预案; 一般 tickets need the first, second and fourth."""
    keys = ("措施", "责任", "资金", "时限", "预案") if t.grade is Grade.MAJOR else (
        "措施", "责任", "时限")
    return {k: t.checklist.get(k, "") for k in keys}

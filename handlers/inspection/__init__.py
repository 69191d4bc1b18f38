"""The inspection module (扫码巡检): a patroller reaches a checkpoint (scan, typed code or a photo
of its label) and answers its checklist; 异常 become hazard drafts already filled in; `巡检`
shows the day's rounds. Scans and codes are answered even in the middle of another question
(reaching the next checkpoint leaves the last one's unanswered items for a later scan)."""

from handlers.inspection import cards, checklist, mine, scan
from handlers.module import Module
from handlers.router import Router

commands = Router()
for router in (scan.commands, mine.router):
    commands.include(router)

MODULE = Module(
    name="inspection",
    clicks=cards.clicks,
    commands=commands,
    claims=scan.claims,
    dialogs=(checklist.ChecklistDialog,),
    help=("**巡检**：查看今天的巡检任务；到达巡检点后扫码，或发送标签上的编号（如 A3-01）"
          "开始检查",),
)

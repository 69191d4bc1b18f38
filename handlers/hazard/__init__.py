"""The hazard module (隐患排查治理): report, rectify, review, the 治理方案, and the commands about
tickets."""

from handlers.hazard import commands, plan, rectify, report, review
from handlers.module import Module
from handlers.router import Router
from models.inbound import InboundKind

starts = Router()
starts.include(report.router)      # a photo, 上报, the menu, 继续上报
starts.include(rectify.router)     # 已整改, 申请延期, 转派
clicks = Router()
for router in (report.clicks, rectify.clicks, review.clicks, plan.clicks, commands.clicks):
    clicks.include(router)
guesses = Router()
guesses.kind(InboundKind.TEXT)(report.start_by_text)   # words that name an area or a category

MODULE = Module(
    name="hazard",
    clicks=clicks,
    commands=commands.router,
    dialogs=(report.ReportDialog, rectify.PickDialog, rectify.EvidenceDialog,
             rectify.ExtensionDialog, rectify.TransferDialog, review.RejectDialog,
             review.CauseDialog, plan.PlanDialog),
    starts=starts,
    guesses=guesses,
    help=("**上报隐患**：直接发送现场照片，并说明区域和情况，例如“3号车间 配电箱门没关”",
          "**我的隐患**：查看您上报、负责整改和待复查的隐患",
          "**已整改**：发送整改后照片，再回复“已整改”提交复查",
          "**申请延期** / **转派**：整改责任人使用",
          "发送隐患编号（如 HZ-20261129-0007）：查看详情和处理记录",
          "**统计**：隐患统计（安全管理员、主要负责人）"),
)

"""The emergency module (应急预案): 一键报警, 启动预案 with its confirmation, the broadcast, each
responder's 收到, the commander's board, 结束预案, 已上报 and the 应急评估 after the close;
the keepers' 我的物资 and 点检 on the resource ledger. Its typed commands are answered even
in the middle of another question."""

from handlers.emergency import (
    acknowledge,
    activation,
    alarm,
    board,
    cards,
    resources,
    review,
)
from handlers.module import Module
from handlers.router import Router

commands = Router()
for router in (alarm.router, activation.router, acknowledge.router, board.router,
               review.router, resources.router):
    commands.include(router)

MODULE = Module(
    name="emergency",
    follow_ups=activation.follow_ups,
    clicks=cards.clicks,
    commands=commands,
    dialogs=(activation.ActivationDialog, review.ReviewDialog),
    help=("**一键报警**：遇到紧急情况，发送“一键报警”并说明情况，立即通知值班长",
          "**启动预案** / **结束预案** / **应急状态**：应急指挥使用；收到应急通知请回复“收到”",
          "**应急评估**：响应结束后48小时内完成评估，登记改进措施",
          "**我的物资** / **点检 编号 正常**：应急物资保管人查看保管的物资、记录点检"),
)

"""The qualification module (一人一档, 开工前资格校验, 承包商准入): `开工` checks a crew before
work starts; `我的档案` / `档案 张三` show a person's file; safety managers register certificates
and contractor documents, record violations, suspend and blacklist, and admit contractors'
workers by card. Its typed commands are answered even in the middle of another question."""

from handlers.module import Module
from handlers.qualification import cards, certificates, check, contractors, discipline, file
from handlers.router import Router

commands = Router()
for router in (check.router, file.router, certificates.router, contractors.router,
               discipline.router):
    commands.include(router)

MODULE = Module(
    name="qualification",
    clicks=cards.clicks,
    commands=commands,
    starts=check.starts,
    dialogs=(certificates.CertificateDialog, contractors.RefusalDialog),
    help=("**开工 作业类型 区域 人员**：开工前资格校验，例如“开工 动火作业 3号车间 张三 李四”",
          "**我的档案**：查看自己的证书、培训、开工校验记录（一人一档）；上级可发送“档案 姓名”",
          "**登记证书 姓名** / **申请准入 姓名 作业类型**："
          "安全管理员登记证书、审批承包商人员准入"),
)

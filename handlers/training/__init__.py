"""The training module (培训): `学习` takes a person through the next lesson and its quiz, level
by level; `我的培训` shows what is due and the hours and credit this year; safety managers
`布置培训`; supervisors record the practical checks drawn after a pass. Its typed commands are
answered even in the middle of another module's question (学习 leaves that question alone)."""

from handlers.module import Module
from handlers.router import Router
from handlers.training import assign, cards, learn, mine, practical

commands = Router()
for router in (learn.router, mine.router, assign.router):
    commands.include(router)

MODULE = Module(
    name="training",
    clicks=cards.clicks,
    commands=commands,
    starts=learn.starts,
    dialogs=(learn.LessonDialog, learn.QuizDialog, practical.PracticalDialog),
    help=("**学习**：学习待完成的课程并闯关答题；“学习 课程名”学习指定课程",
          "**我的培训**：查看待完成的培训、本年学时和学分",
          "**布置培训 课程 部门/岗位/人员 截止日期**：安全管理员布置培训任务"),
)

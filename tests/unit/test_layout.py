"""The import rules of STYLE.md: models know only tortoise, handlers know models, channels know
nothing of handlers, and only the CLI (and tests) build the app. And DESIGN.md §3: handlers and
the scheduler leave the database to models (no tortoise, no SQL)."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from tortoise.models import Model

ROOT = Path(__file__).resolve().parents[2]
OURS = {"bot", "handlers", "models", "scheduler", "simulator"}
ALLOWED = {
    "models": {"models"},
    "handlers": {"handlers", "models"},
    "scheduler": {"scheduler", "models"},
    "bot/channels": {"bot", "models"},
    "bot": OURS - {"simulator"},
    "simulator": {"simulator", "bot"},
}


def imports(path: Path) -> set[str]:
    """The modules `path` imports, anywhere in it; `from a import b` names `a` and `a.b` (b may
    be a module). A module named in a string is not an import."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def within(names: set[str], *packages: str) -> list[str]:
    """The names that are `packages` or inside them (`tortoise` holds `tortoise.expressions`)."""
    return sorted(n for n in names if any(n == p or n.startswith(f"{p}.") for p in packages))


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    return "bot/channels" if rel.startswith("bot/channels/") else rel.split("/", 1)[0]


SOURCES = [p for pkg in OURS for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    allowed = ALLOWED[package_of(path)]
    ours = {name.split(".")[0] for name in imports(path)} & OURS
    assert ours <= allowed, f"{path.relative_to(ROOT)} imports {sorted(ours - allowed)}"


def test_channels_do_not_know_handlers() -> None:
    for path in (ROOT / "bot" / "channels").glob("*.py"):
        assert not any(n.startswith("handlers") for n in imports(path)), path


def test_only_the_cli_builds_the_app() -> None:
    for path in SOURCES:
        if path.name in ("app.py", "cli.py"):
            continue
        assert "bot.app" not in imports(path), path


def test_wechatpy_is_imported_in_one_module_only() -> None:
    users = [p for p in SOURCES if any(n.startswith("wechatpy") for n in imports(p))]
    assert [p.relative_to(ROOT).as_posix() for p in users] == ["bot/channels/wecom_crypto.py"]


def _module_file(name: str) -> Path | None:
    """Our module `a.b.c` as a file, or None when it is not ours (or not a module)."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _our_imports(path: Path) -> set[str]:
    """The modules of ours that `path` imports."""
    return {n for n in imports(path) if n.split(".")[0] in OURS and _module_file(n)}


def test_channels_reach_no_handler_or_job_through_other_modules() -> None:
    """A platform module is wired by the app; through whatever it imports (the settings, the
    media store, models) it never reaches handlers or scheduler, so adding a platform touches
    neither."""
    for start in (ROOT / "bot" / "channels").rglob("*.py"):
        seen: set[str] = set()
        todo = _our_imports(start)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            path = _module_file(name)
            assert path is not None
            todo |= _our_imports(path)
        reached = sorted(n for n in seen if n.split(".")[0] in ("handlers", "scheduler"))
        assert not reached, f"{start.relative_to(ROOT)} reaches {reached}"


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


HANDLERS_AND_JOBS = sorted(p for p in SOURCES if package_of(p) in ("handlers", "scheduler"))
MODELS = sorted(p for p in SOURCES if package_of(p) == "models")
# Raw SQL and the ORM's internals: a connection's statements, and `Model._meta` (the table, the
# connection, the fields' conversions) that raw SQL needs.
RAW_SQL = {"execute_query", "execute_query_dict", "execute_insert", "execute_many",
           "execute_script", "_meta"}


@pytest.mark.parametrize("path", HANDLERS_AND_JOBS, ids=_ids)
def test_handlers_and_jobs_import_no_tortoise_and_no_channel(path: Path) -> None:
    """They ask models/ for what they need by name, and speak in neutral messages."""
    names = imports(path)
    assert not within(names, "tortoise"), f"{_ids(path)} imports {within(names, 'tortoise')}"
    assert not within(names, "bot.channels"), \
        f"{_ids(path)} imports {within(names, 'bot.channels')}"


@pytest.mark.parametrize("path", HANDLERS_AND_JOBS, ids=_ids)
def test_handlers_and_jobs_write_no_sql(path: Path) -> None:
    """Every query is a named function in models/, where its shape is explained and measured."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = sorted({node.attr for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in RAW_SQL})
    assert not used, f"{_ids(path)} uses {used}"


@pytest.mark.parametrize("path", MODELS, ids=_ids)
def test_models_import_no_handler_job_or_service_module(path: Path) -> None:
    """Models know tortoise and one another only: no handlers, no scheduler, nothing of bot/
    (channels included). A module named in a string, as bot/db.py names `bot.channels.token`
    for tortoise to load, is no import."""
    names = imports(path)
    reached = within(names, "handlers", "scheduler", "bot")
    assert not reached, f"{_ids(path)} imports {reached}"


# The ORM's own API on a model class: every method tortoise's `Model` defines (filter, get,
# get_or_none, create, all, exclude, exists, first, bulk_create, select_for_update, raw …).
# Our own classmethods on a model, if one is ever added, are domain rules and stay allowed.
ORM_API = frozenset(name for name in dir(Model)
                    if not name.startswith("__") and callable(getattr(Model, name)))
# What a model instance does to its row. Tortoise's are coroutines that do nothing unless
# awaited, so an awaited call is the database; a workbook's synchronous `save` is not.
ROW_WORK = frozenset({"save", "delete", "refresh_from_db", "fetch_related"})


def _models_bound(tree: ast.Module) -> dict[str, object]:
    """The names a module binds by importing from our `models` package, to what they name
    (found by importing it: a model class, a function, a module)."""
    bound: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                and within({node.module}, "models"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:       # a submodule not imported by its package yet
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                bound[alias.asname or alias.name] = value
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not within({alias.name}, "models"):
                    continue
                module = importlib.import_module(alias.name)
                if alias.asname:
                    bound[alias.asname] = module
                else:                   # `import models.hazard` binds `models`
                    bound["models"] = importlib.import_module("models")
    return bound


def _named(node: ast.expr, bound: dict[str, object]) -> object:
    """What `Name` or `module.Name` stands for, when it comes from our models; else None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _named(node.value, bound)
        if inspect.ismodule(base):
            return getattr(base, node.attr, None)
    return None


def database_work(source: str) -> list[str]:
    """The places in `source` that work the database themselves rather than through a named
    function of models/: a call of the ORM's API on a model class imported from models
    (`Ticket.filter(…)`, `models.org.User.get(…)`, aliases included), and an awaited
    `.save()`, `.delete()`, `.refresh_from_db()` or `.fetch_related()` on anything.

    What it cannot see, said plainly: a model class reached another way (a variable holding
    it, `type(row)`, a queryset a models function returned), and a row method called without
    `await` (handed to `asyncio.gather`, say)."""
    tree = ast.parse(source)
    bound = _models_bound(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = _named(node.func.value, bound)
            if isinstance(owner, type) and issubclass(owner, Model) and \
                    node.func.attr in ORM_API:
                found.append((node.lineno, f"{ast.unparse(node.func)}(…)"))
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute) and \
                node.value.func.attr in ROW_WORK:
            found.append((node.lineno, f"await {ast.unparse(node.value.func)}(…)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", HANDLERS_AND_JOBS, ids=_ids)
def test_handlers_and_jobs_leave_queries_to_models(path: Path) -> None:
    """DESIGN.md §3, "Every query lives here": handlers and jobs may hold model instances as
    values (`ticket.number`), but they ask models/ by name for every read and write, so that a
    query's filters, order, locks and compare-and-set conditions are written, explained and
    measured in one place."""
    found = database_work(path.read_text(encoding="utf-8"))
    assert not found, f"{_ids(path)} works the database itself:\n" + "\n".join(found)


def test_the_query_check_sees_a_query_and_nothing_else() -> None:
    """The check above would notice: model classes by alias and through their module, and
    awaited row methods; not a named function of models, an enum, or a workbook's `save`."""
    caught = database_work(
        "import models.emergency\n"
        "import models.org as org\n"
        "from models.hazard import Ticket as T\n"
        "async def f(row, draft):\n"
        "    await T.filter(id=1).update(status='x')\n"
        "    await models.emergency.Plan.get(code='')\n"
        "    await org.User.get_or_none(id='')\n"
        "    await T.create(reporter_id='a')\n"
        "    await row.save()\n"
        "    await draft.delete()\n")
    assert [line.split(":")[0] for line in caught] == [
        "line 5", "line 6", "line 7", "line 8", "line 9", "line 10"], caught
    assert database_work(
        "from models.dialog import Dialog as Row\n"
        "from models.hazard import Status, ticket_by_id\n"
        "async def f(book, row: Row):\n"
        "    book.save('ledger.xlsx')\n"
        "    Status.OPEN.upper()\n"
        "    return row.data, await ticket_by_id(1)\n") == []

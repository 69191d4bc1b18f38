"""The import rules of STYLE.md: models know only tortoise, handlers know models, channels know
nothing of handlers, and only the CLI (and tests) build the app."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


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

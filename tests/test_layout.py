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

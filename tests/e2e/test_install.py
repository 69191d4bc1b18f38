"""SafetyBot away from its checkout, as an operator runs it: the console script started in an
empty folder, and the same from a wheel installed into a virtual environment of its own.

In both, the folder has no settings and the environment names only the port (and the log
level): `migrate`, `load-org` and `serve` must put the database and the media under `./data`
there, and take the category library, calendar, risk-status rules and demo roster from the
package. A hazard typed into the web chat then comes back classified by the shipped library
(用电类).

How the wheel test keeps the checkout out of sight. The project's `.venv` has the checkout
installed in editable mode: its site-packages holds `__editable__.safetybot-0.1.0.pth`, which at
start-up installs a finder (`__editable___safetybot_*_finder.py`) mapping `bot`, `handlers`, ...
to the checkout. The test

1. copies the sources (no `.git`, `.venv`, `data`, build output) to a temporary folder and builds
   the wheel there with `pip wheel --no-deps --no-build-isolation`: offline, with the setuptools
   of the test extras, and the checkout gets no `build/` folder;
2. makes a virtual environment without pip and installs the wheel into it with the project's pip
   (`pip --python VENV/bin/python install --no-index --no-deps`);
3. lends it the dependencies: a `.pth` file in its site-packages names the project venv's
   site-packages. A folder named in a `.pth` file is only appended to `sys.path`; Python runs the
   `.pth` files of site-packages folders, not of folders added that way, so the editable finder
   is never installed, and that folder has no `bot` of its own;
4. runs the new environment's `safetybot` from an empty folder with PATH, the port and the log
   level only (no PYTHONPATH), after checking that `bot` imports from the new environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import aiohttp
import pytest

from tests.harness import BACKEND, ROOT, free_port, stop, until_ready
from tests.webchat_client import Socket, message_id, post

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BACKEND == "postgres", reason="an install does not depend on the "
                       "database: it runs once, on the SQLite file a fresh folder gets"),
]

HAZARD = "3号车间 配电箱门没关 有裸露电线"
# Not the wheel's sources: version control, environments, data, build output, tests.
NOT_SOURCES = {".git", ".venv", "data", "build", "reports", "tests", "benchmarks"}


def run(*command: str | Path, cwd: Path = Path("/"), env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env or {"PATH": os.environ["PATH"]})
    assert done.returncode == 0, f"{' '.join(map(str, command))}: {done.stdout}{done.stderr}"
    return done


def bare_env() -> dict[str, str]:
    """What a service unit would set: PATH, and a port of the test's own."""
    return {"PATH": os.environ["PATH"], "SAFETYBOT_PORT": str(free_port()),
            "SAFETYBOT_LOG_LEVEL": "WARNING"}


async def serve_from(program: Path, site: Path) -> None:
    """`migrate`, `load-org` (the shipped demo roster) and `serve` in `site`: /healthz answers,
    and the web chat files a hazard by the shipped category library."""
    env = bare_env()
    for command in ("migrate", "load-org"):
        await asyncio.to_thread(run, program, command, cwd=site, env=env)
    assert (site / "data" / "safetybot.sqlite3").is_file()
    url = f"http://127.0.0.1:{env['SAFETYBOT_PORT']}"
    # A server process of its own, polled, never waited on: nothing blocks the loop.
    proc = subprocess.Popen([program, "serve"], cwd=site, env=env)  # noqa: ASYNC220
    try:
        await until_ready(proc, url)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as health:
                assert health.status == 200
            sock = await Socket.open(http, url, "zhangsan")
            status, _ = await post(http, url, "text", user="zhangsan", id=message_id(),
                                   text=HAZARD)
            assert status == 200
            reply = await sock.until(lambda line: line["from_bot"])
            await sock.close()
    finally:
        await stop(proc)
    assert (reply["kind"], reply["payload"]["title"]) == ("card", "请确认隐患上报")
    assert "用电类" in json.dumps(reply["payload"], ensure_ascii=False)


async def test_serve_runs_from_another_working_directory(tmp_path: Path) -> None:
    program = Path(sys.executable).with_name("safetybot")   # the console script of .venv
    await serve_from(program, tmp_path)


def not_sources(folder: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n == "__pycache__" or n.endswith(("_cache", ".egg-info"))}
    return skipped | (NOT_SOURCES & set(names) if Path(folder) == ROOT else set())


@pytest.fixture
def wheel_venv(tmp_path: Path) -> Path:
    """A virtual environment with SafetyBot installed from a freshly built wheel, and the
    project's dependencies lent to it (the module's docstring)."""
    source, wheels, venv = tmp_path / "src", tmp_path / "wheels", tmp_path / "venv"
    shutil.copytree(ROOT, source, symlinks=True, ignore=not_sources)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", wheels, source)
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    [wheel] = wheels.glob("safetybot-*.whl")
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet",
        "--no-index", "--no-deps", wheel)
    site_packages = run(venv / "bin" / "python", "-c",
                        "import sysconfig; print(sysconfig.get_path('purelib'))")
    lent = dict.fromkeys((sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
    (Path(site_packages.stdout.strip()) / "project-dependencies.pth").write_text(
        "".join(f"{path}\n" for path in lent))
    return venv


async def test_serve_runs_from_a_wheel_install(wheel_venv: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    where = await asyncio.to_thread(
        run, wheel_venv / "bin" / "python", "-c",
        "import bot, handlers, models; print(bot.__file__, handlers.__file__, models.__file__)",
        cwd=site, env=bare_env())
    assert all(Path(f).is_relative_to(wheel_venv) for f in where.stdout.split()), where.stdout
    program = wheel_venv / "bin" / "safetybot"
    checked = await asyncio.to_thread(run, program, "check-config", cwd=site, env=bare_env())
    [library] = [line.split(" = ", 1)[1] for line in checked.stdout.splitlines()
                 if line.startswith("SAFETYBOT_HAZARD_CATEGORIES_FILE = ")]
    assert Path(library).is_relative_to(wheel_venv), library
    assert library.endswith("bot/config/categories.toml")
    await serve_from(program, site)

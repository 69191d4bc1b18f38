"""Commands that do not need the category library run when it is broken, on a real database."""

import asyncio
from pathlib import Path

from tests.harness import cli

AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WECOM = {"SAFETYBOT_WECOM_CORP_ID": "ww1436e0e65a779aee", "SAFETYBOT_WECOM_AGENT_ID": "1000002",
         "SAFETYBOT_WECOM_SECRET": "s3cr3t-value", "SAFETYBOT_WECOM_TOKEN": "tok-value",
         "SAFETYBOT_WECOM_AES_KEY": AES}


async def test_commands_without_the_category_library_run_when_it_is_broken(
        fresh_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "categories.toml"
    broken.write_text("[[categories]]\ncode = \n", encoding="utf-8")
    env = {"SAFETYBOT_DATABASE_URL": fresh_url, "SAFETYBOT_LOG_LEVEL": "WARNING",
           "SAFETYBOT_HAZARD_CATEGORIES_FILE": str(broken)}
    for command in (["migrate"], ["load-org"], ["inbox", "parked"]):
        done = await asyncio.to_thread(cli, *command, env=env)
        assert done.returncode == 0, (command, done.stderr)
    for command in (["check-config"], ["serve"]):
        stopped = await asyncio.to_thread(cli, *command, env=env)
        assert stopped.returncode == 2
        assert stopped.stderr.startswith(
            "safetybot: bad setting SAFETYBOT_HAZARD_CATEGORIES_FILE: ")
        assert stopped.stderr.count("\n") == 1

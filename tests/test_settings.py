"""Settings: defaults, the optional file, the environment winning, one clear line when wrong."""

from pathlib import Path

import pytest

from bot.settings import SettingError, describe, load_settings
from tests.harness import cli

AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WECOM = {"SAFETYBOT_WECOM_CORP_ID": "ww1436e0e65a779aee", "SAFETYBOT_WECOM_AGENT_ID": "1000002",
         "SAFETYBOT_WECOM_SECRET": "s3cr3t-value", "SAFETYBOT_WECOM_TOKEN": "tok-value",
         "SAFETYBOT_WECOM_AES_KEY": AES}


def test_defaults_need_nothing() -> None:
    s = load_settings({})
    assert (s.host, s.port, s.timezone) == ("127.0.0.1", 8080, "Asia/Shanghai")
    assert s.database_url.startswith("sqlite://")
    assert not s.wecom.enabled


def test_file_then_environment(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text('port = 9000\ntimezone = "Asia/Urumqi"\n[wecom]\nsecret = "from-file"\n')
    s = load_settings({"SAFETYBOT_CONFIG": str(extra), "SAFETYBOT_PORT": "9100"})
    assert s.port == 9100                    # the environment wins
    assert s.timezone == "Asia/Urumqi"       # the file beats the defaults
    assert s.wecom.secret == "from-file"     # secrets may live in the named file


def test_wecom_settings_from_environment() -> None:
    s = load_settings(WECOM)
    assert s.wecom.enabled and s.wecom.agent_id == 1000002


@pytest.mark.parametrize(("env", "named"), [
    ({"SAFETYBOT_PORT": "eighty"}, "SAFETYBOT_PORT"),
    ({"SAFETYBOT_PORT": "70000"}, "SAFETYBOT_PORT"),
    ({"SAFETYBOT_TIMEZONE": "Mars/Olympus"}, "SAFETYBOT_TIMEZONE"),
    ({"SAFETYBOT_DATABASE_URL": "mysql://x"}, "SAFETYBOT_DATABASE_URL"),
    ({"SAFETYBOT_PROT": "8080"}, "SAFETYBOT_PROT"),
    ({**WECOM, "SAFETYBOT_WECOM_SECRET": ""}, "SAFETYBOT_WECOM_SECRET"),
    ({**WECOM, "SAFETYBOT_WECOM_AES_KEY": "short"}, "SAFETYBOT_WECOM_AES_KEY"),
    ({**WECOM, "SAFETYBOT_WECOM_AGENT_ID": "abc"}, "SAFETYBOT_WECOM_AGENT_ID"),
    ({"SAFETYBOT_CONFIG": "/nonexistent/site.toml"}, "SAFETYBOT_CONFIG"),
])
def test_bad_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_described_settings_hide_secrets() -> None:
    text = "\n".join(describe(load_settings({**WECOM, "SAFETYBOT_DATABASE_URL":
                                            "postgres://bot:pa55word@db:5432/safety"})))
    assert "s3cr3t-value" not in text and "tok-value" not in text and AES not in text
    assert "pa55word" not in text
    assert "SAFETYBOT_WECOM_SECRET = (set, hidden)" in text
    assert "SAFETYBOT_WECOM_CORP_ID = ww1436e0e65a779aee" in text


@pytest.mark.parametrize("url, shown", [
    ("postgres://bot:p@ss@word@db:5432/safety", "postgres://bot:***@db:5432/safety"),
    ("postgres://bot:a/b:c@db/safety", "postgres://bot:***@db/safety"),
    ("postgres://bot@db/safety?password=pa55word&maxsize=20",
     "postgres://bot@db/safety?password=***&maxsize=20"),
    ("postgres://bot@/safety?host=/var/run/postgresql",
     "postgres://bot@/safety?host=/var/run/postgresql"),
])
def test_a_database_url_is_masked_whole_in_check_config(url: str, shown: str) -> None:
    """A password with @, / or : in it, or given as ?password=, never shows, not even in part."""
    done = cli("check-config", env={"SAFETYBOT_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert f"SAFETYBOT_DATABASE_URL = {shown}\n" in done.stdout
    assert "pa55" not in done.stdout and "word" not in done.stdout.replace("password=", "")


def test_check_config_prints_masked_settings() -> None:
    done = cli("check-config", env=WECOM)
    assert done.returncode == 0
    assert "SAFETYBOT_WECOM_TOKEN = (set, hidden)" in done.stdout
    assert "tok-value" not in done.stdout + done.stderr


def test_bad_setting_stops_start_up_with_one_line() -> None:
    done = cli("serve", env={"SAFETYBOT_PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "SAFETYBOT_PORT" in done.stderr

"""Settings: defaults, the optional file, the environment winning, one clear line when wrong;
where relative paths lead."""

from pathlib import Path

import pytest

from bot.settings import SHIPPED_CONFIG, SettingError, describe, load_settings
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
    ({"SAFETYBOT_MEDIA_URL": "ftp://host/media"}, "SAFETYBOT_MEDIA_URL"),
    ({"SAFETYBOT_MEDIA_URL": "file://data/media"}, "SAFETYBOT_MEDIA_URL"),  # not absolute
    ({"SAFETYBOT_MEDIA_URL": "s3://Bad_Bucket/x"}, "SAFETYBOT_MEDIA_URL"),
    ({"SAFETYBOT_S3_ADDRESSING_STYLE": "dns"}, "SAFETYBOT_S3_ADDRESSING_STYLE"),
    ({"SAFETYBOT_S3_ENDPOINT": "oss-cn-hangzhou.aliyuncs.com"}, "SAFETYBOT_S3_ENDPOINT"),
    ({"SAFETYBOT_MEDIA_URL": "s3://media/plant", "SAFETYBOT_S3_ACCESS_KEY_ID": "AKID"},
     "SAFETYBOT_S3_ACCESS_KEY_ID"),
])
def test_bad_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_the_bucket_s_keys_are_hidden_when_settings_are_shown(
        tmp_path: Path) -> None:
    bucket = {"SAFETYBOT_MEDIA_URL": "s3://safetybot-media/plant",
              "SAFETYBOT_S3_ENDPOINT": "https://oss-cn-hangzhou.aliyuncs.com",
              "SAFETYBOT_S3_ADDRESSING_STYLE": "virtual",
              "SAFETYBOT_S3_ACCESS_KEY_ID": "LTAI5tKeyId", "SAFETYBOT_S3_SECRET_ACCESS_KEY": "k3y"}
    settings = load_settings(bucket)
    assert (settings.media_url, settings.s3.addressing_style) == (
        "s3://safetybot-media/plant", "virtual")
    text = "\n".join(describe(settings))
    assert "LTAI5tKeyId" not in text and "k3y" not in text
    assert "SAFETYBOT_S3_SECRET_ACCESS_KEY = (set, hidden)" in text
    assert "SAFETYBOT_MEDIA_URL = s3://safetybot-media/plant" in text


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


def test_a_relative_path_is_relative_to_where_it_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a settings file: its folder (the shipped file's is the package's config folder). In
    the environment, and the data's built-in defaults: the working directory."""
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    (etc / "site.toml").write_text('media_dir = "media"\ndatabase_url = "sqlite://db.sqlite3"\n'
                                   '[hazard]\ncategories_file = "library.toml"\n')
    monkeypatch.chdir(run)
    s = load_settings({"SAFETYBOT_CONFIG": "../etc/site.toml",
                       "SAFETYBOT_SCHEDULE_CALENDAR_FILE": "calendar.toml",
                       "SAFETYBOT_PLANS_DIR": "/srv/plans"})
    assert s.hazard.categories_file == str(etc / "library.toml")
    assert s.media_dir == str(etc / "media")
    assert s.database_url == f"sqlite://{etc / 'db.sqlite3'}"
    assert s.schedule.calendar_file == str(run / "calendar.toml")
    assert s.plans_dir == "/srv/plans"
    assert s.schedule.risk_rules_file == str(SHIPPED_CONFIG / "risk-status.toml")
    assert s.org_file == str(SHIPPED_CONFIG / "demo-org.toml")
    built_in = load_settings({})
    assert built_in.database_url == f"sqlite://{run / 'data' / 'safetybot.sqlite3'}"
    assert built_in.media_dir == str(run / "data" / "media")
    assert load_settings({"SAFETYBOT_DATABASE_URL": "sqlite://:memory:"}).database_url == (
        "sqlite://:memory:")


def test_the_shipped_defaults_are_found_from_any_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    for path in (s.hazard.categories_file, s.schedule.calendar_file,
                 s.schedule.risk_rules_file, s.org_file):
        assert Path(path).is_file(), path
    assert list(Path(s.plans_dir).glob("*.toml"))

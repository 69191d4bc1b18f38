"""Typed settings, built once at start-up.

Sources, later ones winning: `config/settings.toml` (defaults shipped with the code), the file
named by `SAFETYBOT_CONFIG`, then `SAFETYBOT_*` environment variables. A setting
`[wecom] corp_id` is `SAFETYBOT_WECOM_CORP_ID` in the environment. Secrets may come only from the
named file or the environment, and are masked whenever settings are shown.

The repository's `config/` folder ships inside the package as `bot/config` (a link to it in the
checkout, package data in a wheel), so the defaults are found from any working directory and
from any kind of install. A relative path in a setting is relative to where it is written: in a
settings file (the shipped one, or the `SAFETYBOT_CONFIG` file), to that file's folder; in the
environment, and in the built-in defaults of the data (database, media under `./data`), to the
working directory. Settings hold absolute paths once loaded.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHIPPED_CONFIG = (Path(__file__).parent / "config").resolve()
DEFAULTS_FILE = SHIPPED_CONFIG / "settings.toml"
ENV_PREFIX = "SAFETYBOT_"


class SettingError(Exception):
    """A setting is missing or wrong; the message names it and says why, in one line."""


@dataclass(frozen=True)
class WeComSettings:
    corp_id: str = ""
    agent_id: int = 0
    secret: str = ""
    token: str = ""
    aes_key: str = ""
    api_base: str = "https://qyapi.weixin.qq.com"
    # Where the dashboard's sign-in sends people: 网页授权 inside the WeCom app, and the QR
    # login on a PC (a test points both at the simulator).
    oauth_base: str = "https://open.weixin.qq.com"
    login_base: str = "https://login.work.weixin.qq.com"
    per_member_per_minute: int = 30
    api_timeout_seconds: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.corp_id)


@dataclass(frozen=True)
class DingTalkSettings:
    client_id: str = ""                       # the app's Client ID (AppKey)
    client_secret: str = ""                   # its Client Secret (AppSecret)
    robot_code: str = ""                      # the robot's code; "" = the Client ID
    mode: str = "stream"                      # how messages arrive: stream or http
    card_template_id: str = ""                # the card template made from config/dingtalk/
    group_template_id: str = ""               # the scene-group template the plans' groups use
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"   # the older API: media upload, contacts
    login_base: str = "https://login.dingtalk.com"  # the dashboard's sign-in (OAuth2 授权页)
    per_person_per_minute: int = 20
    api_timeout_seconds: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)

    @property
    def robot(self) -> str:
        return self.robot_code or self.client_id


@dataclass(frozen=True)
class S3Settings:
    """The bucket of `SAFETYBOT_MEDIA_URL=s3://bucket/prefix`; the keys only from the
    environment or the SAFETYBOT_CONFIG file."""

    endpoint: str = ""                 # "" = AWS; MinIO, OSS or COS: its https:// address
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    addressing_style: str = "auto"     # auto, path (MinIO) or virtual (OSS, COS)
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class HazardSettings:
    categories_file: str = str(SHIPPED_CONFIG / "categories.toml")
    draft_idle_minutes: int = 30      # an unanswered report question is put aside after this
    photo_window_seconds: int = 60    # photos this close together join one draft quietly
    repeat_window_hours: int = 72     # a report like an open ticket this recent is linked to it
    recurrence_window_days: int = 90  # a report like a ticket closed this recently is 复发
    text_max_chars: int = 500


@dataclass(frozen=True)
class ScheduleSettings:
    tick_seconds: int = 30                   # how often the scheduler looks for due work
    remind_before_hours: str = "24,2"        # reminders to the owner before the deadline
    escalate_after_hours: str = "0,24,48"    # overdue: supervisor, next supervisor, managers
    spread_minutes: int = 10                 # sends are spread over this much past their time
    quiet_hours: str = "22:00-07:00"         # routine reminders wait until the end
    calendar_file: str = str(SHIPPED_CONFIG / "calendar.toml")  # weekends, holidays, 调休
    workday_end: str = "17:30"               # a 一般 ticket is due at this time of its last day
    digest_time: str = "08:20"               # daily digest; the monthly report on the 1st
    risk_rules_file: str = str(SHIPPED_CONFIG / "risk-status.toml")
    audit_grace_minutes: int = 15            # a step this late is reported by the auditor


@dataclass(frozen=True)
class EmergencySettings:
    remind_minutes: int = 2            # a responder who has not answered is reminded this often
    reminders_before_deputy: int = 2   # then their deputy is called
    join_minutes: int = 10             # the same plan and area started again this soon joins
    board_seconds: int = 30            # the commander's board is sent at most this often
    review_hours: int = 48             # a response is reviewed (评估) within this of its close
    drill_rules_file: str = str(SHIPPED_CONFIG / "drills.toml")   # how often plans are drilled
    high_risk_industry: bool = False   # 高危行业 or 人员密集场所: drills at least every half year


@dataclass(frozen=True)
class QualificationSettings:
    certificates_file: str = str(SHIPPED_CONFIG / "certificates.toml")   # certificate types
    work_types_file: str = str(SHIPPED_CONFIG / "work-types.toml")       # what work needs


@dataclass(frozen=True)
class TrainingSettings:
    rules_file: str = str(SHIPPED_CONFIG / "training.toml")   # pass mark, reminders, thresholds
    courses_dir: str = str(SHIPPED_CONFIG / "training")       # one file a course


@dataclass(frozen=True)
class InspectionSettings:
    rules_file: str = str(SHIPPED_CONFIG / "inspection.toml")   # by-risk frequencies, reminders
    sites_dir: str = str(SHIPPED_CONFIG / "inspection")         # checkpoints, routes, plans


@dataclass(frozen=True)
class DashboardSettings:
    session_hours: int = 12        # a browser session lasts this long after sign-in
    # Where people reach the service (https://safety.example.com): the platforms' login sends
    # them back there. "" = the address the request came to.
    public_url: str = ""
    # The site plan of the risk map: a TOML file naming the plan image (SVG or PNG) beside it
    # and each area's polygon on it (bot/web/dashboard/site.py).
    site_file: str = str(SHIPPED_CONFIG / "site" / "site.toml")


@dataclass(frozen=True)
class ModulesSettings:
    """The modules this plant has rolled out; a module switched off is not there at all."""

    hazard: bool = True        # 隐患排查治理: report, rectify, review, reminders, reports
    emergency: bool = True     # 应急预案: alarm, activation, acknowledgement, boards
    qualification: bool = True  # 一人一档: certificates, the pre-work check, contractors
    training: bool = True       # 培训: courses and quizzes in chat, assignments, the hours ledger
    inspection: bool = True     # 扫码巡检: checkpoints, rounds on schedule, findings as tickets
    dashboard: bool = True      # 看板: the web pages behind the platform's login, the JSON API


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite://data/safetybot.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8080
    timezone: str = "Asia/Shanghai"
    org_file: str = str(SHIPPED_CONFIG / "demo-org.toml")
    plans_dir: str = str(SHIPPED_CONFIG / "plans")
    resources_file: str = str(SHIPPED_CONFIG / "resources.toml")
    media_dir: str = "data/media"
    media_url: str = ""                # s3://bucket/prefix or file:///folder; "" = media_dir
    instance_id: str = ""
    log_level: str = "INFO"
    max_body_bytes: int = 65536
    inbox_concurrency: int = 16
    inbox_max_attempts: int = 5
    lease_seconds: float = 10.0
    inbox_retry_seconds: float = 1.0
    environment_retry_minutes: int = 30
    ready_max_lag_seconds: float = 120.0
    outbox_concurrency: int = 8
    outbox_max_attempts: int = 20
    poll_seconds: float = 0.5
    webchat: str = "auto"
    wecom: WeComSettings = WeComSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    s3: S3Settings = S3Settings()
    hazard: HazardSettings = HazardSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    emergency: EmergencySettings = EmergencySettings()
    qualification: QualificationSettings = QualificationSettings()
    training: TrainingSettings = TrainingSettings()
    inspection: InspectionSettings = InspectionSettings()
    dashboard: DashboardSettings = DashboardSettings()
    modules: ModulesSettings = ModulesSettings()

    @property
    def modules_on(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.modules) if getattr(self.modules, f.name))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def webchat_enabled(self) -> bool:
        """The web chat lets anyone act as anyone: `auto` serves it only on a loopback host."""
        if self.webchat == "auto":
            return is_loopback(self.host)
        return self.webchat == "on"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SECRETS = frozenset({"wecom.secret", "wecom.token", "wecom.aes_key",
                     "dingtalk.client_secret", "s3.access_key_id", "s3.secret_access_key"})
SECTIONS: dict[str, type] = {"wecom": WeComSettings, "dingtalk": DingTalkSettings,
                             "s3": S3Settings,
                             "hazard": HazardSettings, "schedule": ScheduleSettings,
                             "emergency": EmergencySettings,
                             "qualification": QualificationSettings,
                             "training": TrainingSettings,
                             "inspection": InspectionSettings,
                             "dashboard": DashboardSettings,
                             "modules": ModulesSettings}


# The settings that name a file or folder (and database_url, when it names a SQLite file).
PATHS = ("org_file", "plans_dir", "resources_file", "media_dir", "hazard.categories_file",
         "schedule.calendar_file", "schedule.risk_rules_file", "emergency.drill_rules_file",
         "qualification.certificates_file", "qualification.work_types_file",
         "training.rules_file", "training.courses_dir", "inspection.rules_file",
         "inspection.sites_dir", "dashboard.site_file")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the built-in defaults, the shipped `config/settings.toml`, the optional
    `SAFETYBOT_CONFIG` file and the environment, then validate. Each source's relative paths
    are made absolute as it is read (the module's docstring says against what)."""
    env = os.environ if environ is None else environ
    cwd = Path.cwd()
    shipped = read_toml(DEFAULTS_FILE)
    raw = _anchored(asdict(Settings()), cwd)
    _merge(raw, _anchored(shipped, DEFAULTS_FILE.parent))
    secrets_allowed: set[str] = set()
    extra = env.get(ENV_PREFIX + "CONFIG")
    if extra:
        path = Path(os.path.abspath(extra))
        overlay = read_toml(path)
        _merge(raw, _anchored(overlay, path.parent))
        secrets_allowed |= _flat_keys(overlay)
    for name in SECRETS & _flat_keys(shipped) - secrets_allowed:
        raise SettingError(f"{_env_name(name)}: secrets belong in the environment or in the "
                           "SAFETYBOT_CONFIG file, not in config/settings.toml")
    _merge(raw, _anchored(_from_environment(env), cwd))
    return _validate(_build(raw))


def _anchored(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """One source's settings with its relative paths put under `base`."""
    result = {key: dict(value) if isinstance(value, Mapping) else value
              for key, value in raw.items()}
    for dotted in (*PATHS, "database_url"):
        section, _, key = dotted.rpartition(".")
        where = result.get(section) if section else result
        if not isinstance(where, dict) or not isinstance(where.get(key), str) or not where[key]:
            continue
        value = where[key]
        where[key] = (_sqlite_under(value, base) if dotted == "database_url"
                      else os.path.normpath(base / value))
    return result


def _sqlite_under(url: str, base: Path) -> str:
    """`sqlite://data/x.sqlite3` names a file relative to `base`; other URLs stay as they are."""
    if not url.startswith("sqlite://"):
        return url
    path, sep, options = url.removeprefix("sqlite://").partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return f"sqlite://{os.path.normpath(base / path)}{sep}{options}"


def read_toml(path: Path, setting: str = ENV_PREFIX + "CONFIG") -> dict[str, Any]:
    """A configuration file; a missing or broken one is a bad `setting`, said in one line."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingError(f"{setting}: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"{setting}: {path} is not valid TOML ({exc})") from None


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value if not isinstance(value, Mapping) else dict(value)


def _flat_keys(raw: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for key, value in raw.items():
        if isinstance(value, Mapping):
            keys |= {f"{key}.{inner}" for inner in value}
        else:
            keys.add(key)
    return keys


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """Map SAFETYBOT_WECOM_CORP_ID to {"wecom": {"corp_id": ...}}; unknown names are refused."""
    result: dict[str, Any] = {}
    top = {f.name for f in fields(Settings)} - set(SECTIONS)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in {ENV_PREFIX + "CONFIG"}:
            continue
        if name.startswith(ENV_PREFIX + "TEST_"):
            continue
        key = name[len(ENV_PREFIX):].lower()
        section = next((s for s in SECTIONS if key.startswith(s + "_")), None)
        if section:
            result.setdefault(section, {})[key[len(section) + 1:]] = value
        elif key in top:
            result[key] = value
        else:
            raise SettingError(f"{name}: unknown setting")
    return result


def _build(raw: Mapping[str, Any]) -> Settings:
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in SECTIONS:
            values[f.name] = _build_section(f.name, SECTIONS[f.name], raw.get(f.name, {}))
        elif f.name in raw:
            values[f.name] = _coerce(f.name, Settings, raw[f.name])
    unknown = set(raw) - {f.name for f in fields(Settings)}
    if unknown:
        raise SettingError(f"{_env_name(sorted(unknown)[0])}: unknown setting")
    return Settings(**values)


def _build_section(section: str, cls: type, raw: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise SettingError(f"{_env_name(section + '.' + sorted(unknown)[0])}: unknown setting")
    return cls(**{k: _coerce(f"{section}.{k}", cls, v) for k, v in raw.items()})


def _coerce(dotted: str, cls: type, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(cls)}[dotted.rsplit(".", 1)[-1]]
    try:
        if kind == "bool":
            return _switch(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        expected = "true or false" if kind == "bool" else kind
        raise SettingError(f"{_env_name(dotted)}: expected {expected}, got {value!r}") from None


def _switch(value: Any) -> bool:
    """A TOML boolean, or on/off words in the environment."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "on", "yes", "1"):
        return True
    if word in ("false", "off", "no", "0"):
        return False
    raise ValueError(word)


def _validate(s: Settings) -> Settings:
    if not s.modules_on:
        raise SettingError("SAFETYBOT_MODULES_*: every module is switched off; switch on at "
                           "least one in [modules]")
    if not (1 <= s.port <= 65535):
        raise SettingError(f"SAFETYBOT_PORT: {s.port} is not a port number")
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingError(f"SAFETYBOT_TIMEZONE: unknown time zone {s.timezone!r}") from None
    if not re.match(r"^(sqlite|postgres|asyncpg)://", s.database_url):
        raise SettingError("SAFETYBOT_DATABASE_URL: must start with sqlite:// or postgres://")
    for name in ("inbox_concurrency", "inbox_max_attempts", "outbox_concurrency",
                 "environment_retry_minutes", "lease_seconds", "ready_max_lag_seconds"):
        if getattr(s, name) < 1:
            raise SettingError(f"{_env_name(name)}: must be at least 1")
    if s.webchat not in ("auto", "on", "off"):
        raise SettingError(f"SAFETYBOT_WEBCHAT: must be auto, on or off, got {s.webchat!r}")
    for name in ("draft_idle_minutes", "photo_window_seconds", "repeat_window_hours",
                 "recurrence_window_days",
                 "text_max_chars"):
        if getattr(s.hazard, name) < 1:
            raise SettingError(f"{_env_name('hazard.' + name)}: must be at least 1")
    for name in ("remind_minutes", "reminders_before_deputy", "join_minutes", "board_seconds",
                 "review_hours"):
        if getattr(s.emergency, name) < 1:
            raise SettingError(f"{_env_name('emergency.' + name)}: must be at least 1")
    _validate_media(s)
    if s.wecom.enabled:
        _validate_wecom(s.wecom)
    if s.dingtalk.enabled:
        _validate_dingtalk(s.dingtalk)
    return s


def _validate_media(s: Settings) -> None:
    url = s.media_url
    if url and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|file:///.*", url):
        raise SettingError("SAFETYBOT_MEDIA_URL: must be s3://bucket/prefix or file:///folder "
                           f"(an absolute path), got {url!r}")
    if s.s3.addressing_style not in ("auto", "path", "virtual"):
        raise SettingError("SAFETYBOT_S3_ADDRESSING_STYLE: must be auto, path or virtual, got "
                           f"{s.s3.addressing_style!r}")
    if s.s3.endpoint and not s.s3.endpoint.startswith(("http://", "https://")):
        raise SettingError("SAFETYBOT_S3_ENDPOINT: must be an http(s) URL")
    if url.startswith("s3://") and bool(s.s3.access_key_id) != bool(s.s3.secret_access_key):
        raise SettingError("SAFETYBOT_S3_ACCESS_KEY_ID and SAFETYBOT_S3_SECRET_ACCESS_KEY: "
                           "set both, or neither (the host's own credentials)")


def _validate_wecom(w: WeComSettings) -> None:
    for name in ("agent_id", "secret", "token", "aes_key"):
        if not getattr(w, name):
            raise SettingError(f"SAFETYBOT_WECOM_{name.upper()}: required when "
                               "SAFETYBOT_WECOM_CORP_ID is set")
    if not re.fullmatch(r"[A-Za-z0-9]{43}", w.aes_key):
        raise SettingError("SAFETYBOT_WECOM_AES_KEY: must be the 43-character EncodingAESKey")
    if not w.api_base.startswith(("http://", "https://")):
        raise SettingError("SAFETYBOT_WECOM_API_BASE: must be an http(s) URL")


def _validate_dingtalk(d: DingTalkSettings) -> None:
    for name in ("client_secret", "card_template_id"):
        if not getattr(d, name):
            raise SettingError(f"SAFETYBOT_DINGTALK_{name.upper()}: required when "
                               "SAFETYBOT_DINGTALK_CLIENT_ID is set")
    if d.mode not in ("stream", "http"):
        raise SettingError(f"SAFETYBOT_DINGTALK_MODE: must be stream or http, got {d.mode!r}")
    for name in ("api_base", "oapi_base"):
        if not getattr(d, name).startswith(("http://", "https://")):
            raise SettingError(f"SAFETYBOT_DINGTALK_{name.upper()}: must be an http(s) URL")
    if d.per_person_per_minute < 1 or d.api_timeout_seconds <= 0:
        raise SettingError("SAFETYBOT_DINGTALK_PER_PERSON_PER_MINUTE and _API_TIMEOUT_SECONDS: "
                           "must be positive")


def describe(settings: Settings) -> list[str]:
    """The effective settings as `NAME = value` lines, secrets masked, paths as resolved (and
    relative to the working directory when they are inside it)."""
    lines = []
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in SECTIONS:
            for inner in fields(value):
                dotted = f"{f.name}.{inner.name}"
                lines.append(f"{_env_name(dotted)} = {_show(dotted, getattr(value, inner.name))}")
        elif f.name == "webchat":
            state = "on" if settings.webchat_enabled else "off"
            lines.append(f"{_env_name(f.name)} = {value} (/chat is {state})")
        else:
            lines.append(f"{_env_name(f.name)} = {_show(f.name, value)}")
    return lines


def _show(dotted: str, value: Any) -> str:
    if dotted in SECRETS:
        return "(set, hidden)" if value else "(not set)"
    if dotted == "database_url":
        url = str(value)
        if url.startswith("sqlite://"):
            return "sqlite://" + _near(url.removeprefix("sqlite://"))
        return mask_url(url)
    if dotted in PATHS:
        return _near(str(value))
    return str(value)


def _near(path: str) -> str:
    """`path` relative to the working directory when it is inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def mask_url(url: str) -> str:
    """A database URL fit to print: the password, and every query option that is one, become
    ***. The password is whatever stands between the user's colon and the last @ before the
    host, so a password with @, / or : in it is hidden whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    if "@" in rest:
        userinfo, host = rest.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    if query:
        query = "&".join(
            f"{part.split('=', 1)[0]}=***" if _SECRET_OPTION.search(part.split("=", 1)[0])
            else part for part in query.split("&"))
        rest = f"{rest}?{query}"
    return f"{scheme}://{rest}"


_SECRET_OPTION = re.compile(r"pass|secret|token|key", re.IGNORECASE)

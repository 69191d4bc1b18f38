"""The platforms the service can speak, in order: the app connects each one its settings switch
on, and the first of those is where scheduled notices go (a person's home platform, until the
user row says otherwise).

Adding a platform is a module in this package that declares its `Plugin`, and one line here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.channels import Plugin, dingtalk, webchat, wecom
from bot.settings import Settings
from models.outgoing import Limits

PLUGINS: tuple[Plugin, ...] = (
    wecom.PLUGIN,
    dingtalk.PLUGIN,
    webchat.PLUGIN,      # last: the local fallback that needs nothing to connect
)
PLATFORMS: tuple[str, ...] = tuple(plugin.platform for plugin in PLUGINS)


def enabled(settings: Settings, plugins: Sequence[Plugin] = PLUGINS) -> list[Plugin]:
    return [plugin for plugin in plugins if plugin.enabled(settings)]


def home_platform(settings: Settings, plugins: Sequence[Plugin] = PLUGINS) -> str:
    """The first platform switched on; with none, the last declared (the web chat)."""
    on = enabled(settings, plugins)
    return (on[0] if on else plugins[-1]).platform


def limits_by_platform(settings: Settings, plugins: Sequence[Plugin] = PLUGINS
                       ) -> dict[str, Limits]:
    """Each platform's limits with these settings, for the handlers' configuration (events of
    a platform switched off since may still wait in the inbox, so every platform is named)."""
    return {plugin.platform: plugin.limits(settings) for plugin in plugins}

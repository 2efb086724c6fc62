"""Channel app configuration, validated before the service starts: a
bad EncodingAESKey or an empty token refuses to start (docs/measured-facts.md)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

from bot.outbound.routing import ROUTE_KINDS, WEBHOOK
from bot.settings import Settings

AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")
DEMO_APP = "demo"


class ChannelConfigError(ValueError):
    """A channel app is misconfigured; the service refuses to start."""


class Mode(StrEnum):
    PLAIN = "plain"  # 明文模式
    COMPAT = "compat"  # 兼容模式: plain and encrypted both accepted
    SAFE = "safe"  # 安全模式: encrypted only


@dataclass(frozen=True)
class ChannelApp:
    name: str
    token: str
    # The OA AppID, or the WeCom CorpID: the receiveid inside every ciphertext must equal it
    # (else 403 WX_APPID_MISMATCH). A WeCom AI bot (智能机器人) encrypts with receiveid '':
    # configure it with corp_id left empty.
    app_id: str
    aes_key: str | None = None
    secret: str | None = None
    mode: Mode = Mode.PLAIN
    agent_id: str | None = None  # WeCom: the self-built app (AgentId) that sends app messages

    def __repr__(self) -> str:  # never print the token, key or secret, not even in an error
        return f"ChannelApp(name={self.name!r}, app_id={self.app_id!r}, mode={self.mode})"


@dataclass(frozen=True)
class ChannelApps:
    wechat: dict[str, ChannelApp]
    wecom: dict[str, ChannelApp]
    default_wechat: str | None


def _aes_key(where: str, key: str | None) -> str | None:
    if not key:
        return None
    if not AES_KEY.match(key):
        raise ChannelConfigError(
            f"{where}: EncodingAESKey must be exactly 43 characters of A-Z, a-z, 0-9, + or /"
            f" (got {len(key)} characters)"
        )
    try:
        raw = base64.b64decode(key + "=", validate=True)
    except binascii.Error as exc:
        raise ChannelConfigError(f"{where}: EncodingAESKey is not valid base64") from exc
    if len(raw) != 32:
        raise ChannelConfigError(f"{where}: EncodingAESKey must decode to 32 bytes")
    return key


def _app(kind: str, name: str, raw: dict[str, str], id_field: str) -> ChannelApp:
    where = f"{kind} app {name!r}"
    token = (raw.get("token") or "").strip()
    if not token:
        raise ChannelConfigError(f"{where}: token is empty; copy it from the platform console")
    app_id = (raw.get(id_field) or "").strip()
    aes_key = _aes_key(where, raw.get("aes_key"))
    mode = Mode(raw.get("mode") or (Mode.SAFE if aes_key else Mode.PLAIN))
    if mode != Mode.PLAIN and aes_key is None:
        raise ChannelConfigError(f"{where}: mode {mode} needs aes_key (EncodingAESKey)")
    if kind == "wecom" and aes_key is None:
        raise ChannelConfigError(f"{where}: WeCom callbacks are always encrypted; set aes_key")
    if aes_key and kind == "wechat" and not app_id:
        raise ChannelConfigError(f"{where}: encrypted mode needs {id_field}")
    agent_id = (raw.get("agent_id") or "").strip() or None
    if agent_id is not None and (kind != "wecom" or not agent_id.isdigit()):
        raise ChannelConfigError(f"{where}: agent_id is a WeCom app's numeric AgentId")
    return ChannelApp(name, token, app_id, aes_key, raw.get("secret") or None, mode, agent_id)


def _check_routes(settings: Settings) -> None:
    """Each group route says what it reaches: a private reply may ride only a `bridge`."""
    for chat_id, route in settings.outbound_routes.items():
        kind = route.get("kind", WEBHOOK)
        if kind not in ROUTE_KINDS or not route.get("url"):
            raise ChannelConfigError(
                f"outbound route {chat_id!r}: needs a url and a kind of {sorted(ROUTE_KINDS)}"
                f" (got kind {kind!r})")


def load_apps(settings: Settings) -> ChannelApps:
    """Every configured app and route, checked; raises ChannelConfigError naming the bad one."""
    _check_routes(settings)
    wechat = {n: _app("wechat", n, raw, "appid") for n, raw in settings.wechat_apps.items()}
    wecom = {n: _app("wecom", n, raw, "corp_id") for n, raw in settings.wecom_apps.items()}
    if settings.demo and DEMO_APP not in wechat:
        wechat[DEMO_APP] = ChannelApp(
            DEMO_APP, "corecircle-demo-token", "wxcorecircledemo0",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", None, Mode.SAFE,
        )
    default = settings.wechat_default_app
    if default is not None and default not in wechat:
        raise ChannelConfigError(f"wechat_default_app {default!r} is not a configured OA app")
    if default is None and wechat:
        default = DEMO_APP if DEMO_APP in wechat else next(iter(wechat))
    return ChannelApps(wechat, wecom, default)

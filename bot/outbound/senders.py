"""The senders: OA customer-service, WeCom kf, WeCom app message, group robot, a webhook."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.outbound.platform import PlatformApi, result_of
from bot.outbound.sender import NETWORK, OK, PartDone, SendResult
from bot.outbound.split import split_text


def _each_part(text: str, send_one: Callable[[str], SendResult], start: int = 0,
               on_part: PartDone | None = None) -> SendResult:
    """Send the parts from `start` on, in order; stop at the first failure."""
    parts = split_text(text)
    for i in range(max(0, start), len(parts)):
        result = send_one(parts[i])
        if not result.ok:
            return SendResult(False, result.errcode, result.errmsg, len(parts))
        if on_part is not None:
            on_part(i + 1, len(parts))
    return SendResult(True, parts=len(parts))


class OACustomSender:
    """客服消息 /cgi-bin/message/custom/send to an OpenID (48 h after the user's last message)."""

    def __init__(self, api: PlatformApi) -> None:
        self.api = api

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult:
        if not to:
            return SendResult(False, 40003, "no OpenID to send to")
        return _each_part(text, lambda part: result_of(self.api.call(
            "/cgi-bin/message/custom/send",
            {"touser": to, "msgtype": "text", "text": {"content": part}},
        )), start, on_part)


class KfSender:
    """微信客服 /cgi-bin/kf/send_msg; `to` is the external_userid, the kf account is looked up."""

    def __init__(self, api: PlatformApi, open_kfid_for: Callable[[str], str | None]) -> None:
        self.api, self.open_kfid_for = api, open_kfid_for

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult:
        open_kfid = self.open_kfid_for(to) if to else None
        if not to or not open_kfid:
            return SendResult(False, 40003, "no external_userid/open_kfid to send to")
        return _each_part(text, lambda part: result_of(self.api.call(
            "/cgi-bin/kf/send_msg",
            {"touser": to, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": part}},
        )), start, on_part)


class AppMessageSender:
    """WeCom 应用消息 /cgi-bin/message/send to one corp member (`to` is their WeCom userid)."""

    def __init__(self, api: PlatformApi, agent_id: str) -> None:
        self.api, self.agent_id = api, int(agent_id)

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult:
        if not to:
            return SendResult(False, 40003, "no WeCom userid to send to")
        return _each_part(text, lambda part: result_of(self.api.call(
            "/cgi-bin/message/send",
            {"touser": to, "agentid": self.agent_id, "msgtype": "text",
             "text": {"content": part}},
        )), start, on_part)


class RobotSender:
    """WeCom group robot: POST the webhook URL (it carries its own key; no token)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http, self.url = http, url

    def _one(self, part: str) -> SendResult:
        try:
            r = self.http.post(self.url, json={"msgtype": "text", "text": {"content": part}})
            return result_of(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            return SendResult(False, NETWORK, type(exc).__name__)

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult:
        return _each_part(text, self._one, start, on_part)


class WebhookSender:
    """A bridge that carries the group chat: POST {"chat_id", "to", "text"}; 2xx is success."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http, self.url = http, url

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult:
        """One POST carries the whole text (the bridge splits if it must): nothing to resume."""
        try:
            r = self.http.post(self.url, json={"chat_id": circle, "to": to, "text": text})
        except httpx.HTTPError as exc:
            return SendResult(False, NETWORK, type(exc).__name__)
        if r.is_success:
            return OK
        return SendResult(False, r.status_code, f"webhook answered HTTP {r.status_code}")

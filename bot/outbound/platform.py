"""HTTP calls to the WeChat/WeCom APIs (httpx, ≤ 5 s), with one token refresh on 40001/42001."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from bot.outbound.sender import INVALID_TOKEN, NETWORK, SendResult
from bot.outbound.tokens import Token, TokenCache, TokenError
from storage.state import StateStore

log = logging.getLogger(__name__)


def _body(payload: dict[str, Any]) -> bytes:
    # WeChat shows \uXXXX escapes literally: send real UTF-8.
    return json.dumps(payload, ensure_ascii=False).encode()


def result_of(data: dict[str, Any]) -> SendResult:
    code = int(data.get("errcode") or 0)
    return SendResult(code == 0, code, str(data.get("errmsg") or ""))


class PlatformApi:
    """One app's API: the token cache plus authenticated JSON calls."""

    def __init__(self, http: httpx.Client, base: str, tokens: TokenCache) -> None:
        self.http, self.base, self.tokens = http, base.rstrip("/"), tokens

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with the access token; on an invalid token, one refresh and one retry."""
        try:
            token = self.tokens.get()
        except TokenError as exc:
            return {"errcode": exc.errcode, "errmsg": exc.errmsg}
        data = self._post(path, payload, token)
        if int(data.get("errcode") or 0) in INVALID_TOKEN:
            try:
                fresh = self.tokens.refresh_after_invalid(token)
            except TokenError as exc:
                return {"errcode": exc.errcode, "errmsg": exc.errmsg}
            if fresh is not None:
                data = self._post(path, payload, fresh)
        return data

    def _post(self, path: str, payload: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            r = self.http.post(f"{self.base}{path}", params={"access_token": token},
                               content=_body(payload),
                               headers={"Content-Type": "application/json"})
            if r.status_code >= 500:
                return {"errcode": r.status_code, "errmsg": "platform HTTP error"}
            data = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            return {"errcode": NETWORK, "errmsg": type(exc).__name__}
        return data if isinstance(data, dict) else {"errcode": NETWORK, "errmsg": "not JSON"}


def _token_from(data: dict[str, Any]) -> Token:
    if "access_token" not in data:
        raise TokenError(int(data.get("errcode") or NETWORK), str(data.get("errmsg") or ""))
    return Token(str(data["access_token"]), int(data.get("expires_in") or 7200))


def oa_api(http: httpx.Client, base: str, state: StateStore, appid: str,
           secret: str) -> PlatformApi:
    """OA: the stable_token endpoint, which does not invalidate tokens other workers hold."""

    def fetch(force: bool) -> Token:
        try:
            r = http.post(f"{base.rstrip('/')}/cgi-bin/stable_token", json={
                "grant_type": "client_credential", "appid": appid, "secret": secret,
                "force_refresh": force,
            })
            return _token_from(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(NETWORK, type(exc).__name__) from exc

    return PlatformApi(http, base, TokenCache(state, f"oa:{appid}", fetch))


def corp_api(http: httpx.Client, base: str, state: StateStore, *, corp_id: str,
             secret: str, name: str) -> PlatformApi:
    """WeCom: gettoken per (corp, app secret)."""

    def fetch(_force: bool) -> Token:
        try:
            r = http.get(f"{base.rstrip('/')}/cgi-bin/gettoken",
                         params={"corpid": corp_id, "corpsecret": secret})
            return _token_from(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(NETWORK, type(exc).__name__) from exc

    return PlatformApi(http, base, TokenCache(state, f"corp:{corp_id}:{name}", fetch))

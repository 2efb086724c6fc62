"""Request body cap, enforced before the body is read; JSON routes take only JSON.

Starlette's own RequestBodyLimitMiddleware only acts once a handler reads the body and answers in
plain text; this one refuses a declared oversize at once, with our stable error code.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import params
from pydantic_core import from_json
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> bytes:
    return json.dumps(
        {"error": {"code": "BODY_TOO_LARGE", "message": f"request body over {limit} bytes"}}
    ).encode()


class _TooLarge(HTTPException):
    """An HTTPException so FastAPI re-raises it instead of calling it a parse error."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class BodySizeLimit:
    """Refuses a declared Content-Length over the cap at once, and stops a chunked body as soon
    as it passes the cap, so a 200 MB upload never sits in memory."""

    def __init__(self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None) -> None:
        """`overrides`: a larger cap for named paths (the book-of-business upload)."""
        self.app, self.default, self.overrides = app, limit, overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.default)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await self._reject(send, limit)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, limit)

    async def _reject(self, send: Any, limit: int) -> None:
        body = _too_large(limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _routes(routes: Any) -> Any:
    """Every route, through FastAPI's included routers (which nest since FastAPI 0.16x)."""
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if callable(nested):
            yield from _routes(nested())
        else:
            yield route


def _json_body_route(app: Any, scope: Scope) -> bool:
    """Does the matched route take a JSON body that FastAPI parses (not a form, not raw)?"""
    for route in _routes(getattr(app, "routes", ())):
        try:
            match, _ = route.matches(scope)
        except (KeyError, AttributeError, TypeError):
            continue
        if match == Match.FULL:
            body = getattr(route, "body_field", None)
            return body is not None and not isinstance(body.field_info, params.Form)
    return False


def _refuse(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": message}}).encode()


class JsonOnly:
    """JSON routes take JSON: another content type is a 415, and a body that is not strict JSON
    (lone surrogates included, which no database can store) is a 400 BAD_JSON, before any
    handler runs. Routes that read their own body (the signed webhook) check it themselves,
    after authentication."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") \
                or not _json_body_route(scope.get("app"), scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        refusal = None
        if body and not (ctype == "application/json" or ctype.endswith("+json")):
            refusal = _refuse(415, "UNSUPPORTED_MEDIA_TYPE",
                              f"send JSON (content-type application/json), not {ctype or 'none'}")
        elif body:
            try:
                from_json(body)
            except ValueError:
                refusal = _refuse(400, "BAD_JSON", "body is not valid JSON (UTF-8, no lone "
                                  "surrogates)")
        if refusal is not None:
            status, payload = refusal
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

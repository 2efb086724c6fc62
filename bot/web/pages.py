"""Page plumbing: templates, the login session cookie, CSRF, role checks that redirect."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.auth import Principal, TokenSigner
from bot.services import Services
from bot.web import display
from storage.enums import UserRole
from storage.errors import AppError, Forbidden, Unauthorized
from storage.state import StateUnavailable

log = logging.getLogger(__name__)

WEB = Path(__file__).parent
COOKIE = "cc_session"
CSRF_FIELD, CSRF_HEADER = "csrf", "X-CSRF-Token"
PAGE_PREFIXES = ("/console", "/chat")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@cache
def templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(WEB / "templates"),
        autoescape=select_autoescape(["html"]),
        finalize=display.neutral,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"local": display.local, "countdown": display.countdown,
                    "initial": display.initial, "span": display.span,
                    "mentions": display.mentions, "masked": display.masked}
    return Jinja2Templates(env=env)


def _svc(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# -- the session cookie and CSRF ----------------------------------------------------------------
def login_response(request: Request, signer: TokenSigner, who: Principal, to: str,
                   minutes: int) -> RedirectResponse:
    """Log in: an HttpOnly, SameSite=Lax cookie holding the signed token (role included)."""
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(
        COOKIE, signer.issue(who), max_age=minutes * 60, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )
    return response


def _revoked_key(token: str) -> str:
    return "logout:" + hashlib.sha256(token.encode()).hexdigest()[:40]


def logout_response(request: Request) -> RedirectResponse:
    """The cookie goes, and its token is refused until it would have expired anyway."""
    svc = _svc(request)
    token = request.cookies.get(COOKIE)
    if token:
        try:
            svc.state.set_json(_revoked_key(token), True, ttl=svc.settings.token_minutes * 60)
        except StateUnavailable:
            log.warning("state store unavailable: logout clears the cookie only")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def session_of(request: Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    svc = _svc(request)
    try:  # a deactivated user, or one whose role changed, loses the page session too
        who = svc.users.require(svc.sessions, svc.signer.read(token),
                                svc.settings.principal_cache_seconds)
    except Unauthorized:
        return None
    try:
        if svc.state.get_json(_revoked_key(token)):
            return None
    except StateUnavailable:
        log.warning("state store unavailable: a logged-out session cannot be told apart")
    return who


def csrf_token(request: Request) -> str:
    """Bound to this session's cookie: a form from another site cannot know it."""
    return _svc(request).signer.mac("csrf", request.cookies.get(COOKIE, ""))


async def check_csrf(request: Request) -> None:
    """Every unsafe page request carries the token, as a form field or a header."""
    if request.method not in UNSAFE:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given, csrf_token(request)):
        raise Forbidden("the form is stale or came from another site; reload the page",
                        code="CSRF_FAILED")


class LoginRequired(Exception):
    """No valid session: the browser goes to the login form and comes back afterwards."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


def page_roles(*roles: UserRole) -> Callable[[Request], Principal]:
    def check(request: Request) -> Principal:
        who = session_of(request)
        if who is None:
            raise LoginRequired(request.url.path + (f"?{request.url.query}"
                                                    if request.url.query else ""))
        if who.role not in roles:
            raise Forbidden("this page is for another role", code="ROLE_FORBIDDEN")
        return who

    return check


StaffPage = Annotated[
    Principal, Depends(page_roles(UserRole.AGENT, UserRole.SUPERVISOR, UserRole.ADMIN))
]
SupervisorPage = Annotated[
    Principal, Depends(page_roles(UserRole.SUPERVISOR, UserRole.ADMIN))
]
CsrfChecked = Depends(check_csrf)


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//evil.example` or an absolute URL."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/console/"
    return value


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    who = session_of(request)
    context |= {"who": who, "csrf": csrf_token(request) if who else "",
                "path": request.url.path, "label": _svc(request).scripts.label}
    return templates().TemplateResponse(request, name, context, status_code=status)


# -- errors on pages ----------------------------------------------------------------------------
def is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PREFIXES) and not request.headers.get("HX-Request")


def page_error(request: Request, exc: AppError) -> Response:
    return render(request, "error.html", status=exc.status, code=exc.code)


def login_redirect(_: Request, exc: Exception) -> Response:
    back = exc.back_to if isinstance(exc, LoginRequired) else "/console/"
    return RedirectResponse(f"/console/login?next={quote(back)}", status_code=303)

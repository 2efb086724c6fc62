"""HTTP edge helpers: error mapping, the services accessor, auth dependencies."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordBearer
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.auth import Principal
from bot.services import Services
from bot.web.pages import is_page, page_error, session_of
from storage.db import DatabaseUnavailable
from storage.enums import UserRole
from storage.errors import AppError, Forbidden, Unauthorized

log = logging.getLogger(__name__)

HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}

_REASONS = {
    400: "Malformed request (BAD_JSON, ...)",
    401: "Not authenticated (LOGIN_REQUIRED, TOKEN_INVALID, HOOK_SIG_*, ...)",
    403: "Not allowed (ROLE_FORBIDDEN, CIRCLE_FORBIDDEN, ...)",
    404: "No such object (NOT_FOUND, CIRCLE_UNKNOWN, ...)",
    405: "Method not allowed",
    409: "Conflicts with the object's state",
    413: "Body or text too large (BODY_TOO_LARGE, TEXT_TOO_LONG)",
    415: "Content type not accepted (UNSUPPORTED_MEDIA_TYPE)",
    422: "Invalid fields (VALIDATION_ERROR, names them)",
    429: "Too many attempts; see Retry-After (LOGIN_THROTTLED)",
    503: "The database is unavailable; see Retry-After (DB_UNAVAILABLE)",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="what went wrong and what to do")


class ErrorOut(BaseModel):
    """Every error answer: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses, all with the envelope."""
    return {s: {"model": ErrorOut, "description": _REASONS.get(s, "Error")} for s in statuses}


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON (an empty body with no type passes)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return
    if not ctype and request.headers.get("content-length", "0") == "0":
        return
    raise AppError(f"send JSON (content-type application/json), not {ctype or 'nothing'}",
                   code="UNSUPPORTED_MEDIA_TYPE", status=415)

MAX_ID = 2**63 - 1  # ids are 64-bit in the database; anything larger names nothing
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]



def on_calendar(value: datetime) -> datetime:
    """A time we can compute with: convertible to UTC, in the years 1970-2199."""
    try:
        utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("the time falls off the calendar once converted to UTC") from exc
    if not 1970 <= utc.year < 2200:
        raise ValueError("the time must fall in the years 1970-2199")
    return value


Moment = Annotated[datetime, AfterValidator(on_calendar)]

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _loc(error: dict[str, object]) -> tuple[object, ...]:
    loc = error.get("loc", ())
    return tuple(loc) if isinstance(loc, list | tuple) else ()


def validation_response(errors: list[dict[str, object]]) -> JSONResponse:
    """Malformed JSON is a 400; well-formed JSON with wrong fields is a 422 naming them."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body("BAD_JSON", "body is not valid JSON"), status_code=400)
    fields = [{"field": ".".join(str(p) for p in _loc(e) if p != "body"), "problem": e["msg"]}
              for e in errors]
    names = ", ".join(str(f["field"]) or "body" for f in fields)
    return JSONResponse(
        error_body("VALIDATION_ERROR", f"invalid or missing fields: {names}", fields=fields),
        status_code=422,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if is_page(request):
            return page_error(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        return JSONResponse(
            error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))  # type: ignore[arg-type]

    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body("DB_UNAVAILABLE", "the database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for kind in (OperationalError, InterfaceError, DatabaseUnavailable):
        app.add_exception_handler(kind, _db_down)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        trace = uuid.uuid4().hex[:12]
        log.error("unhandled error trace=%s", trace, exc_info=exc)
        return JSONResponse(
            error_body("INTERNAL", f"unexpected error; quote trace {trace}"), status_code=500
        )


def current_principal(
    request: Request, svc: ServicesDep, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    if not token and request.method == "GET":
        # A logged-in page may open a JSON view (a summary, the dashboard's figures); reads
        # only, so a cross-site form can never act through the cookie.
        who = session_of(request)
        if who is not None:
            return who
    if not token:
        raise Unauthorized("log in first: POST /api/v1/auth/token", code="LOGIN_REQUIRED")
    who = svc.signer.read(token)
    return svc.users.require(svc.sessions, who, svc.settings.principal_cache_seconds)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: UserRole) -> Callable[[Principal], Principal]:
    def check(who: PrincipalDep) -> Principal:
        if who.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"this needs one of the roles: {allowed}", code="ROLE_FORBIDDEN")
        return who

    return check


StaffDep = Annotated[
    Principal, Depends(require_roles(UserRole.AGENT, UserRole.SUPERVISOR, UserRole.ADMIN))
]


def _error_response(status: int) -> dict[str, Any]:
    return {"description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}


def install_openapi(app: FastAPI) -> None:
    """Every operation documents the errors it can answer, all in the standard envelope:
    400/403/404/422/503 anywhere, 401 behind a login, 409/413/415 where a body is posted."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorOut"] = error_schema
        for prefix in ("HTTPValidationError", "ValidationError"):
            components.pop(prefix, None)
        for methods in schema.get("paths", {}).values():
            for method, op in methods.items():
                statuses = {400, 403, 404, 422, 503}
                if op.get("security"):
                    statuses.add(401)
                if method in ("post", "put", "patch"):
                    statuses |= {409, 413, 415}
                responses = op.setdefault("responses", {})
                for status in statuses:
                    responses.setdefault(str(status), {})
                for status, entry in responses.items():
                    if status[0] == "4" or status == "503":
                        responses[status] = {**_error_response(int(status)),
                                             **{k: v for k, v in entry.items()
                                                if k == "description"}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

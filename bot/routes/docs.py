"""Entry points: `/` (the demo chat, or the console), and API docs that work offline: Swagger UI
at /docs and ReDoc at /redoc from vendored files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

VENDOR = "/static/vendor"


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} · API",
        swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} · API",
        redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png", with_google_fonts=False,
    )


@router.get("/")
def home(request: Request) -> RedirectResponse:
    """A new user lands on the demo family's chat; a real deployment on the console."""
    demo = request.app.state.services.settings.demo
    return RedirectResponse("/chat/demo-family" if demo else "/console/", status_code=307)

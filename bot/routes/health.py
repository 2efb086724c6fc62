"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from bot.http import ServicesDep
from bot.scheduler import scheduler_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    """The database and the state store both answer, and the scheduler (if enabled) ticks.

    `scheduler`: ok; stale (no successful scan for 3 intervals, at least 30 s); stopped (its
    thread is gone); disabled (not run in this process, which never makes this 503). The
    time of the last tick is the gauge `corecircle_scheduler_last_tick_seconds` in /metrics.
    """
    checks = {
        "database": "ok" if svc.database_ok() else "down",
        "state": "ok" if svc.state.ping() else "down",
    }
    runner = scheduler_of(svc)
    if not svc.settings.scheduler_enabled:
        scheduler = "disabled"
    else:
        scheduler = runner.status() if runner is not None else "stopped"
    ok = all(v == "ok" for v in checks.values()) and scheduler in ("ok", "disabled")
    body = {"status": "ok" if ok else "degraded", **checks, "scheduler": scheduler}
    return JSONResponse(body, 200 if ok else 503)


@router.get("/metrics")
def metrics(svc: ServicesDep) -> Response:
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from bot.http import ServicesDep, error_responses
from bot.scheduler import scheduler_of
from bot.services import Services
from storage.errors import Unauthorized

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving HTTP. It checks nothing else, so a process
    manager restarts a worker only when the worker itself is stuck, never for an outage of a
    service it depends on (a restart cannot fix that)."""
    return {"status": "ok"}


def ops_allowed(svc: Services, request: Request) -> bool:
    """Without CORECIRCLE_OPS_TOKEN everyone may read the details; with it, its bearer only."""
    expected = svc.settings.ops_token
    if expected is None:
        return True
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


@router.get("/readyz")
def readyz(svc: ServicesDep, request: Request) -> JSONResponse:
    """Readiness: should a load balancer send this worker messages?

    503 `unready` when it cannot answer them: the database is down, or the scheduler is
    stale (no successful scan for 3 intervals, at least 30 s) or stopped (its thread is gone).
    200 `degraded` when the state store (Redis) is down: every message is still answered and
    kept once by the database, with ordering within the worker only, so taking every worker
    out of rotation while Redis restarts would only turn a degradation into an outage.
    `scheduler: disabled` (not run in this process) never makes it 503. The time of the last
    tick is the gauge `corecircle_scheduler_last_tick_seconds` in /metrics.
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
    ready = checks["database"] == "ok" and scheduler in ("ok", "disabled")
    status = "unready" if not ready else "ok" if checks["state"] == "ok" else "degraded"
    body = {"status": status, **checks, "scheduler": scheduler}
    if not ops_allowed(svc, request):
        body = {"status": status}  # details only for the ops token
    return JSONResponse(body, 200 if ready else 503)


@router.get("/metrics", responses=error_responses(401))
def metrics(svc: ServicesDep, request: Request) -> Response:
    """Prometheus text; with CORECIRCLE_OPS_TOKEN set, only for `Authorization: Bearer <it>`."""
    if not ops_allowed(svc, request):
        raise Unauthorized("metrics need the ops token (Authorization: Bearer ...)",
                           code="OPS_TOKEN_REQUIRED")
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

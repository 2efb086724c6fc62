"""The Rasa action-server protocol over our dialog actions: POST /webhook, GET /actions."""

from __future__ import annotations

import hmac
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from bot.http import ServicesDep, error_body, error_responses
from dialogs.domain import build_domain
from dialogs.runner import drive, shared_executor
from storage import formats as fmt
from storage.errors import BadRequest, Unauthorized
from storage.scripts import ScriptError


def action_token(
    svc: ServicesDep,
    token: Annotated[str | None, Query(description="Rasa's action_endpoint token, when "
                                       "CORECIRCLE_ACTION_TOKEN is set")] = None,
) -> None:
    """Rasa's action_endpoint sends its configured `token` as a query parameter."""
    expected = svc.settings.action_token
    if expected is None:
        return
    if not token or not hmac.compare_digest(expected.encode(), token.encode()):
        raise Unauthorized("this action server needs ?token= (Rasa's action_endpoint token)",
                           code="ACTION_TOKEN_INVALID")


router = APIRouter(tags=["rasa"], dependencies=[Depends(action_token)],
                   responses=error_responses(401))


class EntityIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    entity: str = Field(max_length=128)
    value: Any = None


class LatestMessageIn(BaseModel):
    """The latest user message as our actions read it: text and entities must be what Rasa
    sends (a string and a list of entities), or the call is refused with a 422."""

    model_config = ConfigDict(extra="allow")

    text: str | None = Field(default=None, max_length=8000)
    entities: list[EntityIn] = Field(default_factory=list, max_length=200)


class TrackerIn(BaseModel):
    """The part of Rasa's tracker state our actions read; the rest passes through."""

    model_config = ConfigDict(extra="allow")

    sender_id: str = Field(min_length=1, max_length=128)
    slots: dict[str, Any] = Field(default_factory=dict)
    latest_message: LatestMessageIn = Field(default_factory=LatestMessageIn)
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=2000)
    active_loop: dict[str, Any] = Field(default_factory=dict)


class ActionCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    next_action: str = Field(min_length=1, max_length=128)
    sender_id: str | None = None
    tracker: TrackerIn
    domain: dict[str, Any] | None = None  # ours is used when Rasa sends none
    version: str | None = None


@router.get("/actions")
def list_actions() -> list[dict[str, str]]:
    return [{"name": a.name} for a in shared_executor().list_actions()]


@router.post("/webhook", response_model=None,
             responses=error_responses(400, 404, 413, 415, 422))
def webhook(body: ActionCall, svc: ServicesDep) -> dict[str, Any] | JSONResponse:
    """Run one action as Rasa's action server would; replies carry our rendered text too."""
    call = body.model_dump()
    call["domain"] = body.domain or build_domain()
    if not all(isinstance(e.get("event"), str) for e in body.tracker.events):
        raise BadRequest("every tracker event needs an 'event' name", code="RASA_EVENT_INVALID")
    try:
        result = drive(shared_executor().run(call))
    except ActionNotFoundException:
        # Our envelope, plus Rasa's top-level action_name (Rasa reads it on a 400).
        return JSONResponse(status_code=404, content={
            **error_body("ACTION_UNKNOWN",
                         f"No registered action found for name '{body.next_action}'."),
            "action_name": body.next_action})
    except ActionExecutionRejection as exc:
        return JSONResponse(status_code=400, content={
            **error_body("ACTION_REJECTED", str(exc.message)), "action_name": exc.action_name})
    if result is None:  # pragma: no cover - next_action is required above
        return {"events": [], "responses": []}
    responses = [_with_text(svc, dict(m)) for m in result.responses]
    return {"events": result.events, "responses": responses}


def _with_text(svc: Any, message: dict[str, Any]) -> dict[str, Any]:
    """Rasa shows `text` when present: render our script, with neutral wording for names."""
    script_id = message.get("response")
    if not script_id or message.get("text") or script_id not in svc.scripts.scripts:
        return message
    variables: dict[str, Any] = {
        "bot_name": svc.settings.bot_name, "agent_name": svc.scripts.default("agent_name"),
        "honorific": svc.scripts.default("honorific"),
        "customer_name": "", "speaker_name": "",
    }
    for name, (group, key) in (message.get("labels") or {}).items():
        variables[name] = svc.scripts.label(group, key)
    for name, value in (message.get("moments") or {}).items():
        variables[name] = fmt.moment(datetime.fromisoformat(value)) if value else "-"
    with suppress(ScriptError, ValueError):  # else Rasa uses its own response of that name
        message["text"] = svc.scripts.render(script_id, variables).text
    return message

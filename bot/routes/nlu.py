"""POST /model/parse: the intent engine in Rasa's parse format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bot.http import Moment, ServicesDep
from storage.errors import PayloadTooLarge

router = APIRouter(tags=["nlu"])


class ParseIn(BaseModel):
    text: str
    now: Moment | None = Field(
        default=None, description="ISO-8601, years 1970-2199; default: the server clock")


@router.post("/model/parse")
def parse(body: ParseIn, svc: ServicesDep) -> dict[str, Any]:
    if len(body.text) > svc.settings.max_text_chars:
        raise PayloadTooLarge(
            f"text has {len(body.text)} characters; the limit is {svc.settings.max_text_chars}",
            code="TEXT_TOO_LONG",
        )
    now = body.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return svc.nlu.parse(body.text, now).as_rasa()

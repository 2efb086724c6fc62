"""Consent the holder controls, by chat: granted by his private word (or confirmed there),
used by the member he named, ended by revocation or by its end date; nothing a family member
says grants anything (SQLite + memory and PostgreSQL + Redis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from circles import consent_words
from circles.consent_words import Kind
from storage.enums import ConsentScope
from storage.models import AuditEvent, Circle, Consent, Message
from tests.conftest import Chat

HOLDER, WIFE, SON = "demo-customer", "demo-wife", "demo-son"
ASK = "下次保费什么时候交"


def sessions_of(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.services.sessions  # type: ignore[attr-defined, no-any-return]


def said(client: TestClient) -> list[tuple[str | None, str | None]]:
    """(script id, recipient) of every reply to the latest inbound message in the family."""
    with sessions_of(client)() as s:
        circle = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-family"))
        last = s.scalar(select(Message.id).where(
            Message.circle_id == circle, Message.direction == "in").order_by(
            Message.id.desc()).limit(1))
        rows = s.scalars(select(Message).where(Message.reply_to_id == last).order_by(Message.id))
        return [(r.script_id, r.recipient_id) for r in rows]


def consents(client: TestClient) -> list[Consent]:
    with sessions_of(client)() as s:
        return list(s.scalars(select(Consent).order_by(Consent.id)))


def events(client: TestClient, kind: str) -> list[AuditEvent]:
    with sessions_of(client)() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def today() -> date:
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()


def refused(client: TestClient) -> bool:
    return ("premium.due.not_authorized", None) in said(client)


def answered_privately(client: TestClient, to: str) -> bool:
    return ("premium.due.private", to) in said(client)


def test_wife_refused_holder_grants_she_is_answered_privately_then_revoked(
    client: TestClient, chat: Chat
) -> None:
    chat.say(WIFE, ASK, at_bot=True)
    assert refused(client)
    assert ("privacy.holder_authorize_prompt", HOLDER) in said(client)
    assert consents(client) == []

    out = chat.say(HOLDER, "授权", private=True)
    assert said(client) == [("consent.granted", HOLDER), ("consent.granted_member", WIFE)]
    assert {r["to"] for r in out["replies"]} == {HOLDER, WIFE}
    [row] = consents(client)
    assert (row.member_id, row.scopes, row.source) == (WIFE, "policy", "chat")
    assert row.recorded_by == HOLDER
    assert row.until is not None
    assert row.until.year == today().year + 1
    assert len(events(client, "consent_granted")) == 1

    answer = chat.say(WIFE, ASK, at_bot=True)
    assert said(client) == [("premium.due.group_note", None), ("premium.due.private", WIFE)]
    assert [r["to"] for r in answer["replies"]] == [None, WIFE]
    assert "CC2024000123" not in answer["replies"][0]["text"]

    chat.say(HOLDER, "取消授权", private=True)
    assert said(client) == [("consent.revoked", HOLDER)]
    [row] = consents(client)
    assert row.revoked_at is not None
    assert len(events(client, "consent_revoked")) == 1

    chat.say(WIFE, ASK, at_bot=True)
    assert refused(client)


def test_the_holder_says_whom_and_what_claims_go_to_the_son_only(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "授权给我儿子看理赔", private=True)
    assert said(client)[0] == ("consent.granted", HOLDER)
    [row] = consents(client)
    assert (row.member_id, row.scopes) == (SON, "claim")

    chat.say(SON, "理赔进度怎么样了", at_bot=True)
    assert ("claim.status.private", SON) in said(client)
    chat.say(SON, ASK, at_bot=True)
    assert refused(client), "claims, not the policy data"


def test_a_spoken_grant_names_the_spouse(client: TestClient, chat: Chat) -> None:
    chat.say(HOLDER, "同意我爱人查看保单", private=True)
    [row] = consents(client)
    assert (row.member_id, row.scopes) == (WIFE, "policy")
    chat.say(HOLDER, "不让她看了", private=True)
    assert said(client) == [("consent.revoked", HOLDER)]
    assert consents(client)[0].revoked_at is not None


def test_a_grant_said_in_the_group_takes_effect_only_when_confirmed_privately(
    client: TestClient, chat: Chat
) -> None:
    out = chat.say(HOLDER, "同意我爱人查看保单", at_bot=True)
    assert said(client) == [("consent.confirm_group", None), ("consent.confirm_ask", HOLDER)]
    assert [r["to"] for r in out["replies"]] == [None, HOLDER]
    assert consents(client) == []
    chat.say(WIFE, ASK, at_bot=True)
    assert refused(client)

    chat.say(HOLDER, "确认", private=True)
    assert said(client)[0] == ("consent.granted", HOLDER)
    [row] = consents(client)
    assert row.member_id == WIFE
    chat.say(WIFE, ASK, at_bot=True)
    assert answered_privately(client, WIFE)


def test_the_holder_may_decline(client: TestClient, chat: Chat) -> None:
    chat.say(WIFE, ASK, at_bot=True)
    chat.say(HOLDER, "不用了", private=True)
    assert said(client) == [("consent.declined", HOLDER)]
    assert consents(client) == []
    assert len(events(client, "consent_declined")) == 1


@pytest.mark.parametrize(("text", "kw"), [
    ("授权", {"private": True}),
    ("我老公同意我看保单了，授权一下", {"at_bot": True}),
    ("取消我儿子的授权", {"private": True}),
])
def test_nothing_a_family_member_says_grants_or_revokes(
    client: TestClient, chat: Chat, text: str, kw: dict[str, Any]
) -> None:
    chat.say(HOLDER, "授权给我儿子看理赔", private=True)
    chat.say(WIFE, ASK, at_bot=True)  # an open question to the holder about her, too
    chat.say(WIFE, text, **kw)
    assert said(client) == [("consent.holder_only", WIFE if kw.get("private") else None)]
    assert [(c.member_id, c.revoked_at) for c in consents(client)] == [(SON, None)]
    assert len(events(client, "consent_refused")) == 1


def test_a_bare_yes_is_consent_only_when_it_answers_the_bots_question(
    client: TestClient, chat: Chat
) -> None:
    chat.say(WIFE, ASK, at_bot=True)
    chat.say(HOLDER, "你好", private=True)  # the bot's last word to him is no longer the question
    chat.say(HOLDER, "好的", private=True)
    assert consents(client) == []
    chat.say(HOLDER, "授权", private=True)  # the explicit word still answers the open question
    assert [c.member_id for c in consents(client)] == [WIFE]


def test_a_consent_past_its_end_date_no_longer_authorizes(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "同意我爱人查看保单", private=True)
    chat.say(WIFE, ASK, at_bot=True)
    assert answered_privately(client, WIFE)
    with sessions_of(client)() as s, s.begin():
        s.execute(update(Consent).values(until=today() - timedelta(days=1)))
    chat.say(WIFE, ASK, at_bot=True)
    assert refused(client)
    chat.say(HOLDER, "取消授权", private=True)  # nothing active is left to revoke
    assert said(client) == [("consent.nothing_to_revoke", HOLDER)]


def test_consent_words_are_read_by_rules() -> None:
    grant = consent_words.read("@小助手 同意我爱人查看保单")
    assert grant is not None
    assert (grant.kind, grant.relations, grant.scopes) == (
        Kind.GRANT, ("spouse",), (ConsentScope.POLICY,))
    revoke = consent_words.read("不让她看了")
    assert revoke is not None
    assert (revoke.kind, revoke.pronoun) == (Kind.REVOKE, True)
    claim = consent_words.read("授权给我儿子看理赔")
    assert claim is not None
    assert (claim.relations, claim.scopes) == (("child",), (ConsentScope.CLAIM,))
    assert consent_words.read("同意！") == consent_words.ConsentWords(Kind.CONFIRM)
    assert consent_words.read("不用了") == consent_words.ConsentWords(Kind.DECLINE)
    assert consent_words.read(ASK) is None
    bare = consent_words.read("我要取消一下授权吧")
    other = consent_words.read("取消自动扣款授权怎么办")
    assert bare is not None
    assert other is not None
    assert (bare.bare, other.bare, other.names_someone) == (True, False, False)
    assert consent_words.read("今晚吃饺子") is None


@pytest.mark.parametrize("sender", [HOLDER, WIFE])
def test_other_matters_that_mention_authorization_are_not_consent(
    client: TestClient, chat: Chat, sender: str
) -> None:
    chat.say(HOLDER, "同意我爱人查看保单", private=True)
    chat.say(sender, "取消自动扣款授权怎么办", at_bot=True)
    chat.say(sender, "扣款授权书怎么签", at_bot=True)
    assert not [s for s, _ in said(client) if s and s.startswith("consent.")]
    assert [(c.member_id, c.revoked_at) for c in consents(client)] == [(WIFE, None)]
    assert events(client, "consent_refused") == []


def test_the_holder_answers_the_question_with_scope_words(client: TestClient, chat: Chat) -> None:
    chat.say(WIFE, ASK, at_bot=True)
    chat.say(HOLDER, "授权查看保单", private=True)
    assert said(client)[0] == ("consent.granted", HOLDER)
    assert [c.member_id for c in consents(client)] == [WIFE]

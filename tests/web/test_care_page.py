"""The agent's proactive-care approvals on the console (/console/care): an agent-first circle's
drafts from the daily run on a fixed clock; approve, edit (compliance refusal, masking), skip;
CSRF; other teams and family members see nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from circles import care_store
from circles.care import CareSettings
from storage.db import transaction
from storage.enums import FollowUpStatus
from storage.models import CareDraft, FollowUp, Member, Policy
from storage.pii import mask
from tests.conftest import login
from tests.escalation.conftest import SH, seed_other_team
from tests.web.test_pages import csrf_of, db, web_login

DAY = date(2027, 4, 6)  # a Tuesday; no festival
CARE = CareSettings()


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=SH)


@pytest.fixture
def drafts(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The demo family, routed agent first: three drafts on DAY (premium in 7 and 30 days,
    the wife's birthday), planned by the daily run at 06:00; the page's clock is 09:45."""
    with transaction(db(client)) as s:
        seed_other_team(s)
        s.execute(update(Policy).where(Policy.policy_no == "CC2024000123")
                  .values(next_due_date=DAY + timedelta(days=7)))
        s.execute(update(Policy).where(Policy.policy_no == "CC2025000456")
                  .values(next_due_date=DAY + timedelta(days=30)))
        s.execute(update(Member).where(Member.id == "demo-wife")
                  .values(birth_date=date(1982, 4, 6)))
    r = client.post("/api/v1/care/circles/demo-family/route", json={"route": "agent_first"},
                    headers=login(client, "demo-agent"))
    assert r.status_code == 200, r.text
    svc: Any = client.app.state.services  # type: ignore[attr-defined]
    report = care_store.run(svc.sessions, svc.scripts, CARE, now=at(6, 0), bot_name="小助手")
    assert report is not None
    monkeypatch.setattr("bot.routes.console._now", lambda: at(9, 45))
    with db(client)() as s:
        found = {d.kind: d.id for d in s.scalars(select(CareDraft))}
    assert set(found) == {"premium_7d", "premium_30d", "birthday"}, found
    return found


def _draft(client: TestClient, draft_id: int) -> tuple[CareDraft, FollowUp]:
    with db(client)() as s:
        d = s.get(CareDraft, draft_id)
        assert d is not None
        row = s.get(FollowUp, d.followup_id)
        assert row is not None
        return d, row


def test_the_agent_approves_edits_and_skips_on_the_page(
    client: TestClient, drafts: dict[str, int]
) -> None:
    token = web_login(client, "demo-agent")
    queue = client.get("/console/")
    assert 'href="/console/care"' in queue.text
    assert '<span class="badge">3</span>' in queue.text
    page = client.get("/console/care")
    assert page.status_code == 200
    for draft_id in drafts.values():
        assert f'id="draft-{draft_id}"' in page.text
    assert "交费提醒（7天）" in page.text
    assert "生日祝福" in page.text
    assert "私信给 王**" in page.text  # the holder, masked
    assert "全群" in page.text  # the birthday goes to the group
    assert "剩 1小时45分 后自动发送" in page.text  # 09:45 now, auto-send at 11:30

    # approve: goes now
    r = client.post(f"/console/care/{drafts['premium_7d']}/approve", data={"csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/care?done=care_approve"
    d, row = _draft(client, drafts["premium_7d"])
    assert (d.status, d.decided_by) == ("approved", "demo-agent")
    assert row.due_at == at(9, 45)
    assert row.status == FollowUpStatus.PENDING
    again = client.post(f"/console/care/{drafts['premium_7d']}/approve", data={"csrf": token})
    assert again.status_code == 409
    assert "这条关怀消息已经处理过了" in again.text

    # edit: a promise is refused in Chinese, the words kept; then sent masked
    bad = client.post(f"/console/care/{drafts['premium_30d']}/edit",
                      data={"csrf": token, "text": "保证收益，稳赚"})
    assert bad.status_code == 400
    assert "不允许的承诺" in bad.text
    assert "保证收益，稳赚</textarea>" in bad.text
    assert _draft(client, drafts["premium_30d"])[0].status == "pending"
    empty = client.post(f"/console/care/{drafts['premium_30d']}/edit",
                        data={"csrf": token, "text": "  "})
    assert empty.status_code == 400
    assert "请填写要发送的内容" in empty.text
    words = "王先生，下月记得交保费，有事打我电话13812345678。李娜"
    r = client.post(f"/console/care/{drafts['premium_30d']}/edit",
                    data={"csrf": token, "text": words}, follow_redirects=False)
    assert r.status_code == 303
    d, row = _draft(client, drafts["premium_30d"])
    assert d.status == "edited"
    assert row.text == d.text == mask(words) != words
    assert "13812345678" not in row.text
    assert row.due_at == at(9, 45)

    # skip: never sent
    r = client.post(f"/console/care/{drafts['birthday']}/skip", data={"csrf": token})
    assert r.status_code == 200  # after the redirect
    assert "这条关怀消息不会发出" in r.text
    d, row = _draft(client, drafts["birthday"])
    assert d.status == "skipped"
    assert row.status == FollowUpStatus.CANCELLED
    assert "没有等待确认的关怀消息" in r.text
    assert '<span class="badge">' not in client.get("/console/").text


def test_csrf_and_strangers_are_refused(client: TestClient, drafts: dict[str, int]) -> None:
    draft_id = drafts["premium_7d"]
    # no session: the login form
    r = client.get("/console/care", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login")
    # a family member has no console login
    assert client.post("/console/login", data={"username": "demo-wife",
                                                "password": "demo"}).status_code == 401

    web_login(client, "demo-agent")
    r = client.post(f"/console/care/{draft_id}/approve", data={})
    assert r.status_code == 403
    assert "页面已过期" in r.text
    r = client.post(f"/console/care/{draft_id}/approve", data={"csrf": "forged"})
    assert r.status_code == 403
    assert _draft(client, draft_id)[0].status == "pending"

    # the team's supervisor sees them, without the buttons
    client.cookies.clear()
    web_login(client, "demo-supervisor")
    page = client.get("/console/care")
    assert f'id="draft-{draft_id}"' in page.text
    assert f'action="/console/care/{draft_id}/approve"' not in page.text
    assert "只有这个群的顾问可以确认" in page.text

    # another team's agent: nothing listed, and no deciding ours
    client.cookies.clear()
    token = web_login(client, "agent-b")
    page = client.get("/console/care")
    assert page.status_code == 200
    assert "没有等待确认的关怀消息" in page.text
    assert "draft-" not in page.text
    assert '<span class="badge">' not in client.get("/console/").text
    for action in ("approve", "skip"):
        r = client.post(f"/console/care/{draft_id}/{action}", data={"csrf": token})
        assert r.status_code == 403, action
        assert "只有这个群的顾问可以确认这条关怀消息" in r.text
    r = client.post(f"/console/care/{draft_id}/edit", data={"csrf": token, "text": "你好"})
    assert r.status_code == 403
    assert client.post(f"/console/care/{draft_id}/send", data={"csrf": token}).status_code == 404
    assert client.post("/console/care/99999/approve",
                       data={"csrf": csrf_of(page.text)}).status_code == 404
    assert _draft(client, draft_id)[0].status == "pending"

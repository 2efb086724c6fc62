"""The daily care run over the demo book, on a fake clock: into the follow-up outbox once (two
schedulers, a second tick), quiet hours, the weekly cap, opt-out and its undo through the
webhook, agent-first drafts (approve, edit, skip, auto-send), the API and the CLI."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.cli import main
from circles import care_store
from circles.care import CareSettings
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import FollowUpKind, FollowUpStatus
from storage.models import CareDraft, CareOptOut, CareRun, Circle, FollowUp, Message, Policy
from tests.conftest import Chat, login
from tests.escalation.conftest import SH, sessions_of

DAY = date(2027, 4, 6)  # a Tuesday; no festival, nobody's birthday
CARE = CareSettings()


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH)


@pytest.fixture
def book(app: TestClient) -> TestClient:
    """The demo family's policies: one due in 7 days, one in 30 days (from DAY)."""
    with transaction(sessions_of(app)) as s:
        s.execute(update(Policy).where(Policy.policy_no == "CC2024000123")
                  .values(next_due_date=DAY + timedelta(days=7)))
        s.execute(update(Policy).where(Policy.policy_no == "CC2025000456")
                  .values(next_due_date=DAY + timedelta(days=30)))
    return app


def _svc(app: TestClient) -> Any:
    return app.app.state.services  # type: ignore[attr-defined]


def _scan(app: TestClient, now: datetime, owner: str = "s1") -> None:
    svc = _svc(app)
    tick(svc.sessions, svc.scripts, EscalationPolicy(), now=now, owner=owner, care=CARE)


def _run(app: TestClient, now: datetime) -> care_store.RunReport | None:
    svc = _svc(app)
    return care_store.run(svc.sessions, svc.scripts, CARE, now=now, bot_name="小助手")


def _sent(app: TestClient, chat_id: str = "demo-family") -> list[Message]:
    with sessions_of(app)() as s:
        circle_id = s.scalar(select(Circle.id).where(Circle.chat_id == chat_id))
        return list(s.scalars(select(Message).where(
            Message.circle_id == circle_id, Message.direction == "out",
            Message.sender_name.is_not(None)).order_by(Message.id)))


def _care_rows(app: TestClient) -> list[FollowUp]:
    with sessions_of(app)() as s:
        return list(s.scalars(select(FollowUp).where(FollowUp.dedupe_key.like("care%"))
                              .order_by(FollowUp.id)))


def _care_texts(app: TestClient, chat_id: str = "demo-family") -> list[str]:
    return [m.text for m in _sent(app, chat_id) if "服务助手" in m.text]


def test_the_daily_run_sends_each_reminder_once_at_the_send_time(book: TestClient) -> None:
    _scan(book, at(5, 59))
    assert _care_rows(book) == [], "the day is planned from 06:00"
    _scan(book, at(6, 0))
    _scan(book, at(6, 0, ), owner="s2")  # a second scheduler, the same minute
    rows = _care_rows(book)
    assert sorted(r.dedupe_key.split(":")[1] for r in rows) == ["premium_30d", "premium_7d"]
    assert {r.due_at for r in rows} == {at(9, 30)}
    assert {r.recipient_id for r in rows} == {"demo-customer"}
    _scan(book, at(9, 29))
    assert _care_texts(book) == []
    _scan(book, at(9, 30))
    _scan(book, at(9, 30, ), owner="s2")
    _scan(book, at(10, 0))
    texts = _care_texts(book)
    assert len(texts) == 2
    assert any("还有7天" in t and "8,650.00元" in t for t in texts)
    assert {m.recipient_id for m in _sent(book) if "服务助手" in m.text} == {"demo-customer"}
    with sessions_of(book)() as s:
        runs = list(s.scalars(select(CareRun)))
    assert [(r.day, r.planned, r.created) for r in runs] == [(DAY, 2, 2)]


def test_two_schedulers_at_once_create_each_row_once(book: TestClient) -> None:
    reports: list[Any] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            reports.append(_run(book, at(6, 0)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_care_rows(book)) == 2
    assert sum(r.created for r in reports if r is not None) == 2
    assert _run(book, at(7, 0)) is None, "the day is done"


def test_a_run_late_at_night_waits_for_the_morning(book: TestClient) -> None:
    _run(book, at(22, 30))
    assert {r.due_at for r in _care_rows(book)} == {at(9, 30, DAY + timedelta(days=1))}
    _run(book, at(23, 0))
    assert len(_care_rows(book)) == 2


def test_the_weekly_cap_counts_what_went_earlier_in_the_week(book: TestClient) -> None:
    with transaction(sessions_of(book)) as s:
        circle_id = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-family"))
        assert circle_id is not None
        for n in range(2):  # Monday: two earlier messages
            s.add(FollowUp(dedupe_key=f"care:birthday:x{n}:2027-04-05", circle_id=circle_id,
                           kind=FollowUpKind.MESSAGE, text="祝", due_at=at(9, 30, date(2027, 4, 5)),
                           status=FollowUpStatus.SENT, created_by="care"))
    svc = _svc(book)
    with svc.sessions() as s:
        items = list(care_store.plan_day(s, svc.scripts, CARE, DAY, bot_name="小助手"))
    assert [i.kind for i in items] == ["premium_7d"], "one left this week, the more urgent one"
    with svc.sessions() as s:  # next Monday (the 7-day one is due tomorrow)
        items = list(care_store.plan_day(s, svc.scripts, CARE, date(2027, 4, 12),
                                         bot_name="小助手"))
    assert [i.kind for i in items] == ["premium_1d"]  # a new week: the cap starts again


def test_opt_out_through_the_webhook_sticks_and_is_undone(book: TestClient) -> None:
    chat = Chat(book)
    said = chat.say("demo-customer", "别再提醒我交费了", at_bot=True)
    assert "已经为您关闭交费提醒" in said["replies"][0]["text"]
    assert "宽限期" in said["replies"][0]["text"]
    again = chat.say("demo-customer", "别再提醒我交费了", at_bot=True)
    assert "已经为您关闭交费提醒" in again["replies"][0]["text"]
    with sessions_of(book)() as s:
        assert len(list(s.scalars(select(CareOptOut)))) == 1
    _run(book, at(6, 0))
    assert _care_rows(book) == []

    said = chat.say("demo-customer", "恢复提醒", at_bot=True)
    assert "已经为您恢复所有关怀提醒" in said["replies"][0]["text"]
    with transaction(sessions_of(book)) as s:
        s.execute(update(Policy).where(Policy.policy_no == "CC2024000123")
                  .values(next_due_date=DAY + timedelta(days=8)))
    _run(book, at(6, 0, DAY + timedelta(days=1)))
    assert [r.dedupe_key.split(":")[1] for r in _care_rows(book)] == ["premium_7d"]


def test_a_family_member_cannot_switch_off_the_holders_reminders(book: TestClient) -> None:
    chat = Chat(book)
    said = chat.say("demo-wife", "别再提醒我交费了", at_bot=True)
    assert "需要由本人来设置" in said["replies"][0]["text"]
    said = chat.say("demo-wife", "生日就别发了", at_bot=True)
    assert "已经为您关闭生日祝福" in said["replies"][0]["text"]
    with sessions_of(book)() as s:
        assert list(s.scalars(select(CareOptOut.category))) == ["birthday"]
    _run(book, at(6, 0))
    assert len(_care_rows(book)) == 2  # the premium reminders still go


def _agent_first(app: TestClient) -> None:
    r = app.post("/api/v1/care/circles/demo-family/route", json={"route": "agent_first"},
                 headers=login(app, "demo-agent"))
    assert r.status_code == 200, r.text
    r = app.post("/api/v1/care/circles/demo-family/route", json={"route": "sometimes"},
                 headers=login(app, "demo-agent"))
    assert r.status_code == 422
    r = app.post("/api/v1/care/circles/demo-family/route", json={"route": "direct"},
                 headers=login(app, "agent-b"))
    assert r.status_code == 404


def _drafts(app: TestClient, who: str = "demo-agent") -> list[dict[str, Any]]:
    r = app.get("/api/v1/care/drafts", headers=login(app, who))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_agent_first_drafts_approve_skip_and_the_auto_send(
    book: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _agent_first(book)
    clock = [at(9, 40)]
    monkeypatch.setattr("bot.routes.care._now", lambda: clock[0])
    _scan(book, at(6, 0))
    drafts = _drafts(book)
    assert len(drafts) == 2
    assert {d["status"] for d in drafts} == {"pending"}
    with sessions_of(book)() as s:
        assert {d.auto_send_at for d in s.scalars(select(CareDraft))} == {at(11, 30)}
    _scan(book, at(9, 30))
    notices = [m.text for m in _sent(book, "demo-support") if "待确认的关怀消息" in m.text]
    assert len(notices) == 2
    assert "11:30" in notices[0]
    assert _care_texts(book) == [], "nothing reaches the family before the agent's turn"
    d7 = next(d for d in drafts if "还有7天" in d["text"])
    d30 = next(d for d in drafts if "还有30天" in d["text"])
    # only the circle's agent decides
    for who in ("demo-supervisor", "agent-b"):
        r = book.post(f"/api/v1/care/drafts/{d7['id']}/approve", headers=login(book, who))
        assert r.status_code == 403, who
    assert book.post("/api/v1/care/drafts/99999/approve",
                     headers=login(book, "demo-agent")).status_code == 404
    r = book.post(f"/api/v1/care/drafts/{d7['id']}/approve", headers=login(book, "demo-agent"))
    assert r.status_code == 200
    assert r.json()["status"] == "approved"
    r = book.post(f"/api/v1/care/drafts/{d7['id']}/skip", headers=login(book, "demo-agent"))
    assert r.status_code == 409
    _scan(book, at(9, 41))
    texts = _care_texts(book)
    assert len(texts) == 1
    assert "还有7天" in texts[0]
    # the 30-day one, untouched, goes as is at 11:30
    _scan(book, at(11, 29))
    assert len(_care_texts(book)) == 1
    _scan(book, at(11, 30))
    assert len(_care_texts(book)) == 2
    r = book.post(f"/api/v1/care/drafts/{d30['id']}/skip", headers=login(book, "demo-agent"))
    assert r.status_code == 409  # already sent


def test_agent_first_edit_and_skip(book: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    _agent_first(book)
    monkeypatch.setattr("bot.routes.care._now", lambda: at(9, 45))
    _scan(book, at(6, 0))
    drafts = _drafts(book)
    d7 = next(d for d in drafts if "还有7天" in d["text"])
    d30 = next(d for d in drafts if "还有30天" in d["text"])
    headers = login(book, "demo-agent")
    r = book.post(f"/api/v1/care/drafts/{d7['id']}/edit", json={"text": "保证收益，稳赚"},
                  headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "CARE_DRAFT_FORBIDDEN"
    assert book.post(f"/api/v1/care/drafts/{d7['id']}/edit", json={"text": ""},
                     headers=headers).status_code == 422
    r = book.post(f"/api/v1/care/drafts/{d7['id']}/edit",
                  json={"text": "王先生，下周二记得交保费哦，有事随时找我。李娜"}, headers=headers)
    assert r.status_code == 200
    assert r.json()["status"] == "edited"
    r = book.post(f"/api/v1/care/drafts/{d30['id']}/skip", headers=headers)
    assert r.json()["status"] == "skipped"
    _scan(book, at(9, 46))
    _scan(book, at(12, 0))
    texts = [m.text for m in _sent(book) if m.recipient_id == "demo-customer"]
    assert texts == ["王先生，下周二记得交保费哦，有事随时找我。李娜"]
    with sessions_of(book)() as s:
        statuses = {d.status for d in s.scalars(select(CareDraft))}
    assert statuses == {"edited", "skipped"}


def test_the_plan_api_for_supervisors_of_the_team_and_admins(book: TestClient) -> None:
    url = "/api/v1/care/plan"
    r = book.get(url, params={"date": DAY.isoformat()}, headers=login(book, "demo-supervisor"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2
    item = body["items"][0]
    assert set(item) == {"kind", "circle", "recipient", "route", "send_at", "script_id", "text"}
    assert item["circle"] == "demo-family"
    assert item["recipient"] == "demo-customer"
    assert item["route"] == "direct"
    assert item["send_at"] == at(9, 30).isoformat()
    other = book.get(url, params={"date": DAY.isoformat()}, headers=login(book, "sup-b"))
    assert other.json()["count"] == 0, "another team's families are not theirs to see"
    admin = book.get(url, params={"date": DAY.isoformat()}, headers=login(book, "admin"))
    assert admin.json()["count"] == 2
    agent = book.get(url, params={"date": DAY.isoformat()}, headers=login(book, "demo-agent"))
    assert agent.status_code == 403
    assert book.get(url, params={"date": DAY.isoformat()}).status_code == 401
    for bad in ("2027-13-01", "tomorrow", "2027/04/06"):
        r = book.get(url, params={"date": bad}, headers=login(book, "demo-supervisor"))
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "CARE_DATE_INVALID"
    r = book.get(url, headers=login(book, "demo-supervisor"))
    assert r.status_code == 422
    assert _care_rows(book) == [], "a plan sends nothing"


def test_the_cli_prints_the_plan_masked_one_object_a_line(
    book: TestClient, database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with transaction(sessions_of(book)) as s:
        s.execute(update(Policy).where(Policy.policy_no == "CC2024000123")
                  .values(product="康宁重疾（联系电话13812345678）"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CORECIRCLE_DATA_DIR", str(tmp_path / "data"))
    main(["care", "plan", "--date", DAY.isoformat(), "--jsonl"])
    lines = capsys.readouterr().out.strip().splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == 2
    for item in items:
        assert list(item) == ["kind", "circle", "recipient", "route", "send_at", "script_id",
                              "text"]
    seven = next(i for i in items if i["kind"] == "premium_7d")
    assert "138****5678" in seven["text"]
    assert "13812345678" not in seven["text"]
    main(["care", "plan", "--date", DAY.isoformat()])
    out = capsys.readouterr().out
    assert "2 message(s) planned for 2027-04-06; nothing sent" in out
    with pytest.raises(SystemExit) as exc:
        main(["care", "plan", "--date", "2027-02-30"])
    assert exc.value.code == 2
    assert _care_rows(book) == []


def test_an_approval_in_quiet_hours_waits_for_the_morning(
    book: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _agent_first(book)
    _scan(book, at(6, 0))
    monkeypatch.setattr("bot.routes.care._now", lambda: at(7, 0))
    draft = _drafts(book)[0]
    r = book.post(f"/api/v1/care/drafts/{draft['id']}/approve", headers=login(book, "demo-agent"))
    assert r.status_code == 200
    _scan(book, at(7, 1))
    assert _care_texts(book) == []
    _scan(book, at(9, 30))
    assert len(_care_texts(book)) == 1


def test_a_run_killed_half_way_is_finished_by_the_next_tick(book: TestClient) -> None:
    svc = _svc(book)
    with svc.sessions() as s:
        items = list(care_store.plan_day(s, svc.scripts, CARE, DAY, bot_name="小助手",
                                         not_before=at(6, 0)))
    with transaction(svc.sessions) as s:  # the first chunk committed, then the process died
        care_store.enqueue(s, svc.scripts, CARE, items[0], now=at(6, 0))
    report = _run(book, at(6, 1))
    assert report is not None
    assert (report.planned, report.created) == (2, 1)
    assert len(_care_rows(book)) == 2
    _scan(book, at(9, 30))
    assert len(_care_texts(book)) == 2


def test_opt_out_in_a_private_chat_without_addressing_the_bot(book: TestClient) -> None:
    said = Chat(book).say("demo-customer", "节日祝福就不用发了", private=True)
    assert "已经为您关闭节日祝福" in said["replies"][0]["text"]
    with sessions_of(book)() as s:
        assert list(s.scalars(select(CareOptOut.category))) == ["holiday"]
    said = Chat(book).say("demo-wife", "生日祝福就不用发了")  # chatter in the group: not for us
    assert said["replies"] == []
    with sessions_of(book)() as s:
        assert list(s.scalars(select(CareOptOut.category))) == ["holiday"]


def test_an_opt_out_after_the_run_stops_the_days_pending_reminders(book: TestClient) -> None:
    _run(book, at(6, 0))
    assert len(_care_rows(book)) == 2
    said = Chat(book).say("demo-customer", "别再提醒我交费了", at_bot=True)
    assert "已经为您关闭交费提醒" in said["replies"][0]["text"]
    _scan(book, at(9, 30))
    assert _care_texts(book) == []
    assert {r.status for r in _care_rows(book)} == {FollowUpStatus.CANCELLED}

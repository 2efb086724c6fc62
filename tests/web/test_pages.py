"""The console, dashboard, chat page and docs as a browser without JavaScript sees them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.auth import Principal, TokenSigner, hash_password
from bot.web.pages import COOKIE
from storage.enums import Delivery, Direction, FollowUpStatus, TicketStatus, UserRole
from storage.models import FollowUp, Member, Message, Ticket, User
from tests.conftest import Chat, login

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONSOLE_PAGES = ["/console/", "/console/queue", "/console/tickets/{tid}",
                 "/console/circles/demo-family", "/console/dashboard"]


def web_login(client: TestClient, username: str, password: str = "demo") -> str:
    """Log in through the form; returns the page's CSRF token."""
    r = client.post("/console/login", data={"username": username, "password": password},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def open_ticket(chat: Chat, text: str = "转人工") -> int:
    out = chat.say("demo-customer", text, at_bot=True)
    assert out["ticket_id"], out
    return int(out["ticket_id"])


def db(client: TestClient) -> Any:
    return client.app.state.services.sessions  # type: ignore[attr-defined]


def add_other_team(client: TestClient) -> None:
    """An agent with another supervisor: a stranger to the demo family."""
    with db(client)() as s, s.begin():
        s.add(Member(id="other-sup", display_name="赵敏"))
        s.flush()
        s.add(Member(id="other-agent", display_name="周强", supervisor_id="other-sup"))
        s.flush()
        s.add(User(username="other-agent", password_hash=hash_password("pw-other"),
                   role=UserRole.AGENT, member_id="other-agent"))
        s.add(User(username="other-sup", password_hash=hash_password("pw-other"),
                   role=UserRole.SUPERVISOR, member_id="other-sup"))


def test_login_sets_a_strict_cookie_and_logout_needs_the_form_token(client: TestClient) -> None:
    bad = client.post("/console/login", data={"username": "demo-agent", "password": "nope"})
    assert bad.status_code == 401
    assert "用户名或密码不对" in bad.text
    assert COOKIE not in client.cookies

    r = client.post("/console/login", data={"username": "demo-agent", "password": "demo",
                                             "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/"  # never off-site
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    token = csrf_of(client.get("/console/").text)
    old = client.cookies.get(COOKIE)
    assert client.get("/api/v1/tickets").status_code == 200  # reads accept the session

    assert client.post("/console/logout", follow_redirects=False).status_code == 403
    out = client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert COOKIE not in client.cookies
    again = client.get("/console/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/login")
    # the logged-out token is refused even if a copy of the cookie comes back
    client.cookies.set(COOKIE, old)
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/tickets").status_code == 401


def test_every_page_turns_away_strangers_family_and_other_teams(
    client: TestClient, chat: Chat, tmp_path: Path
) -> None:
    tid = open_ticket(chat)
    add_other_team(client)
    pages = [p.format(tid=tid) for p in CONSOLE_PAGES]

    # a stranger, and a cookie signed with another key: the login form, nothing else
    forged = TokenSigner("not-our-key-but-long-enough-for-hs256-0123", 60).issue(
        Principal("demo-supervisor", UserRole.SUPERVISOR, "demo-supervisor"))
    for cookie in (None, forged):
        client.cookies.clear()
        if cookie:
            client.cookies.set(COOKIE, cookie)
        for page in pages:
            r = client.get(page, follow_redirects=False)
            assert r.status_code == 303, page
            assert r.headers["location"].startswith("/console/login?next=")
            assert "王建国" not in r.text

    # a family member has no console login
    client.cookies.clear()
    r = client.post("/console/login", data={"username": "demo-wife", "password": "demo"})
    assert r.status_code == 401

    # an agent of another team: an empty queue, and no ticket, circle or dashboard
    web_login(client, "other-agent", "pw-other")
    assert f"/console/tickets/{tid}" not in client.get("/console/").text
    for page in pages[2:]:
        r = client.get(page)
        assert r.status_code == 403, page
        assert "王建国" not in r.text
        assert "无法打开" in r.text  # a page, not JSON
    # ... nor can they act on it
    token = csrf_of(client.get("/console/").text)
    r = client.post(f"/console/tickets/{tid}/reply", data={"text": "hi", "csrf": token})
    assert r.status_code == 403

    # another team's supervisor sees their (empty) dashboard, not the demo team's ticket
    web_login(client, "other-sup", "pw-other")
    assert client.get(f"/console/tickets/{tid}").status_code == 403
    assert client.get("/api/v1/dashboard").json()["open_total"] == 0

    # an agent of the right team is not a supervisor
    web_login(client, "demo-agent")
    assert client.get("/console/dashboard").status_code == 403
    assert client.get(f"/console/tickets/{tid}").status_code == 200


def test_queue_and_ticket_page_work_a_case_end_to_end(client: TestClient, chat: Chat) -> None:
    tid = open_ticket(chat, "我要投诉，理赔拖了一个月还没消息")
    token = web_login(client, "demo-agent")

    queue = client.get("/console/").text
    assert f"/console/tickets/{tid}" in queue
    assert "王建国家庭服务群" in queue
    assert "data-deadline" in queue  # the SLA countdown
    api = login(client, "demo-agent")
    priority = client.get(f"/api/v1/tickets/{tid}", headers=api).json()["priority"]
    other = "low" if priority != "low" else "urgent"
    assert f"/console/tickets/{tid}" in client.get(f"/console/queue?priority={priority}").text
    assert f"/console/tickets/{tid}" not in client.get(f"/console/queue?priority={other}").text
    assert f"/console/tickets/{tid}" not in client.get("/console/queue?status=resolved").text

    page = client.get(f"/console/tickets/{tid}").text
    assert "理赔拖了一个月" in page  # the transcript
    assert "康宁终身重大疾病保险" in page
    assert "下次缴费" in page
    assert "LP2026001234" in page  # the claim
    assert "刘芳" in page
    assert "未授权" in page

    def act(path: str, **form: str) -> str:
        r = client.post(f"/console/tickets/{tid}/{path}", data={"csrf": token, **form},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        return r.headers["location"]

    assert "done=reply" in act("reply", text="王先生您好，我是李娜，马上帮您查")
    assert "done=private" in act("reply", text="单独跟您说一下进度", to="demo-customer")
    assert "error=RECIPIENT_UNKNOWN" in act("reply", text="x", to="someone-else")
    assert "done=note" in act("notes", text="客户情绪较急，优先处理")
    # the picker sends Shanghai wall time without a zone
    local_due = (datetime.now(UTC) + timedelta(days=1)).astimezone(SHANGHAI)
    assert "done=promise" in act("promise", due=local_due.strftime("%Y-%m-%dT%H:%M"),
                                 text="核实理赔进度后回复")
    past = (datetime.now(UTC) - timedelta(hours=2)).astimezone(SHANGHAI).strftime(
        "%Y-%m-%dT%H:%M")
    assert "error=FOLLOWUP_DUE_PAST" in act("promise", due=past, text="太晚了")

    shown = client.get(f"/console/tickets/{tid}?done=promise").text
    assert "承诺已记下" in shown
    assert "核实理赔进度后回复" in shown
    assert "客户情绪较急" in shown

    sent = client.get("/api/v1/circles/demo-family/messages", headers=api).json()
    mine = [m for m in sent if m["sender_id"] == "demo-agent"]
    assert {m["text"] for m in mine} == {"王先生您好，我是李娜，马上帮您查", "单独跟您说一下进度"}
    assert {m["to"] for m in mine} == {None, "demo-customer"}
    promises = client.get(f"/api/v1/followups?ticket_id={tid}", headers=api).json()
    assert [p["text"] for p in promises] == ["核实理赔进度后回复"]
    due_at = datetime.fromisoformat(promises[0]["due_at"])
    assert abs(due_at - local_due.replace(second=0, microsecond=0)) < timedelta(seconds=1)

    assert "done=resolve" in act("resolve", note="已解释理赔进度")
    assert client.get(f"/api/v1/tickets/{tid}", headers=api).json()["status"] == "resolved"
    assert "error=TICKET_RESOLVED" in act("reply", text="还有吗")
    assert "done=reopen" in act("reopen")
    assert "done=claim" in act("claim")
    detail = client.get(f"/api/v1/tickets/{tid}", headers=api).json()
    assert detail["status"] == "claimed"
    assert detail["assignee_id"] == "demo-agent"


def test_page_posts_without_the_form_token_change_nothing(client: TestClient, chat: Chat) -> None:
    tid = open_ticket(chat)
    web_login(client, "demo-agent")
    for path, form in [("reply", {"text": "hi"}), ("notes", {"text": "n"}), ("claim", {}),
                       ("resolve", {}), ("promise", {"due": "2099-01-01T10:00", "text": "p"})]:
        r = client.post(f"/console/tickets/{tid}/{path}", data={**form, "csrf": "forged"})
        assert r.status_code == 403, path
    with db(client)() as s:
        ticket = s.get(Ticket, tid)
        assert ticket.status == TicketStatus.OPEN
        assert s.scalar(select(Message).where(Message.sender_id == "demo-agent")) is None
        assert s.scalar(select(FollowUp)) is None


def test_customer_text_is_escaped_and_invisible_controls_are_dropped(
    client: TestClient, chat: Chat
) -> None:
    hostile = "转人工 <script>alert(1)</script> 退款\u202egnp.exe\u200b"
    tid = open_ticket(chat, hostile)
    web_login(client, "demo-agent")
    for page in (f"/console/tickets/{tid}", "/console/circles/demo-family", "/console/"):
        html = client.get(page).text
        assert "<script>alert(1)" not in html
        assert "\u202e" not in html
        assert "\u200b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/console/tickets/{tid}").text
    chat_html = client.get("/chat/demo-family").text
    assert "<script>alert(1)" not in chat_html
    assert "\u202e" not in chat_html


def test_circle_page_explains_answers_and_lets_the_agent_release_or_cancel_held_ones(
    client: TestClient, chat: Chat
) -> None:
    chat.say("demo-customer", "我的保单现金价值是多少")  # unaddressed: held for the agent
    chat.say("demo-customer", "下次保费什么时候交", at_bot=True)
    token = web_login(client, "demo-agent")
    page = client.get("/console/circles/demo-family").text
    assert "等待人工的机器人回复" in page
    assert "data-deadline" in page
    assert "置信度" in page
    assert "话术" in page

    def held() -> list[int]:
        with db(client)() as s:
            return list(s.scalars(select(Message.id).where(Message.status == Delivery.HELD)))

    ids = held()
    assert ids
    r = client.post(f"/console/circles/demo-family/held/{ids[0]}/cancel",
                    data={"csrf": token}, follow_redirects=False)
    assert r.headers["location"].endswith("done=cancelled")
    assert ids[0] not in held()
    again = client.post(f"/console/circles/demo-family/held/{ids[0]}/send",
                        data={"csrf": token}, follow_redirects=False)
    assert "error=MESSAGE_NOT_HELD" in again.headers["location"]  # cancelled stays cancelled

    chat.say("demo-customer", "我的保单现金价值现在多少钱")
    fresh = held()[0]  # the group note, maybe with a private answer
    client.post(f"/console/circles/demo-family/held/{fresh}/send", data={"csrf": token})
    with db(client)() as s:
        assert s.get(Message, fresh).status == Delivery.QUEUED


def test_dashboard_page_shows_the_numbers_the_api_gives(client: TestClient, chat: Chat) -> None:
    plain = open_ticket(chat)
    complaint = open_ticket(chat, "我要投诉你们，再不处理我就打12378")
    web_login(client, "demo-supervisor")
    api = client.get("/api/v1/dashboard").json()
    assert api["complaint_alerts"] == 1
    alerts = client.get("/console/queue?complaint=1&open=0").text  # where the figure links
    assert f"/console/tickets/{complaint}" in alerts
    assert f"/console/tickets/{plain}" not in alerts
    assert api["open_total"] >= 2
    assert api["tickets_created"] >= 2
    html = client.get("/console/dashboard").text

    def shown(name: str) -> str:
        found = re.search(rf'data-figure="{name}"[^>]*><div class="n">([^<]+)</div>', html)
        assert found, name
        return found.group(1)

    for name in ("open_total", "sla_at_risk", "sla_breached", "tickets_created",
                 "complaint_alerts"):
        assert shown(name) == str(api[name]), name
    for p, n in api["open_by_priority"].items():
        assert shown(f"open_{p}") == str(n)
    assert "<svg" in html
    assert "/console/?priority=" in html

    bad = client.get("/api/v1/dashboard?from=2026-12-05&to=2026-12-01")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "RANGE_INVALID"


def test_chat_page_round_trip_for_demo_circles_only(
    client: TestClient, make_client: Any, tmp_path: Path
) -> None:
    page = client.get("/chat/demo-family?as=demo-customer")
    assert page.status_code == 200
    assert "王建国家庭服务群" in page.text
    token = re.search(r'X-Chat-Token": "([^"]+)"', page.text).group(1)
    body = {"as": "demo-customer", "text": "@小助手 下次保费什么时候交"}
    assert client.post("/chat/demo-family/messages", data=body).status_code == 403
    feed = client.post("/chat/demo-family/messages", data=body,
                       headers={"X-Chat-Token": token}).text
    group, private = feed.split('aria-label="私聊"')
    assert "私信" in group  # the group hears only a short note
    assert "CC2024000123" in private
    assert "CC2024000123" not in group
    as_wife = client.get("/chat/demo-family/feed?as=demo-wife").text
    assert "CC2024000123" not in as_wife  # her panel shows only her own private messages
    with db(client)() as s:
        row = s.scalar(select(Message).where(Message.direction == Direction.IN))
        assert row.channel == "web"
        assert row.sender_id == "demo-customer"
    assert client.get("/chat/demo-support").status_code == 404
    assert client.get("/chat/not-a-demo").status_code == 404

    plain = make_client(demo=False, insecure_webhook=True, data_dir=tmp_path / "plain")
    assert plain.get("/chat/demo-family").status_code == 404


def test_docs_and_redoc_load_only_vendored_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert assets, page
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["paths"]["/api/v1/dashboard"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/chat/demo-family"
    for lic in ("htmx/LICENSE", "swagger-ui/LICENSE", "redoc/LICENSE"):
        assert client.get(f"/static/vendor/{lic}").status_code == 200


def test_promises_kept_and_csat_count_in_the_dashboard(client: TestClient, chat: Chat) -> None:
    tid = open_ticket(chat)
    now = datetime.now(UTC)
    with db(client)() as s, s.begin():
        s.add(FollowUp(dedupe_key="k1", kind="promise", circle_id=1, ticket_id=tid, text="a",
                       due_at=now - timedelta(hours=1), status=FollowUpStatus.KEPT))
        s.add(FollowUp(dedupe_key="k2", kind="promise", circle_id=1, ticket_id=tid, text="b",
                       due_at=now - timedelta(hours=2), status=FollowUpStatus.SENT))
        s.get(Ticket, tid).rating = 5
    figures = client.get("/api/v1/dashboard", headers=login(client, "demo-supervisor")).json()
    assert (figures["promises_kept"], figures["promises_due"]) == (1, 2)
    assert figures["promises_kept_rate"] == 0.5
    assert (figures["csat_count"], figures["csat_average"]) == (1, 5.0)
    agents = {a["member_id"]: a["open"] for a in figures["agent_load"]}
    assert sum(agents.values()) == figures["open_total"]
    assert client.get("/api/v1/dashboard", headers=login(client, "demo-agent")).status_code == 403


@pytest.mark.parametrize("path", ["/console/dashboard", "/console/"])
def test_supervisor_lands_on_the_dashboard(client: TestClient, path: str) -> None:
    r = client.post("/console/login", data={"username": "demo-supervisor", "password": "demo"},
                    follow_redirects=False)
    assert r.headers["location"] == "/console/dashboard"
    assert client.get(path).status_code == 200


def test_a_breached_ticket_is_red_in_the_queue_and_counted_on_the_dashboard(
    client: TestClient, chat: Chat
) -> None:
    late = open_ticket(chat)
    fine = int(chat.say("demo-wife", "转人工", at_bot=True)["ticket_id"])
    now = datetime.now(UTC)
    with db(client)() as s, s.begin():
        t = s.get(Ticket, late)
        t.assignee_id = "demo-agent"
        t.first_response_remind_at = now - timedelta(hours=2)
        t.first_response_due = now - timedelta(hours=1)
        s.get(Ticket, fine).resolve_remind_at = now + timedelta(days=1)
    web_login(client, "demo-agent")
    rows = client.get("/console/queue").text
    late_row = re.search(rf'<tr class="[^"]*sla-breached[^"]*" data-ticket="{late}"', rows)
    assert late_row, "the breached ticket is not marked"
    assert re.search(rf'<tr class="[^"]*sla-ok[^"]*" data-ticket="{fine}"', rows)
    assert "超时 1小时" in rows  # the countdown has gone negative
    breached = client.get("/console/queue?sla=breached").text
    assert f"data-ticket=\"{late}\"" in breached
    assert f"data-ticket=\"{fine}\"" not in breached

    figures = client.get("/api/v1/dashboard", headers=login(client, "demo-supervisor")).json()
    assert figures["sla_breached"] == 1
    load = {a["member_id"]: a for a in figures["agent_load"]}
    assert load["demo-agent"]["breached"] == 1

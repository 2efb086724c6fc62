"""A day of transcript through the webhook, and the summaries a supervisor reads of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from storage.models import ServiceSummary
from tests.conftest import Chat
from tests.summaries.conftest import DAY, Day, sessions_of

NEXT_MORNING = DAY + timedelta(days=1)
PHONE, MASKED = "13812345678", "138****5678"
PROMISE = "王先生您好，理赔进度我今天下午三点前回复您"
HEAD = "【2026年3月3日服务小结】王建国家庭服务群"


def _family_day(day: Day, date: str = DAY.isoformat()) -> list[dict[str, Any]]:
    r = day.get("/api/v1/summaries", circle="demo-family", date=date)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _a_good_day(day: Day) -> int:
    """Holder and wife ask, a handoff, the agent promises and keeps it, resolved, rated 5."""
    day.at(9).say("demo-customer", "下次保费什么时候交", at_bot=True)
    day.at(9, 5).say("demo-wife", "我老公那份重疾险保额多少", at_bot=True)
    out = day.at(9, 10).say("demo-customer", f"转人工，理赔的事找李娜，我电话{PHONE}",
                            at_bot=True)
    ticket_id: int = out["ticket_id"]
    day.at(9, 30).say("demo-agent", PROMISE)
    day.at(14).say("demo-agent", "王先生，理赔材料已经审核通过了")
    day.at(14, 10).resolve(ticket_id)
    day.at(14, 20).say("demo-customer", "5")
    return ticket_id


def test_a_day_of_questions_a_handoff_a_kept_promise_and_a_rating(day: Day) -> None:
    ticket_id = _a_good_day(day)
    day.at(8, 0, NEXT_MORNING)
    circle_day, ticket = _family_day(day)
    f = circle_day["figures"]
    assert (circle_day["kind"], circle_day["circle"], circle_day["date"]) == (
        "day", "demo-family", "2026-03-03")
    assert circle_day["complete"] is True
    # what was asked, in the customers' words, and who settled it
    assert [(a["speaker"], a["intent"], a["outcome"]) for a in f["asked"]] == [
        ("王建国", "premium.due", "settled"),
        ("刘芳", "policy.list", "declined"),
        ("王建国", "human.request", "escalated"),
    ]
    assert (f["asks"], f["bot_settled"], f["declined"], f["escalated"], f["unanswered"]) == (
        3, 1, 1, 1, 0)
    # the handoff and how fast: 09:10 -> 09:30 first response, resolved 14:10
    assert f["handoffs"] == [{
        "ticket_id": ticket_id, "intent": "human.request", "reason": "intent",
        "status": "resolved", "first_response_minutes": 20.0, "first_response_breached": False,
        "resolution_minutes": 300.0, "resolve_breached": False, "rating": 5, "risk": [],
    }]
    # the promise (due 15:00) was kept by the agent's 14:00 message
    [promise] = f["promises"]
    assert (promise["state"], promise["made_by"]) == ("on_time", "demo-agent")
    assert promise["due_at"] == "2026-03-03T07:00:00+00:00"
    assert (f["promises_on_time"], f["promises_overdue"], f["open_tickets"]) == (1, 0, [])
    assert f["mood"]["complaint_risk"] is False
    assert f["ratings"] == [{"ticket_id": ticket_id, "rating": 5}]
    assert f["suggestions"] == []
    assert circle_day["text"].split("\n") == [
        HEAD,
        "今天客户提问3次：王建国问续期保费的缴费日期与金额（“下次保费什么时候交”）；"
        "刘芳问我的保单与保障查询（“我老公那份重疾险保额多少”）；"
        f"王建国问转人工或找代理人（“转人工，理赔的事找李娜，我电话{MASKED}”）。",
        "助手直接解答1次（续期保费的缴费日期与金额）。",
        "刘芳问我的保单与保障查询，未获保单持有人授权，助手没有透露，已私信询问王建国是否授权。",
        f"转人工1件：#{ticket_id}转人工或找代理人，20分钟首次响应（未超时），5小时解决（未超时）。",
        f"承诺1个：李娜答应“{PROMISE}”（3月3日 15:00前），已按时兑现。",
        "客户情绪平稳。",
        f"客户评分：#{ticket_id} 5分。",
        "没有遗留事项。",
    ]
    # the ticket's own summary, listed beside the day's
    assert (ticket["kind"], ticket["ticket_id"]) == ("ticket", ticket_id)
    assert ticket["text"].split("\n") == [
        f"【工单#{ticket_id}服务小结】王建国家庭服务群·转人工或找代理人",
        f"王建国提出：“转人工，理赔的事找李娜，我电话{MASKED}”。",
        "李娜20分钟首次响应（未超时），5小时解决（未超时）。",
        f"承诺1个：李娜答应“{PROMISE}”（3月3日 15:00前），已按时兑现。",
        "客户评分5分。",
    ]
    # the phone number someone posted is masked everywhere a summary goes
    for s in (circle_day, ticket):
        assert PHONE not in str(s)


def test_a_ticket_summary_is_stored_at_resolution_and_rewritten_with_the_rating(
    day: Day,
) -> None:
    ticket_id = day.at(10).say("demo-customer", "转人工", at_bot=True)["ticket_id"]
    day.at(10, 5).say("demo-agent", "王先生您好，我来处理")
    day.at(11).resolve(ticket_id)
    with sessions_of(day.app)() as s:
        stored = s.scalar(select(ServiceSummary).where(ServiceSummary.ticket_id == ticket_id))
        assert stored is not None, "written with the resolution, before anyone asks"
        assert stored.text.endswith("客户尚未评分。")
    day.at(11, 5).say("demo-customer", "4")
    r = day.get(f"/api/v1/summaries/tickets/{ticket_id}")
    assert r.status_code == 200, r.text
    assert r.json()["text"].endswith("客户评分4分。")
    assert r.json()["figures"]["ticket"]["rating"] == 4


def test_a_day_with_nothing_to_report_says_so_briefly(day: Day) -> None:
    _a_good_day(day)  # the day after is quiet
    day.at(20, 0, NEXT_MORNING)
    [quiet] = _family_day(day, NEXT_MORNING.isoformat())
    assert quiet["text"].split("\n") == [
        "【2026年3月4日服务小结】王建国家庭服务群", "今天没有客户提问，也没有待跟进的事项。"]
    assert quiet["figures"]["quiet"] is True
    assert quiet["complete"] is False, "the day is still running"


def test_a_day_with_a_broken_promise_and_a_question_asked_three_times(day: Day) -> None:
    ticket_id = day.at(9, 10).say("demo-customer", "转人工，问下理赔", at_bot=True)["ticket_id"]
    day.at(9, 30).say("demo-agent", PROMISE)
    day.at(15, 5).tick()  # nobody came back by 15:00: the customer gets a progress note
    for minute in (10, 20, 30):
        day.at(16, minute).say("demo-customer", "理赔进度到底怎么样了", at_bot=True)
    day.at(8, 0, NEXT_MORNING)
    circle_day = _family_day(day)[0]
    f = circle_day["figures"]
    [promise] = f["promises"]
    assert promise["state"] == "overdue"
    assert (f["promises_overdue"], f["open_tickets"], f["open_promises"]) == (
        1, [ticket_id], [promise["followup_id"]])
    assert f["repeats"] == [{"intent": "claim.status", "times": 3}]
    assert f["suggestions"] == ["promise_overdue", "repeat_ask"]
    lines = circle_day["text"].split("\n")
    assert f"承诺1个：李娜答应“{PROMISE}”（3月3日 15:00前），已逾期，仍未兑现。" \
        in lines
    assert "客户情绪有波动：说“到底”。" in lines
    assert f"仍待处理：工单#{ticket_id}（转人工或找代理人）、" \
        f"承诺“{PROMISE}”（3月3日 15:00前）。" in lines
    assert lines[-1] == (f"建议：承诺“{PROMISE}”已逾期，建议李娜今天联系客户说明进展；"
                         "客户两天内3次追问理赔进度查询，建议主动告知进度。")


def test_summaries_follow_who_may_see_the_circle_and_refuse_bad_dates(day: Day) -> None:
    _a_good_day(day)
    day.at(8, 0, NEXT_MORNING)
    for who, expected in (("demo-agent", ["demo-family"]), ("demo-supervisor", ["demo-family"]),
                          ("agent-b", ["family-b"]), ("admin", ["demo-family", "family-b"])):
        r = day.get("/api/v1/summaries", who, date=DAY.isoformat())
        assert [s["circle"] for s in r.json() if s["kind"] == "day"] == expected, who
    hidden = day.get("/api/v1/summaries", "agent-b", circle="demo-family", date=DAY.isoformat())
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "CIRCLE_NOT_FOUND")
    future = day.get("/api/v1/summaries", circle="demo-family", date="2026-03-05")
    assert (future.status_code, future.json()["error"]["code"]) == (400, "SUMMARY_DATE_FUTURE")
    assert day.get("/api/v1/summaries", date="2026-13-01").status_code == 422
    for params in ({"date": "9999-12-31"}, {"date": "0001-01-01"}):
        far = day.get("/api/v1/summaries", **params)
        assert (far.status_code, far.json()["error"]["code"]) == (400, "DATE_OUT_OF_RANGE")
    ancient = day.get("/api/v1/summaries/export.csv", **{"from": "0001-01-01", "to": "0001-01-02"})
    assert ancient.json()["error"]["code"] == "DATE_OUT_OF_RANGE"
    last = day.get("/api/v1/reports", **{"from": "9999-12-30", "to": "9999-12-31"})
    assert last.json()["error"]["code"] == "DATE_OUT_OF_RANGE"
    inverted = day.get("/api/v1/summaries/team", **{"from": "2026-03-03", "to": "2026-03-01"})
    assert inverted.json()["error"]["code"] == "RANGE_INVERTED"
    assert day.app.get("/api/v1/summaries").status_code == 401


def test_the_team_view_puts_the_circle_needing_attention_first(day: Day) -> None:
    family_b = Chat(day.app, "family-b")
    day.at(9, 10)
    family_b.say("cust-b", "转人工", at_bot=True, ts=day.clock.now.isoformat())
    day.at(9, 30)
    family_b.say("agent-b", "周女士您好，我今天下午三点前回复您", ts=day.clock.now.isoformat())
    day.at(15, 5).tick()  # the promise in family-b is broken
    day.at(8, 0, NEXT_MORNING)
    r = day.get("/api/v1/summaries/team", "admin", **{"from": "2026-03-02", "to": "2026-03-05"})
    assert r.status_code == 200, r.text
    rows = [(s["date"], s["circle"]) for s in r.json()]
    assert rows == [("2026-03-04", "family-b"), ("2026-03-04", "demo-family"),
                    ("2026-03-03", "family-b"), ("2026-03-03", "demo-family"),
                    ("2026-03-02", "demo-family"), ("2026-03-02", "family-b")]
    mine = day.get("/api/v1/summaries/team", "demo-agent",
                   **{"from": "2026-03-03", "to": "2026-03-03"})
    assert [s["circle"] for s in mine.json()] == ["demo-family"]


def test_complaint_risk_and_an_unanswered_question_show_in_mood_and_suggestions(
    day: Day,
) -> None:
    day.at(9, 10).say("demo-customer", "转人工，问下理赔", at_bot=True)
    day.at(9, 30).say("demo-agent", "王先生您好，我看一下")
    held = day.at(9, 40).say("demo-customer", "理赔进度怎么样了", at_bot=True)
    assert held["replies"] == [], "the agent holds the case: the bot keeps out"
    complaint = day.at(11).say("demo-customer", "再不给答复我就去12378投诉！！！")
    day.at(8, 0, NEXT_MORNING)
    f = _family_day(day)[0]["figures"]
    lines = _family_day(day)[0]["text"].split("\n")
    assert f["unanswered"] == 1
    assert "有1条客户消息无人回应（如“理赔进度怎么样了”）。" in lines
    assert f["mood"]["complaint_risk"] is True
    assert f["mood"]["complaint_words"] == ["投诉", "12378"]
    assert "客户有投诉风险：提到“投诉”、提到“12378”、1条消息连用感叹号。" in lines
    assert f["suggestions"] == ["complaint", "sla_breach"]
    assert lines[-1] == ("建议：客户有投诉倾向，建议主管尽快致电安抚；"
                         f"工单#{complaint['ticket_id']}已超时，建议主管督办或调整分配。")


def test_a_promise_kept_after_its_time_is_late_not_kept(day: Day) -> None:
    day.at(9, 10).say("demo-customer", "转人工，问下理赔", at_bot=True)
    day.at(9, 30).say("demo-agent", PROMISE)
    day.at(15, 5).tick()
    day.at(16).say("demo-agent", "王先生，让您久等了，理赔已经在审核了")
    day.at(8, 0, NEXT_MORNING)
    circle_day = _family_day(day)[0]
    [promise] = circle_day["figures"]["promises"]
    assert (promise["state"], promise["kept_at"]) == ("late", "2026-03-03T08:00:00+00:00")
    assert f"承诺1个：李娜答应“{PROMISE}”（3月3日 15:00前），逾期后才兑现。" \
        in circle_day["text"].split("\n")
    assert "promise_overdue" not in circle_day["figures"]["suggestions"]

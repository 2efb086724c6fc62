"""The care plan from a family's data and a date alone: each kind on its day (and not the day
before), who hears it, quiet hours, the weekly cap, opt-outs, and what a member says."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from circles import care
from storage.scripts import ScriptLibrary

SH = ZoneInfo("Asia/Shanghai")
SETTINGS = care.CareSettings()


def _policy(**kw: object) -> care.PolicyFacts:
    base = {"policy_no": "CC2024000123", "product": "康宁终身重大疾病保险", "status": "active",
            "premium": Decimal("8650"), "next_due_date": date(2027, 4, 10),
            "effective_date": date(2024, 3, 15), "insured_name": "王建国"}
    return care.PolicyFacts(**(base | kw))  # type: ignore[arg-type]


def _family(*policies: care.PolicyFacts, **kw: object) -> care.Family:
    base: dict[str, object] = {
        "customer_id": 1, "customer_no": "C0000001", "honorific": "王先生",
        "holder": care.Person("demo-customer", "王建国", date(1980, 3, 7)),
        "family": (care.Person("demo-wife", "刘芳", date(1982, 6, 15), "spouse"),
                   care.Person("demo-son", "王小明", date(2012, 9, 1), "child")),
        "policies": policies or (_policy(),), "circle_id": 10, "chat_id": "demo-family",
        "circle_name": "王建国家庭服务群", "agent_name": "李娜", "support_chat_id": "demo-support",
        "support_circle_id": 20, "route": "direct",
    }
    return care.Family(**(base | kw))  # type: ignore[arg-type]


def _plan(fam: care.Family, day: date, scripts: ScriptLibrary,
          settings: care.CareSettings = SETTINGS) -> list[care.PlanItem]:
    return list(care.plan([fam], day, scripts, settings))


@pytest.mark.parametrize(("day", "kind", "words"), [
    (date(2027, 3, 11), "premium_30d", "还有30天"),
    (date(2027, 4, 3), "premium_7d", "还有7天"),
    (date(2027, 4, 9), "premium_1d", "明天（2027年4月10日）到期"),
    (date(2027, 4, 11), "grace_first", "宽限期（至2027年6月9日）"),
    (date(2027, 6, 2), "grace_last_week", "宽限期将于2027年6月9日结束"),
])
def test_premium_and_grace_go_privately_to_the_holder_with_amount_and_date(
    scripts: ScriptLibrary, day: date, kind: str, words: str,
) -> None:
    fam = _family(_policy(effective_date=date(2024, 1, 20)))
    items = _plan(fam, day, scripts)
    assert [i.kind for i in items] == [kind]
    item = items[0]
    assert item.recipient == "demo-customer"
    assert item.circle == "demo-family"
    assert "8,650.00元" in item.text
    assert words in item.text
    assert "CC2024000123" in item.text
    assert item.script_id == f"care.{kind}"
    assert item.send_at == datetime(day.year, day.month, day.day, 9, 30, tzinfo=SH)
    assert item.dedupe_key == f"care:{kind}:pCC2024000123:2027-04-10:{day.isoformat()}"
    # the day before and after: nothing
    for other in (date.fromordinal(day.toordinal() - 1), date.fromordinal(day.toordinal() + 1)):
        assert kind not in [i.kind for i in _plan(fam, other, scripts)]


def test_a_paid_or_lapsed_policy_or_a_single_premium_gets_no_premium_reminder(
    scripts: ScriptLibrary,
) -> None:
    day = date(2027, 4, 9)
    for policy in (_policy(status="lapsed"), _policy(status="terminated"),
                   _policy(single_premium=True)):
        assert _plan(_family(policy), day, scripts) == []


def test_cooling_off_anniversary_with_review_invite_and_benefit(scripts: ScriptLibrary) -> None:
    new = _policy(policy_no="CC2026000001", effective_date=date(2026, 12, 1),
                  insured_name="王小明", next_due_date=date(2027, 12, 1))
    items = _plan(_family(new), date(2026, 12, 14), scripts)
    assert [(i.kind, i.recipient) for i in items] == [("cooling_off", "demo-customer")]
    assert "犹豫期将于2026年12月16日结束" in items[0].text
    assert "王小明" in items[0].text

    items = _plan(_family(_policy()), date(2027, 3, 15), scripts)
    by_kind = {i.kind: i for i in items}
    assert set(by_kind) == {"anniversary", "review_invite"}
    assert by_kind["anniversary"].recipient == "demo-customer"
    assert "生效3周年" in by_kind["anniversary"].text
    invite = by_kind["review_invite"]
    assert invite.circle == "demo-support"
    assert invite.recipient is None
    assert invite.circle_id == 20
    assert "保单检视" in invite.text
    assert "王建国" in invite.text

    annuity = _policy(policy_no="CC2025000456", product="金福年金保险",
                      effective_date=date(2025, 6, 1), survival_benefit_date=date(2030, 6, 1),
                      survival_benefit_amount=Decimal("10000"))
    items = _plan(_family(annuity), date(2030, 6, 1), scripts)
    benefit = next(i for i in items if i.kind == "benefit")
    assert benefit.recipient == "demo-customer"
    assert "生存金10,000.00元" in benefit.text


def test_birthdays_go_to_the_group_and_say_nothing_private(scripts: ScriptLibrary) -> None:
    items = _plan(_family(), date(2027, 3, 7), scripts)
    assert [(i.kind, i.recipient) for i in items] == [("birthday", None)]
    assert "祝王先生生日快乐" in items[0].text
    assert "1980" not in items[0].text
    assert "岁" in items[0].text
    wife = _plan(_family(), date(2027, 6, 15), scripts)
    assert [i.text[:7] for i in wife] == ["祝刘芳生日快乐"]
    leap = _family(holder=care.Person("demo-customer", "王建国", date(1980, 2, 29)))
    assert [i.kind for i in _plan(leap, date(2027, 2, 28), scripts)] == ["birthday"]


@pytest.mark.parametrize(("day", "holiday"), [
    (date(2027, 2, 6), "spring"),  # 春节 2027: lunar 1/1
    (date(2027, 2, 20), "lantern"),
    (date(2027, 6, 9), "dragon_boat"),
    (date(2027, 9, 15), "mid_autumn"),
    (date(2027, 1, 1), "new_year"),
    (date(2027, 10, 1), "national_day"),
])
def test_holidays_from_the_lunar_calendar_greet_the_group(
    scripts: ScriptLibrary, day: date, holiday: str,
) -> None:
    assert care.holiday_of(day) == holiday
    items = _plan(_family(), day, scripts)
    assert [(i.kind, i.recipient, i.script_id) for i in items] == [
        ("holiday", None, f"care.holiday.{holiday}")]
    assert care.holiday_of(date(2027, 2, 5)) is None


def test_double_ninth_only_where_there_is_an_elder(scripts: ScriptLibrary) -> None:
    day = date(2027, 10, 8)  # 重阳 2027
    assert care.holiday_of(day) == "double_ninth"
    assert _plan(_family(), day, scripts) == []
    grandma = care.Person("gm", "赵秀英", date(1950, 1, 1), "parent")
    fam = _family(family=(grandma,))
    assert [i.kind for i in _plan(fam, day, scripts)] == ["holiday"]


def test_the_weekly_cap_keeps_money_first_and_counts_what_was_sent(
    scripts: ScriptLibrary,
) -> None:
    day = date(2027, 3, 7)  # his birthday
    fam = _family(
        _policy(policy_no="A1", next_due_date=date(2027, 3, 8)),  # 1 day
        _policy(policy_no="A2", next_due_date=date(2027, 3, 14)),  # 7 days
        _policy(policy_no="A3", next_due_date=date(2027, 4, 6)),  # 30 days
    )
    kinds = [i.kind for i in _plan(fam, day, scripts)]
    assert kinds == ["premium_1d", "premium_7d", "premium_30d"]  # the birthday lost
    kinds = [i.kind for i in _plan(replace(fam, sent_this_week=2), day, scripts)]
    assert kinds == ["premium_1d"]
    assert _plan(replace(fam, sent_this_week=3), day, scripts) == []
    wide = care.CareSettings(weekly_cap=5)
    assert [i.kind for i in _plan(fam, day, scripts, wide)][-1] == "birthday"


def test_the_review_invite_to_the_agent_is_not_capped(scripts: ScriptLibrary) -> None:
    fam = replace(_family(), sent_this_week=3)
    assert [i.kind for i in _plan(fam, date(2027, 3, 15), scripts)] == ["review_invite"]


def test_opted_out_kinds_are_skipped_but_the_grace_warning_is_not(
    scripts: ScriptLibrary,
) -> None:
    fam = _family(opted_out=frozenset({"premium", "birthday"}))
    assert _plan(fam, date(2027, 4, 9), scripts) == []
    assert [i.kind for i in _plan(fam, date(2027, 4, 11), scripts)] == ["grace_first"]
    assert _plan(fam, date(2027, 3, 7), scripts) == []


def test_quiet_hours_move_a_late_run_to_the_next_morning() -> None:
    day = date(2027, 4, 9)
    assert care.send_time(day, SETTINGS) == datetime(2027, 4, 9, 9, 30, tzinfo=SH)
    late = datetime(2027, 4, 9, 14, 0, tzinfo=SH)
    assert care.send_time(day, SETTINGS, not_before=late) == datetime(2027, 4, 9, 14, 1,
                                                                      tzinfo=SH)
    night = datetime(2027, 4, 9, 22, 30, tzinfo=SH)
    assert care.send_time(day, SETTINGS, not_before=night) == datetime(2027, 4, 10, 9, 30,
                                                                       tzinfo=SH)
    small_hours = datetime(2027, 4, 9, 2, 0, tzinfo=SH)
    assert care.out_of_quiet(small_hours, SETTINGS) == datetime(2027, 4, 9, 9, 30, tzinfo=SH)
    early = care.CareSettings(send_time=time(7))  # a send time inside quiet hours
    assert care.send_time(day, early) == datetime(2027, 4, 9, 8, 0, tzinfo=SH)


@pytest.mark.parametrize(("text", "opt_in", "categories"), [
    ("别再提醒我交费了", False, ("premium",)),
    ("生日就别发了", False, ("birthday",)),
    ("节日祝福不用发了", False, ("holiday",)),
    ("以后不要再发这些提醒了", False, ()),
    ("恢复提醒", True, ()),
    ("恢复生日祝福", True, ("birthday",)),
    ("交费提醒关掉吧", False, ("premium",)),
    ("不要给我发生日祝福了", False, ("birthday",)),
    ("交费提醒恢复一下", True, ("premium",)),
])
def test_what_a_member_says(scripts: ScriptLibrary, text: str, opt_in: bool,
                            categories: tuple[str, ...]) -> None:
    command = care.read_command(text, scripts.labels["care_words"])
    assert command == care.CareCommand(opt_in=opt_in, categories=categories)


@pytest.mark.parametrize("text", ["下次保费什么时候交", "怎么关闭自动扣款", "别急，生日快乐",
                                  "取消保单要什么材料", "群里别发广告了啊", "明天几点出发 别迟到",
                                  "可以取消的提醒", "保费交了吗，别忘了",
                                  "已经失效的单子 补交保费能恢复吗"])
def test_other_messages_are_not_care_commands(scripts: ScriptLibrary, text: str) -> None:
    assert care.read_command(text, scripts.labels["care_words"]) is None


def test_without_the_holders_member_id_nothing_private_is_planned(scripts: ScriptLibrary) -> None:
    fam = _family(holder=care.Person(None, "王建国", date(1980, 4, 9)))
    items = _plan(fam, date(2027, 4, 9), scripts)  # premium due tomorrow, and his birthday
    assert [(i.kind, i.recipient) for i in items] == [("birthday", None)]


def test_no_customer_question_in_the_training_or_held_out_sets_reads_as_a_care_command(
    scripts: ScriptLibrary,
) -> None:
    """"补交保费能恢复吗" is a reinstatement question, not "恢复提醒"."""
    heldout = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "heldout_v2.jsonl"
    texts = [t for t, _ in scripts.examples()] + [
        json.loads(line)["text"] for line in heldout.read_text(encoding="utf-8").splitlines()
        if line.strip()]
    assert len(texts) > 5000
    words = scripts.labels["care_words"]
    assert [t for t in texts if care.read_command(t, words) is not None] == []

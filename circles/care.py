"""Proactive care (主动服务): what each family hears from us on a given day, planned from the
book of business and a date alone (no database, no clock of its own).

Kinds, and who hears them:
- premium_30d / premium_7d / premium_1d: a premium falls due in 30, 7 or 1 days (privately, to
  the holder: amounts and dates are policy data);
- grace_first / grace_last_week: the due date passed unpaid: the first day of the grace period
  and the day a week before it ends (`grace_days`, default 60, after the due date) (holder);
- cooling_off: the insured's cooling-off period (犹豫期, `cooling_off_days`, default 15 days
  after the effective date) ends in two days (holder);
- benefit: a survival benefit falls due today (holder);
- anniversary: a policy's yearly anniversary (holder), and an invitation to the agent, in the
  support circle, to offer the family a yearly policy review (保单检视);
- birthday: the holder's or a family member's birthday, where known (the group: only the name);
- holiday: 元旦, 春节, 元宵, 端午, 中秋, 重阳 (only for families with someone 60 or older, or a
  parent on file), 国庆 (the group). Lunar dates come from lunar_python.

A weekly cap per family (`weekly_cap`, default 3) keeps the most useful messages: the ones
about money and cover first (PRIORITY), greetings last. The agent's invitation is not counted:
the family never sees it. Opted-out categories (OPT_OUT_CATEGORY) are skipped, except the
grace-period warnings: a policy about to lapse is worth one message whatever was asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from lunar_python import Solar

from storage.pii import mask
from storage.scripts import ScriptLibrary

GROUP = None  # a plan item's recipient when the whole circle hears it

# The kinds, most useful first: the cap keeps the head of this list.
PRIORITY = (
    "premium_1d", "grace_first", "grace_last_week", "cooling_off", "premium_7d", "benefit",
    "premium_30d", "anniversary", "birthday", "holiday",
)
AGENT_KINDS = ("review_invite",)  # told to the agent in the support circle; never capped
PREMIUM_DAYS = {30: "premium_30d", 7: "premium_7d", 1: "premium_1d"}
# What a member can switch off ("别再提醒我交费了") and which kinds that silences.
OPT_OUT_CATEGORY = {
    "premium_30d": "premium", "premium_7d": "premium", "premium_1d": "premium",
    "cooling_off": "policy", "benefit": "policy", "anniversary": "policy",
    "birthday": "birthday", "holiday": "holiday",
}
CATEGORIES = ("premium", "policy", "birthday", "holiday")
PRIVATE_CATEGORIES = ("premium", "policy")  # only the holder may switch these off
SOLAR_HOLIDAYS = {(1, 1): "new_year", (10, 1): "national_day"}
LUNAR_HOLIDAYS = {(1, 1): "spring", (1, 15): "lantern", (5, 5): "dragon_boat",
                  (8, 15): "mid_autumn", (9, 9): "double_ninth"}
ELDER_AGE = 60
LIVE = ("active", "grace")


@dataclass(frozen=True)
class CareSettings:
    timezone: str = "Asia/Shanghai"
    send_time: time = time(9, 30)
    quiet_start: time = time(22)
    quiet_end: time = time(8)
    weekly_cap: int = 3
    grace_days: int = 60
    cooling_off_days: int = 15
    default_route: str = "direct"  # direct | agent_first
    draft_timeout_minutes: int = 120  # agent first: sent as is this long after the draft

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PolicyFacts:
    policy_no: str
    product: str
    status: str
    premium: Decimal
    next_due_date: date | None
    effective_date: date | None
    insured_name: str
    survival_benefit_date: date | None = None
    survival_benefit_amount: Decimal | None = None
    single_premium: bool = False


@dataclass(frozen=True)
class Person:
    member_id: str | None
    name: str
    birth_date: date | None
    relation: str | None = None  # None: the holder


@dataclass(frozen=True)
class Family:
    """One customer and the circle their family is served in."""

    customer_id: int
    customer_no: str
    honorific: str
    holder: Person
    family: tuple[Person, ...]
    policies: tuple[PolicyFacts, ...]
    circle_id: int
    chat_id: str
    circle_name: str
    agent_name: str
    support_chat_id: str | None
    support_circle_id: int | None
    route: str  # direct | agent_first
    opted_out: frozenset[str] = frozenset()  # categories
    sent_this_week: int = 0  # care messages already due this week before the plan date


@dataclass(frozen=True)
class PlanItem:
    kind: str
    circle: str
    recipient: str | None
    route: str
    send_at: datetime
    script_id: str
    text: str
    subject: str  # what the message is about: a policy, a member, the family
    circle_id: int  # where it goes (the support circle for the agent's invitation)
    customer_id: int
    script_version: int = 1

    @property
    def dedupe_key(self) -> str:
        return f"care:{self.kind}:{self.subject}:{self.send_at.date().isoformat()}"

    def public(self) -> dict[str, str | None]:
        return {"kind": self.kind, "circle": self.circle, "recipient": self.recipient,
                "route": self.route, "send_at": self.send_at.isoformat(),
                "script_id": self.script_id, "text": self.text}


@dataclass
class _Draft:
    kind: str
    subject: str
    script_id: str
    variables: Mapping[str, object]
    private: bool
    to_agent: bool = False


# -- timing -----------------------------------------------------------------------------------
def in_quiet_hours(moment: datetime, settings: CareSettings) -> bool:
    t = moment.astimezone(settings.zone).time()
    start, end = settings.quiet_start, settings.quiet_end
    return (t >= start or t < end) if start > end else (start <= t < end)


def send_time(day: date, settings: CareSettings, *, not_before: datetime | None = None) -> datetime:
    """The day's send time, or (a run late in the day) a minute after `not_before`; never in
    quiet hours."""
    at = datetime.combine(day, settings.send_time, tzinfo=settings.zone)
    if not_before is not None and at <= not_before:
        at = (not_before + timedelta(minutes=1)).astimezone(settings.zone).replace(microsecond=0)
    return out_of_quiet(at, settings)


def out_of_quiet(at: datetime, settings: CareSettings) -> datetime:
    """`at`, or, inside quiet hours, the next morning's send time (the end of quiet hours if
    the send time itself is inside them)."""
    if not in_quiet_hours(at, settings):
        return at
    local = at.astimezone(settings.zone)
    morning = local.date() if local.time() < settings.quiet_end else local.date() + timedelta(1)
    moved = datetime.combine(morning, settings.send_time, tzinfo=settings.zone)
    if in_quiet_hours(moved, settings):
        moved = datetime.combine(morning, settings.quiet_end, tzinfo=settings.zone)
    return moved


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


# -- the calendar -----------------------------------------------------------------------------
def holiday_of(day: date) -> str | None:
    """The holiday falling on `day` (a key of labels.care_holiday), if any."""
    solar = SOLAR_HOLIDAYS.get((day.month, day.day))
    if solar:
        return solar
    lunar = Solar.fromYmd(day.year, day.month, day.day).getLunar()
    month = lunar.getMonth()
    if month < 0:  # a leap month repeats no festival
        return None
    return LUNAR_HOLIDAYS.get((month, lunar.getDay()))


def same_day_of_year(born: date, day: date) -> bool:
    """A 29 February birthday (or anniversary) is kept on 28 February in other years."""
    if (born.month, born.day) == (day.month, day.day):
        return True
    return (born.month, born.day) == (2, 29) and (day.month, day.day) == (2, 28) and not (
        _leap(day.year))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


# -- planning ---------------------------------------------------------------------------------
def _drafts(fam: Family, day: date, settings: CareSettings, holiday: str | None) -> list[_Draft]:
    out: list[_Draft] = []
    anniversaries: list[str] = []
    for p in fam.policies:
        if p.status not in LIVE:
            continue
        money = {"product": p.product, "policy_no": p.policy_no, "insured_name": p.insured_name}
        due = p.next_due_date
        if due is not None and not p.single_premium:
            ahead = (due - day).days
            if ahead in PREMIUM_DAYS and p.status == "active":
                kind = PREMIUM_DAYS[ahead]
                out.append(_Draft(kind, f"p{p.policy_no}:{due.isoformat()}", f"care.{kind}",
                                  money | {"premium": _amount(p.premium),
                                           "due_date": _day(due), "days": ahead}, True))
            grace_end = due + timedelta(days=settings.grace_days)
            if ahead == -1 or (ahead < 0 and day == grace_end - timedelta(days=7)):
                kind = "grace_first" if ahead == -1 else "grace_last_week"
                out.append(_Draft(kind, f"p{p.policy_no}:{due.isoformat()}", f"care.{kind}",
                                  money | {"premium": _amount(p.premium), "due_date": _day(due),
                                           "grace_end": _day(grace_end)}, True))
        eff = p.effective_date
        if eff is not None:
            cooling_end = eff + timedelta(days=settings.cooling_off_days)
            if day == cooling_end - timedelta(days=2):
                out.append(_Draft("cooling_off", f"p{p.policy_no}", "care.cooling_off",
                                  money | {"end_date": _day(cooling_end)}, True))
            if day.year > eff.year and same_day_of_year(eff, day):
                years = day.year - eff.year
                out.append(_Draft("anniversary", f"p{p.policy_no}:{years}", "care.anniversary",
                                  money | {"years": years}, True))
                anniversaries.append(p.product)
        if p.survival_benefit_date == day and p.survival_benefit_amount is not None:
            out.append(_Draft("benefit", f"p{p.policy_no}:{day.isoformat()}", "care.benefit",
                              money | {"amount": _amount(p.survival_benefit_amount),
                                       "benefit_date": _day(day)}, True))
    if anniversaries and fam.support_circle_id is not None:
        out.append(_Draft("review_invite", f"c{fam.customer_no}:{day.year}",
                          "care.review_invite",
                          {"customer_name": fam.holder.name, "circle_name": fam.circle_name,
                           "products": "、".join(anniversaries)}, False, to_agent=True))
    for person in (fam.holder, *fam.family):
        if person.birth_date is not None and same_day_of_year(person.birth_date, day):
            who = fam.honorific if person.relation is None else person.name
            out.append(_Draft("birthday", f"m{person.member_id or fam.customer_no}",
                              "care.birthday", {"person_name": who}, False))
    if holiday is not None and _celebrates(fam, holiday, day):
        out.append(_Draft("holiday", f"c{fam.customer_no}", f"care.holiday.{holiday}",
                          {"honorific": fam.honorific}, False))
    return out


def _celebrates(fam: Family, holiday: str, day: date) -> bool:
    if holiday != "double_ninth":
        return True
    people = (fam.holder, *fam.family)
    return any(p.relation == "parent" or (p.birth_date is not None
                                          and age_on(p.birth_date, day) >= ELDER_AGE)
               for p in people)


def plan_family(
    fam: Family, day: date, scripts: ScriptLibrary, settings: CareSettings, *,
    holiday: str | None = None, bot_name: str = "小助手", not_before: datetime | None = None,
) -> list[PlanItem]:
    """What this family (and its agent) hears on `day`, capped and with opt-outs honoured."""
    drafts = [d for d in _drafts(fam, day, settings, holiday)
              if d.to_agent or OPT_OUT_CATEGORY.get(d.kind) not in fam.opted_out]
    if fam.holder.member_id is None:  # nobody to tell privately: policy data never goes to all
        drafts = [d for d in drafts if not d.private]
    family_side = sorted((d for d in drafts if not d.to_agent),
                         key=lambda d: (PRIORITY.index(d.kind), d.subject))
    room = max(settings.weekly_cap - fam.sent_this_week, 0)
    kept = family_side[:room] + [d for d in drafts if d.to_agent]
    at = send_time(day, settings, not_before=not_before)
    common = {"bot_name": bot_name, "honorific": fam.honorific, "agent_name": fam.agent_name}
    items: list[PlanItem] = []
    for d in kept:
        rendered = scripts.render(d.script_id, {**common, **d.variables})
        route = "direct" if d.to_agent else fam.route
        items.append(PlanItem(
            kind=d.kind,
            circle=(fam.support_chat_id or "") if d.to_agent else fam.chat_id,
            recipient=fam.holder.member_id if d.private else GROUP,
            route=route, send_at=at, script_id=rendered.script_id, text=mask(rendered.text),
            subject=d.subject, customer_id=fam.customer_id,
            circle_id=(fam.support_circle_id or 0) if d.to_agent else fam.circle_id,
            script_version=rendered.version,
        ))
    return items


def plan(
    families: Iterable[Family], day: date, scripts: ScriptLibrary, settings: CareSettings, *,
    bot_name: str = "小助手", not_before: datetime | None = None,
) -> Iterator[PlanItem]:
    """Every family's items for `day`, family by family (a generator: the book streams)."""
    holiday = holiday_of(day)
    for fam in families:
        yield from plan_family(fam, day, scripts, settings, holiday=holiday, bot_name=bot_name,
                               not_before=not_before)


# -- what a member says -----------------------------------------------------------------------
@dataclass(frozen=True)
class CareCommand:
    opt_in: bool  # True: 恢复提醒; False: 别再提醒
    categories: tuple[str, ...]  # empty: every category


def read_command(text: str, words: Mapping[str, str]) -> CareCommand | None:
    """"别再提醒我交费了" -> opt out of premium; "恢复提醒" -> opt in to everything.

    `words` is labels.care_words from scripts_zh/care.yaml: `opt_out`, `opt_in` and one entry
    per category, each a regular expression."""
    body = re.sub(r"@\S+", "", text).strip()
    if len(body) > 40:  # a long message is about something else
        return None
    opt_in = re.search(words["opt_in"], body) is not None
    opt_out = not opt_in and re.search(words["opt_out"], body) is not None
    if not (opt_in or opt_out):
        return None
    found = tuple(c for c in CATEGORIES if re.search(words[c], body))
    if not found and re.search(words["any"], body) is None:  # "群里别发广告" is not about us
        return None
    return CareCommand(opt_in=opt_in, categories=found)


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


def _day(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"

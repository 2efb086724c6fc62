"""Policy data goes only where it is addressed: private answers stay private, matter circles
relay only group words, changes to a policy come only from its holder, and the bot names
people from their profiles (SQLite + memory and PostgreSQL + Redis)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import actions
from bot.channels.config import ChannelConfigError
from bot.outbound.routing import KF_OPEN
from circles.naming import polite_name, safe_name
from escalation.notify import queue
from storage.db import transaction
from storage.models import (
    AuditEvent,
    ChannelCursor,
    Circle,
    MemberIdentity,
    Message,
    Ticket,
)
from tests.conftest import Chat, login
from tests.fakes.mockwx import MockWX, mockwx

__all__ = ["mockwx"]

HOLDER, WIFE, AGENT = "demo-customer", "demo-wife", "demo-agent"
POLICY_NOS = ("CC2024000123", "CC2025000456")


def sessions_of(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.services.sessions  # type: ignore[attr-defined, no-any-return]


def _family_id(client: TestClient) -> int:
    """The demo family's circle id (the demo book decides it, not the test)."""
    with sessions_of(client)() as s:
        found = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-family"))
    assert found is not None
    return int(found)


def _out_rows(client: TestClient, **where: Any) -> list[Message]:
    with sessions_of(client)() as s:
        return list(s.scalars(select(Message).filter_by(direction="out", **where)
                              .order_by(Message.id)))


def _count(client: TestClient, model: type, *where: Any) -> int:
    with sessions_of(client)() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- 2. a private message is answered privately, always to its sender -------------------------
PRIVATE_PATHS = [
    pytest.param(HOLDER, "你好", "chitchat.greet.reply", id="answer"),
    pytest.param(HOLDER, "我想问一下那个", "fallback.clarify", id="clarify"),
    pytest.param(HOLDER, "转人工", "human.request.holding", id="escalate-holding"),
    pytest.param(HOLDER, "我要投诉，你们太慢了", "complaint.holding", id="complaint"),
    pytest.param(HOLDER, "我要改受益人", "change.beneficiary.reply", id="form"),
    pytest.param(WIFE, "下次保费什么时候交", "premium.due.not_authorized", id="refusal"),
    pytest.param(WIFE, "我要换扣款银行卡", "form.holder_only", id="form-refusal"),
]


@pytest.mark.parametrize(("sender", "text", "script"), PRIVATE_PATHS)
def test_every_answer_to_a_private_message_goes_to_its_sender_alone(
    client: TestClient, chat: Chat, sender: str, text: str, script: str
) -> None:
    out = chat.say(sender, text, private=True)
    assert out["replies"]
    assert all(r["to"] is not None for r in out["replies"]), out["replies"]
    mine = [r for r in out["replies"] if r["to"] == sender]
    assert mine, "the sender hears back"
    rows = _out_rows(client, circle_id=_family_id(client))
    assert script in {r.script_id for r in rows if r.recipient_id == sender}
    assert not [r for r in rows if r.recipient_id is None], "nothing said to the group"


def test_a_stranger_writing_privately_is_answered_privately_even_on_a_retry(
    client: TestClient, chat: Chat
) -> None:
    first = chat.say("stranger-9", "你好", private=True, msg_id="stranger-private-1")
    assert [r["to"] for r in first["replies"]] == ["stranger-9"]
    again = chat.say("stranger-9", "你好", private=True, msg_id="stranger-private-1")
    assert all(r["to"] is not None for r in again["replies"])
    assert _out_rows(client) == [], "nothing stored that would read as said to the group"


def test_a_private_refusal_tells_the_holder_it_was_asked_privately(chat: Chat) -> None:
    out = chat.say(WIFE, "下次保费什么时候交", private=True)
    [prompt] = [r for r in out["replies"] if r["to"] == HOLDER]
    assert prompt["text"].startswith("王先生您好，刘芳刚刚在私聊中问到了您的保单信息")
    assert "在群里" not in prompt["text"]


def test_a_broken_turn_on_a_private_message_answers_the_sender_privately(
    client: TestClient, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> actions.Result:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(actions, "answer", broken)
    out = chat.say(HOLDER, "你好", private=True)
    assert out["ticket_id"] is not None
    assert [r["to"] for r in out["replies"]] == [HOLDER]
    assert [r.script_id for r in _out_rows(client, recipient_id=HOLDER)] == ["error.holding"]


def test_a_later_form_question_to_a_private_sender_stays_private(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我要改受益人", private=True)
    out = chat.say(HOLDER, "CC2024000123", private=True)
    assert [r["to"] for r in out["replies"]] == [HOLDER]


# -- 3. a matter circle relays group words, never a private message to the bot ----------------
def _matter(client: TestClient) -> str:
    out = Chat(client).say(HOLDER, "转人工", at_bot=True)
    r = client.post(f"/api/v1/tickets/{out['ticket_id']}/matter", headers=login(client, AGENT),
                    json={"name": "王建国理赔专项群", "specialists": [
                        {"member_id": "claims-1", "display_name": "理赔专员小吴"}]})
    assert r.status_code == 201, r.text
    return str(r.json()["chat_id"])


def test_matter_circle_never_relays_a_private_message(client: TestClient) -> None:
    matter = Chat(client, _matter(client))
    out = matter.say(HOLDER, "@小助手 我的保单号CC2024000123，下次保费什么时候交", private=True,
                     mentions=["小助手"])
    assert all(r["to"] == HOLDER for r in out["replies"])
    with sessions_of(client)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == matter.chat_id))
        relayed = list(s.scalars(select(Message).where(
            Message.circle_id == circle.id, Message.script_id == "matter.relay")))
    assert relayed == [], "the specialist and the wife hear nothing of it"
    matter.say("claims-1", "请补充一下住院病历")  # group words are still relayed
    with sessions_of(client)() as s:
        relayed = list(s.scalars(select(Message).where(Message.script_id == "matter.relay")))
    assert {m.recipient_id for m in relayed} == {HOLDER, AGENT}
    assert all("CC2024000123" not in m.text for m in relayed)
    assert all(m.text.startswith("理赔专员小吴（专员）") for m in relayed)


# -- 4. only the holder (or an authorized member) starts a change on the holder's policies -----
CHANGES = [
    ("我要改受益人", "change.beneficiary"),
    ("我要换扣款银行卡", "change.bank_account"),
    ("我换手机号了，要改一下联系方式", "change.contact"),
]


@pytest.mark.parametrize("sender", [WIFE, "stranger-1"])
@pytest.mark.parametrize(("text", "intent"), CHANGES)
def test_a_non_holder_cannot_start_a_change_and_nothing_is_opened(
    client: TestClient, chat: Chat, sender: str, text: str, intent: str
) -> None:
    out = chat.say(sender, text, at_bot=True)
    assert out["intent"] == intent
    assert out["ticket_id"] is None
    [reply] = out["replies"]
    assert "王建国本人办理" in reply["text"]
    assert [r.script_id for r in _out_rows(client)] == ["form.holder_only"]
    # nothing is pending: a policy number or a card number next starts nothing either
    follow = chat.say(sender, "CC2024000123 6222020200001234562", at_bot=True)
    assert follow["ticket_id"] is None
    assert _count(client, Ticket) == 0
    assert _count(client, AuditEvent, AuditEvent.kind == "change_form_refused") == 1


def test_the_holder_still_starts_a_change(client: TestClient, chat: Chat) -> None:
    out = chat.say(HOLDER, "我要改受益人", at_bot=True)
    assert [r.script_id for r in _out_rows(client)] == ["change.beneficiary.reply"]
    assert "王先生" in out["replies"][0]["text"]


def test_a_policy_number_never_tells_a_non_holder_whose_it_is(chat: Chat) -> None:
    """The invoice form asks for a policy number: the holder's and a made-up one get the
    same answer from the wife, so she learns nothing from trying numbers."""
    answers = []
    for number in ("CC2024000123", "CC2099999999"):
        chat.say(WIFE, "我要开发票", at_bot=True)
        out = chat.say(WIFE, number)
        answers.append([r["text"] for r in out["replies"]])
        chat.say(WIFE, "算了")
    assert answers[0] == answers[1]
    assert "没有找到" not in " ".join(answers[0])


# -- 5. people are named from their profiles, never from the channel's sender name ------------
@pytest.mark.parametrize("name", [
    "http://evil.example/pay 王建国", "王建国 110101199003071234", "www.x.cn客服", "@王建国",
])
def test_a_channel_sender_name_is_never_echoed(chat: Chat, name: str) -> None:
    for text in ("你好", "下次保费什么时候交", "我要改受益人"):
        out = chat.say("stranger-1", text, at_bot=True, sender_name=name)
        said = " ".join(r["text"] for r in out["replies"])
        for fragment in ("http", "evil", "www", "1101011990", "@王建国", "王建国您好"):
            assert fragment not in said, (text, said)
        assert out["replies"], text


def test_members_are_addressed_by_their_profile_name(chat: Chat) -> None:
    holder = chat.say(HOLDER, "你好", at_bot=True, sender_name="阿国")
    wife = chat.say(WIFE, "你好", at_bot=True, sender_name="芳芳 13800138000")
    assert "王先生" in holder["replies"][0]["text"]
    assert "阿国" not in holder["replies"][0]["text"]
    assert wife["replies"][0]["text"].startswith("刘女士"), "her profile: 刘芳, female"
    assert "芳芳" not in wife["replies"][0]["text"]


def test_the_holder_prompt_names_who_asked_in_the_group(chat: Chat) -> None:
    out = chat.say(WIFE, "下次保费什么时候交", at_bot=True, sender_name="王建国")
    [prompt] = [r for r in out["replies"] if r["to"] == HOLDER]
    assert prompt["text"].startswith("王先生您好，刘芳刚刚在群里问到了您的保单信息")
    assert "刘芳您好" not in prompt["text"]
    [kind] = [r for r in out["replies"] if r["to"] is None]
    assert kind["text"].startswith("刘女士您好")


def test_a_stranger_asking_is_named_neutrally_to_the_holder(chat: Chat) -> None:
    out = chat.say("stranger-1", "下次保费什么时候交", at_bot=True,
                   sender_name="王建国的太太 http://t.cn/x")
    [prompt] = [r for r in out["replies"] if r["to"] == HOLDER]
    assert prompt["text"].startswith("王先生您好，一位群成员刚刚在群里问到了您的保单信息")
    assert "http" not in prompt["text"]


def test_what_escalation_says_about_a_ticket_names_whose_ticket_it_is(
    client: TestClient, chat: Chat
) -> None:
    """The rating question after the wife's case is for 刘女士 (her profile), not 王先生."""
    ticket = chat.say(WIFE, "转人工", at_bot=True, sender_name="http://t.cn/x")["ticket_id"]
    r = client.post(f"/api/v1/tickets/{ticket}/resolve", headers=login(client, AGENT))
    assert r.status_code == 200, r.text
    [ask] = [m.text for m in _out_rows(client, script_id="rating.ask")]
    assert ask.startswith("刘女士，")


@pytest.mark.parametrize(("name", "gender", "expected"), [
    ("王建国", "male", "王先生"),
    ("刘芳", "female", "刘女士"),
    ("欧阳娜娜", "female", "欧阳女士"),
    ("刘芳", None, "刘芳"),
    ("Anna Lee", "female", "Anna Lee"),
    ("刘芳13800138000", "female", None),
    ("http://evil.cn", None, None),
    ("", None, None),
])
def test_polite_name(name: str, gender: str | None, expected: str | None) -> None:
    assert polite_name(name, gender) == expected


def test_safe_name_refuses_what_is_not_a_name() -> None:
    assert safe_name("买买提·艾力") == "买买提·艾力"
    assert safe_name("理赔专员小吴（外聘）") == "理赔专员小吴（外聘）"
    assert safe_name("Anna M. Lee") == "Anna M. Lee"
    for bad in ("ＩＤ１１０１０１", "王\u200b建国110", "刘芳 www.a.top", "a@b", "x" * 60,
                "客服 evil.shop", "王建国 t。cn"):
        assert safe_name(bad) is None, bad


# -- 1. a reply addressed to one member never travels through a route that posts to the group --
ROBOT_PATH, HOOK_PATH = "/cgi-bin/webhook/send", "/bridge/family"
OA_SEND, KF_SEND = "/cgi-bin/message/custom/send", "/cgi-bin/kf/send_msg"
APP_SEND = "/cgi-bin/message/send"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEMO_OA = {"token": "corecircle-demo-token", "aes_key": AES_KEY, "appid": "wxcorecircledemo0",
           "secret": "s3cret"}
KF_APP = {"token": "wecom-token", "aes_key": AES_KEY, "corp_id": "wwcorecircle",
          "secret": "corp-secret"}


def _routed(make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX,
            kind: str, **extra: Any) -> TestClient:
    """The demo family with a group route of `kind`, the outbox driven by the test."""
    path = ROBOT_PATH if kind == "robot" else HOOK_PATH
    return make_client(
        database_url=database_url, scheduler_enabled=False, outbound_dispatch=False,
        outbound_routes={"demo-family": {"kind": kind, "url": f"{mockwx.base}{path}?key=k"}},
        wechat_api_base=mockwx.base, wecom_api_base=mockwx.base, **extra,
    )


def _dispatch(client: TestClient, *, later: float = 120) -> None:
    """Run the outbox past the human grace window (held answers are due)."""
    dispatcher = client.app.state.services.channels.dispatcher  # type: ignore[attr-defined]
    dispatcher.clock = lambda: datetime.now(UTC) + timedelta(seconds=later)
    for _ in range(3):
        dispatcher.dispatch_once()


def _group_posts(mockwx: MockWX) -> list[str]:
    """What reached the whole group: robot texts, and bridge posts without a recipient."""
    robot = [c.body["text"]["content"] for c in mockwx.sent(ROBOT_PATH)]
    hook = [c.body["text"] for c in mockwx.sent(HOOK_PATH) if c.body["to"] is None]
    return robot + hook


def _holder_asks_unaddressed(client: TestClient) -> None:
    """An unaddressed question: the answer is held for the grace window, then the outbox
    carries the group note and the private details."""
    out = Chat(client).say(HOLDER, "下次保费什么时候交")
    assert out["replies"] == []
    assert {r.status for r in _out_rows(client)} == {"held"}


@pytest.mark.parametrize("kind", ["robot", "webhook"])
def test_a_group_only_route_never_carries_a_private_answer(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX, kind: str
) -> None:
    client = _routed(make_client, database_url, mockwx, kind)
    _holder_asks_unaddressed(client)
    _dispatch(client)
    posted = _group_posts(mockwx)
    for secret in (*POLICY_NOS, "8,650", "12,000"):
        assert all(secret not in text for text in posted), posted
    assert all(c.body["to"] is None for c in mockwx.sent(HOOK_PATH))
    # the group hears only that the agent will be in touch privately (not "sent privately")
    assert len(posted) == 1
    assert "李娜稍后私下联系您" in posted[0]
    assert posted[0].startswith("王先生")
    [private] = _out_rows(client, recipient_id=HOLDER)
    assert private.status == "private_held"
    assert {r.status for r in _out_rows(client) if r.script_id == "premium.due.group_note"} == {
        "cancelled"}
    # the agent has a task with its SLA, and the support circle was told
    with sessions_of(client)() as s:
        [task] = s.scalars(select(Ticket).where(Ticket.reason == "private_undeliverable"))
        assert task.member_id == HOLDER
        assert task.first_response_due is not None
        support = s.scalar(select(Circle).where(Circle.chat_id == "demo-support"))
        notices = s.scalars(select(Message.text).where(Message.circle_id == support.id))
        assert any("私信无法送达" in t for t in notices)


def test_a_second_held_private_answer_joins_the_open_task(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = _routed(make_client, database_url, mockwx, "robot")
    _holder_asks_unaddressed(client)
    _dispatch(client)
    Chat(client).say(HOLDER, "现金价值是多少")
    _dispatch(client)
    assert len(_out_rows(client, recipient_id=HOLDER, status="private_held")) == 2
    assert _count(client, Ticket, Ticket.reason == "private_undeliverable") == 1
    assert len(_group_posts(mockwx)) == 1, "one word to the group, not one per message"


def test_any_queued_message_for_one_member_is_held_not_posted_to_the_group(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    """Whatever queues it (a follow-up for one member, a note from escalation), the outbox
    decides by the recipient: the robot never sees it."""
    client = _routed(make_client, database_url, mockwx, "robot")
    with transaction(sessions_of(client)) as s:
        family = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        queue(s, family, "王先生，您的保单CC2024000123保费8650元将于下周扣款",
              now=datetime.now(UTC), to=HOLDER)
    _dispatch(client, later=0)
    posted = _group_posts(mockwx)
    assert all("CC2024000123" not in t for t in posted), posted
    assert len(posted) == 1
    assert "私下联系您" in posted[0]
    assert [r.status for r in _out_rows(client, recipient_id=HOLDER)] == ["private_held"]
    assert _count(client, Ticket, Ticket.reason == "private_undeliverable") == 1


def test_a_bridge_that_delivers_privately_carries_the_private_answer(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = _routed(make_client, database_url, mockwx, "bridge")
    _holder_asks_unaddressed(client)
    _dispatch(client)
    posts = [c.body for c in mockwx.sent(HOOK_PATH)]
    private = [p for p in posts if p["to"] == HOLDER]
    group = [p for p in posts if p["to"] is None]
    assert len(private) == 1
    assert "CC2024000123" in private[0]["text"]
    assert len(group) == 1
    assert "CC2024000123" not in group[0]["text"]
    assert {r.status for r in _out_rows(client)} == {"sent"}
    assert _count(client, Ticket) == 0


def test_oa_customer_service_carries_the_private_answer_beside_a_robot(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = _routed(make_client, database_url, mockwx, "robot", wechat_apps={"demo": DEMO_OA})
    fam = _family_id(client)
    with transaction(sessions_of(client)) as s:  # he wrote to the OA today: its window is open
        s.add(Message(circle_id=fam, direction="in", channel="wechat", channel_msg_id="oa-1",
                      sender_id=HOLDER, text="你好", created_at=datetime.now(UTC)))
    _holder_asks_unaddressed(client)
    _dispatch(client)
    [oa] = mockwx.sent(OA_SEND)
    assert oa.body["touser"] == "o-demo-customer"
    assert "CC2024000123" in oa.body["text"]["content"]
    assert all("CC2024000123" not in t for t in _group_posts(mockwx))
    assert len(_group_posts(mockwx)) == 1  # the note that it was sent privately
    assert _count(client, Ticket) == 0


def test_a_closed_oa_window_is_no_route_for_a_group_answer(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    """He follows the OA but has not written to it for days: OA may not write to him, so the
    answer is held and the group hears that the agent will be in touch, not "sent"."""
    client = _routed(make_client, database_url, mockwx, "robot", wechat_apps={"demo": DEMO_OA})
    _holder_asks_unaddressed(client)
    _dispatch(client)
    assert mockwx.sent(OA_SEND) == []
    [note] = _group_posts(mockwx)
    assert "私下联系您" in note
    assert [r.status for r in _out_rows(client, recipient_id=HOLDER)] == ["private_held"]
    assert _count(client, Ticket, Ticket.reason == "private_undeliverable") == 1


def test_a_message_for_the_holder_from_the_wifes_oa_chat_needs_his_own_open_window(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    """The wife wrote to the OA (her window is open); the prompt for the holder cannot ride
    her window: with his closed, it is held and he hears the agent will be in touch."""
    client = _routed(make_client, database_url, mockwx, "robot", wechat_apps={"demo": DEMO_OA})
    now = datetime.now(UTC)
    fam = _family_id(client)
    with transaction(sessions_of(client)) as s:
        asked = Message(circle_id=fam, direction="in", channel="wechat", channel_msg_id="oa-w1",
                        sender_id=WIFE, text="下次保费什么时候交", created_at=now)
        s.add(asked)
        s.flush()
        s.add(Message(circle_id=fam, direction="out", channel="wechat", recipient_id=HOLDER,
                      reply_to_id=asked.id, text="王先生您好，刘芳刚刚在私聊中问到了您的保单信息",
                      script_id="privacy.holder_authorize_prompt", status="queued",
                      created_at=now))
    _dispatch(client, later=0)
    assert mockwx.sent(OA_SEND) == []
    assert [r.status for r in _out_rows(client, recipient_id=HOLDER)] == ["private_held"]
    assert ["私下联系您" in t for t in _group_posts(mockwx)] == [True]


def test_wecom_kf_carries_the_private_answer_beside_a_robot(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = _routed(make_client, database_url, mockwx, "robot", wecom_apps={"kf": KF_APP})
    fam = _family_id(client)
    with transaction(sessions_of(client)) as s:
        s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-ext-1", member_id=HOLDER))
        s.add(ChannelCursor(channel=KF_OPEN, key="wm-ext-1", value="kf|wk-1"))
        s.add(Message(circle_id=fam, direction="in", channel="wecom", channel_msg_id="kf-1",
                      sender_id=HOLDER, text="你好", created_at=datetime.now(UTC)))
    _holder_asks_unaddressed(client)
    _dispatch(client)
    [kf] = mockwx.sent(KF_SEND)
    assert kf.body["touser"] == "wm-ext-1"
    assert kf.body["open_kfid"] == "wk-1"
    assert "CC2024000123" in kf.body["text"]["content"]
    assert all("CC2024000123" not in t for t in _group_posts(mockwx))
    assert _count(client, Ticket) == 0


def test_a_wecom_app_message_carries_a_reply_for_a_corp_member(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = _routed(make_client, database_url, mockwx, "robot",
                     wecom_apps={"corp": {**KF_APP, "agent_id": "1000002"}})
    with transaction(sessions_of(client)) as s:
        s.add(MemberIdentity(channel="wecom-user:corp", channel_user_id="LiNa",
                             member_id=AGENT))
        family = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        queue(s, family, "王建国的保单CC2024000123明天到期", now=datetime.now(UTC), to=AGENT)
    _dispatch(client, later=0)
    [sent] = mockwx.sent(APP_SEND)
    assert sent.body["touser"] == "LiNa"
    assert sent.body["agentid"] == 1000002
    assert "CC2024000123" in sent.body["text"]["content"]
    assert _group_posts(mockwx) == []
    assert [r.status for r in _out_rows(client, recipient_id=AGENT)] == ["sent"]


def test_a_staff_only_support_circle_may_hear_a_note_for_one_of_its_staff(
    make_client: Callable[..., TestClient], database_url: str, mockwx: MockWX
) -> None:
    client = make_client(
        database_url=database_url, scheduler_enabled=False, outbound_dispatch=False,
        outbound_routes={"demo-support": {"kind": "robot", "url": f"{mockwx.base}{ROBOT_PATH}"}},
    )
    with transaction(sessions_of(client)) as s:
        support = s.scalar(select(Circle).where(Circle.chat_id == "demo-support"))
        queue(s, support, "【时效提醒】工单#1的处理时限已过半", now=datetime.now(UTC), to=AGENT)
    _dispatch(client, later=0)
    assert _group_posts(mockwx) == ["【时效提醒】工单#1的处理时限已过半"]
    assert _count(client, Ticket) == 0


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"outbound_routes": {"demo-family": {"kind": "private-robot", "url": "http://x/y"}}},
     "kind"),
    ({"outbound_routes": {"demo-family": {"kind": "bridge"}}}, "url"),
    ({"wecom_apps": {"corp": {**KF_APP, "agent_id": "abc"}}}, "AgentId"),
])
def test_a_route_that_cannot_say_what_it_reaches_refuses_to_start(
    make_client: Callable[..., TestClient], database_url: str, settings: dict[str, Any],
    complaint: str,
) -> None:
    with pytest.raises(ChannelConfigError, match=complaint):
        make_client(database_url=database_url, **settings)


def test_the_webhook_answer_documents_that_to_is_for_one_member_alone(
    client: TestClient, chat: Chat
) -> None:
    """The synchronous answer may carry a private reply: the bridge delivers it 1:1."""
    out = chat.say(HOLDER, "下次保费什么时候交", at_bot=True)
    private = [r for r in out["replies"] if r["to"] == HOLDER]
    assert private
    assert "CC2024000123" in private[0]["text"]
    assert all("CC2024000123" not in r["text"] for r in out["replies"] if r["to"] is None)
    doc = client.get("/openapi.json").json()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref", "")
        return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else node

    answer = doc["paths"]["/api/v1/messages"]["post"]["responses"]["200"]
    body = resolve(answer["content"]["application/json"]["schema"])
    reply = resolve(body["properties"]["replies"]["items"])
    assert "never posts it to the group" in reply["properties"]["to"]["description"]

"""The chat page for real members behind a signed per-member link: issued by the circle's agent,
it reads the group and the member's own private messages and speaks only as that member."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot import chat_links
from bot.demo import seed_demo
from storage.db import transaction
from storage.enums import Direction
from storage.models import AuditEvent, Circle, Message
from tests.conftest import login
from tests.web.test_pages import csrf_of, web_login

REAL = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"


@pytest.fixture
def real(make_client: Any, tmp_path: Path) -> TestClient:
    """A service without the demo, holding the demo family's book under a real WeCom chat id."""
    client: TestClient = make_client(demo=False, insecure_webhook=True,
                                     data_dir=tmp_path / "real")
    svc = client.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        seed_demo(s, svc.settings, keyring=svc.keyring, scripts=svc.scripts)
        s.flush()
        s.scalar(select(Circle).where(Circle.chat_id == "demo-family")).chat_id = REAL
    return client


def issue(client: TestClient, member_id: str, **extra: Any) -> Any:
    return client.post(f"/api/v1/circles/{REAL}/links", headers=login(client, "demo-agent"),
                       json={"member_id": member_id, **extra})


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def guard_of(html: str) -> str:
    found = re.search(r'X-Chat-Token": "([^"]+)"', html)
    assert found
    return found.group(1)


def test_a_member_link_reads_the_group_and_only_their_own_private_messages(
    real: TestClient,
) -> None:
    r = issue(real, "demo-customer", days=3)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["url"].startswith("http")
    assert link["expires_at"]
    page = real.get(path_of(link["url"]))
    assert page.status_code == 200
    assert "王建国家庭服务群" in page.text
    assert "只能以您本人的身份发言" in page.text
    assert "?as=" not in page.text  # no switching to another member
    assert page.headers["cache-control"] == "no-store"

    # speak: through the pipeline, channel web, as the link's member
    feed = real.post(path_of(link["url"]).replace(f"/chat/{REAL}?", f"/chat/{REAL}/messages?"),
                     data={"text": "@小助手 下次保费什么时候交"},
                     headers={"X-Chat-Token": guard_of(page.text)})
    assert feed.status_code == 200, feed.text
    group, private = feed.text.split('aria-label="私聊"')
    assert "CC2024000123" in private  # the holder's own private answer
    assert "CC2024000123" not in group
    with real.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        said = s.scalar(select(Message).where(Message.direction == Direction.IN))
        assert said.channel == "web"
        assert said.sender_id == "demo-customer"

    # the wife's link shows the group, not the holder's private answer
    wife = issue(real, "demo-wife").json()
    as_wife = real.get(path_of(wife["url"])).text
    assert "下次保费什么时候交" in as_wife
    assert "CC2024000123" not in as_wife

    # issued links are audited
    with real.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        issued = s.scalars(select(AuditEvent.subject).where(
            AuditEvent.kind == "chat_link_issued")).all()
        assert sorted(issued) == ["demo-customer", "demo-wife"]


def test_a_link_never_speaks_as_someone_else(real: TestClient) -> None:
    link = issue(real, "demo-wife").json()
    path = path_of(link["url"])
    guard = guard_of(real.get(path).text)
    send = path.replace(f"/chat/{REAL}?", f"/chat/{REAL}/messages?")
    # naming another member in the form is refused
    r = real.post(send, data={"as": "demo-customer", "text": "我是投保人"},
                  headers={"X-Chat-Token": guard})
    assert r.status_code == 403
    # so is changing the member in the link (the signature covers it)
    query = parse_qs(urlsplit(link["url"]).query)
    forged = urlencode({"member": "demo-customer", "exp": query["exp"][0],
                        "sig": query["sig"][0]})
    r = real.post(f"/chat/{REAL}/messages?{forged}", data={"text": "我是投保人"},
                  headers={"X-Chat-Token": guard})
    assert r.status_code == 403
    assert real.get(f"/chat/{REAL}?{forged}").status_code == 403
    # ... and another member's page guard does not fit this link
    holder = path_of(issue(real, "demo-customer").json()["url"])
    r = real.post(send, data={"text": "hi"}, headers={"X-Chat-Token": guard_of(
        real.get(holder).text)})
    assert r.status_code == 403
    with real.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(Message).where(Message.direction == Direction.IN)) is None


def test_bad_or_expired_links_get_nothing(real: TestClient) -> None:
    link = issue(real, "demo-customer").json()
    query = parse_qs(urlsplit(link["url"]).query)
    member, exp, sig = query["member"][0], query["exp"][0], query["sig"][0]
    bad = [
        {"member": member, "exp": exp, "sig": "0" * len(sig)},  # wrong signature
        {"member": member, "exp": str(int(exp) + 86400), "sig": sig},  # stretched expiry
        {"member": member, "exp": exp},  # no signature
        {"member": member, "exp": "1700000000", "sig": sig},  # an old expiry: no longer fits
    ]
    for params in bad:
        q = urlencode(params)
        for path in (f"/chat/{REAL}?{q}", f"/chat/{REAL}/feed?{q}", f"/chat/{REAL}/events?{q}"):
            r = real.get(path)
            assert r.status_code == 403, (path, r.status_code)
            assert "王建国" not in r.text
            assert "CC2024000123" not in r.text
    # a link for one circle does not open another
    assert real.get(f"/chat/demo-support?{urlencode(query, doseq=True)}").status_code == 403
    # without a link a real circle is not served at all
    assert real.get(f"/chat/{REAL}").status_code == 404
    assert real.get(f"/chat/{REAL}?as=demo-customer").status_code == 404


def test_an_expired_link_is_refused(real: TestClient) -> None:
    svc = real.app.state.services  # type: ignore[attr-defined]
    exp = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    q = chat_links.link_query(svc.signer, REAL, "demo-customer", exp)  # genuinely signed
    r = real.get(f"/chat/{REAL}?{q}")
    assert r.status_code == 403
    assert "链接无效或已过期" in r.text
    assert "王建国家庭服务群" not in r.text


def test_only_the_circle_agent_issues_links_for_family_seats(real: TestClient) -> None:
    assert issue(real, "demo-agent").status_code == 400  # staff get no member link
    assert issue(real, "nobody").status_code == 400
    assert issue(real, "demo-customer", days=90).status_code == 422
    sup = real.post(f"/api/v1/circles/{REAL}/links", json={"member_id": "demo-customer"},
                    headers=login(real, "demo-supervisor"))
    assert sup.status_code == 403
    assert real.post(f"/api/v1/circles/{REAL}/links",
                     json={"member_id": "demo-customer"}).status_code == 401


def test_the_circle_page_hands_out_a_link(real: TestClient) -> None:
    web_login(real, "demo-agent")
    page = real.get(f"/console/circles/{REAL}").text
    assert "给家人发网页版聊天链接" in page
    token = csrf_of(page)
    r = real.post(f"/console/circles/{REAL}/links", headers={"HX-Request": "true"},
                  data={"csrf": token, "member_id": "demo-wife", "days": "7"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    url = re.search(r'value="([^"]+sig=[^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert "刘芳" in r.text
    assert real.get(path_of(url)).status_code == 200
    assert real.post(f"/console/circles/{REAL}/links",
                     data={"csrf": "forged", "member_id": "demo-wife"}).status_code == 403
    web_login(real, "demo-supervisor")
    assert "给家人发网页版聊天链接" not in real.get(f"/console/circles/{REAL}").text


def test_a_link_dies_with_the_members_seat(real: TestClient) -> None:
    path = path_of(issue(real, "demo-wife").json()["url"])
    assert real.get(path).status_code == 200
    left = real.post("/api/v1/events", json={"chat_id": REAL, "event": "leave",
                                             "member_id": "demo-wife", "member_name": "刘芳"})
    assert left.status_code == 200, left.text
    r = real.get(path)
    assert r.status_code == 403
    assert "王建国家庭服务群" not in r.text

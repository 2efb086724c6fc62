"""The pages in a real browser (Debian's Chromium via Playwright) against `corecircle serve
--demo`: a ticket arrives live, the agent works it, the dashboard agrees with the API, the chat
page round-trips. Any JavaScript error fails the test. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is required in CI (apt-get install -y chromium)",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`corecircle serve --demo` on the embedded default, on a free loopback port."""
    port = _free_port()
    data = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CORECIRCLE_DATABASE_URL",
                        "CORECIRCLE_REDIS_URL")}
    env |= {"CORECIRCLE_DATA_DIR": str(data), "PYTHONPATH": str(ROOT),
            "CORECIRCLE_LOG_LEVEL": "WARNING"}
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--demo", "--host", "127.0.0.1",
         "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError((data / "serve.log").read_text())
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 90 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh context per test; any uncaught JavaScript error fails the test."""
    context = browser.new_context(base_url=server, locale="zh-CN",
                                  viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def _login(page: Page, username: str) -> None:
    page.goto("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")


def _say(server: str, sender: str, name: str, text: str) -> dict[str, Any]:
    body = {"chat_id": "demo-family", "sender_id": sender, "sender_name": name, "text": text,
            "msg_id": f"browser-{uuid.uuid4().hex}", "mentions": ["小助手"]}
    r = httpx.post(f"{server}/api/v1/messages", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _api(server: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{server}/api/v1/auth/token",
                   data={"username": username, "password": "demo"}, timeout=30)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_agent_sees_a_new_ticket_arrive_live_and_works_it(page: Page, server: str) -> None:
    _login(page, "demo-agent")
    expect(page).to_have_url(f"{server}/console/")
    expect(page.locator("body.connected")).to_have_count(1, timeout=10_000)

    out = _say(server, "demo-customer", "王建国", "@小助手 我要转人工，理赔的事想找李娜")
    tid = out["ticket_id"]
    assert tid
    link = page.locator(f'a.ticket-link[href="/console/tickets/{tid}"]')
    expect(link).to_be_visible(timeout=10_000)  # no reload: the event stream brought it
    _shot(page, "queue")

    link.click()
    expect(page.locator("h1")).to_contain_text(f"#{tid}")
    expect(page.locator("#customer")).to_contain_text("康宁终身重大疾病保险")
    page.locator("button.insert").first.click()
    expect(page.locator("#reply-text")).not_to_have_value("")
    page.fill("#reply-text", "王先生您好，我是李娜，理赔的事我来跟进。")
    page.click("#reply-form button[type=submit]")
    expect(page.locator(".flash")).to_have_text("已发送到群里。")
    expect(page.locator(".transcript")).to_contain_text("理赔的事我来跟进")

    due = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai"))
    page.fill("#promise-form input[name=due]", due.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#promise-form input[name=text]", "明天核实理赔进度后回复")
    page.click("#promise-form button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("承诺已记下")
    expect(page.locator("#promises")).to_contain_text("明天核实理赔进度后回复")
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "ticket")

    # reveal the customer's phone: a reason first, the number in this response only
    phone = page.locator("#customer .profile details.reveal").first
    phone.locator("summary").click()
    phone.locator("input[name=reason]").fill("客户要求回电")
    phone.locator("button[type=submit]").click()
    expect(phone.locator(".reveal-out")).to_contain_text("13812345678")
    page.reload()
    expect(page.locator("#customer")).not_to_contain_text("13812345678")

    page.fill("#resolve-form input[name=note]", "已答复理赔进度")
    page.click("#resolve-form button")
    expect(page.locator(".flash")).to_contain_text("工单已解决")
    detail = httpx.get(f"{server}/api/v1/tickets/{tid}", headers=_api(server, "demo-agent"))
    assert detail.json()["status"] == "resolved"
    assert any(f["text"] == "明天核实理赔进度后回复" for f in detail.json()["followups"])


def test_dashboard_shows_the_numbers_the_api_gives(page: Page, server: str) -> None:
    _say(server, "demo-customer", "王建国", "@小助手 我要投诉，再拖我就打12378")
    _login(page, "demo-supervisor")
    expect(page).to_have_url(f"{server}/console/dashboard")
    figures = httpx.get(f"{server}/api/v1/dashboard",
                        headers=_api(server, "demo-supervisor")).json()
    for name in ("open_total", "sla_at_risk", "sla_breached", "tickets_created",
                 "complaint_alerts"):
        shown = page.locator(f'[data-figure="{name}"] .n')
        expect(shown).to_have_text(str(figures[name]))
    assert figures["complaint_alerts"] >= 1
    rate = page.locator('[data-figure="containment_rate"]').get_attribute("data-value")
    assert rate == str(figures["containment_rate"])
    expect(page.locator("svg").first).to_be_visible()
    _shot(page, "dashboard")
    page.click('[data-figure="open_total"]')
    expect(page).to_have_url(f"{server}/console/")


def test_chat_page_round_trip(page: Page, server: str) -> None:
    page.goto("/chat/demo-family?as=demo-customer")
    expect(page.locator(".chat-title")).to_contain_text("王建国家庭服务群")
    expect(page.locator("body.connected")).to_have_count(1, timeout=10_000)
    page.click("button.at-bot")
    page.locator("#chat-text").press_sequentially("下次保费什么时候交")
    page.click(".chat-input button[type=submit]")
    group, private = page.locator("#group-feed"), page.locator("#private-feed")
    expect(group.locator(".bubble-row.mine").last).to_contain_text("下次保费什么时候交")
    expect(group.locator(".bubble-row.from-bot").last).to_contain_text("私信")
    expect(private).to_contain_text("CC2024000123")
    expect(page.locator("#chat-text")).to_have_value("")

    # the agent answers from the console API: it appears without a reload
    out = _say(server, "demo-customer", "王建国", "@小助手 转人工")
    reply = httpx.post(f"{server}/api/v1/tickets/{out['ticket_id']}/reply",
                       json={"text": "王先生，我是李娜，这就为您处理。"},
                       headers=_api(server, "demo-agent"))
    assert reply.status_code == 201, reply.text
    expect(group.locator(".bubble-row.from-agent").last).to_contain_text("这就为您处理",
                                                                          timeout=10_000)
    _shot(page, "chat")

    page.click('a.as[data-member="demo-wife"]')
    expect(page.locator(".private-feed h3")).to_contain_text("刘芳")
    expect(page.locator("#private-feed")).not_to_contain_text("CC2024000123")
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "chat-phone")


def test_a_member_link_opens_the_chat_as_that_member_only(
    page: Page, browser: Browser, server: str
) -> None:
    _login(page, "demo-agent")
    page.goto("/console/circles/demo-family")
    page.locator("#member-links summary").click()
    page.select_option("#member-links select[name=member_id]", "demo-wife")
    page.click("#member-links button[type=submit]")
    url = page.locator("#link-out input.link-url").input_value()
    assert "sig=" in url

    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    errors: list[str] = []
    member = context.new_page()
    member.on("pageerror", lambda exc: errors.append(str(exc)))
    member.goto(url)
    expect(member.locator(".speaking-as")).to_contain_text("刘芳")
    expect(member.locator("a.as")).to_have_count(0)  # no switching to another member
    member.locator("#chat-text").fill("@小助手 我想问一下理赔进度")
    member.click(".chat-input button[type=submit]")
    expect(member.locator("#group-feed .bubble-row.mine").last).to_contain_text("理赔进度")
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"

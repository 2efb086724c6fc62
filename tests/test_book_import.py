"""The book of business: import, re-import, change, reject; then the bot answers from it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select

from bot.accounts import add_user
from bot.book import naming
from storage.db import transaction
from storage.enums import UserRole
from storage.models import Circle, CircleMember, Consent, Customer, Member, Policy, User
from tests.conftest import Chat, login

STAFF = """username,name,role,supervisor,team
zhao-sup,周敏,supervisor,,华南二部
zhao-agent,陈静,agent,zhao-sup,华南二部
"""
CUSTOMERS = """customer_no,member_id,name,gender,birth_date,phone,id_number,agent,wechat_openid
C100,zq,赵强,男,1978/4/9,139 1111 2222,110105198003070039,zhao-agent,o-zq
"""
FAMILY = """member_id,customer_no,name,relation,gender,birth_date,phone,\
authorized_scopes,authorized_until
zq-wife,C100,孙丽,配偶,女,1980-02-03,13922223333,"policy,claim",2099-12-31
zq-mom,C100,钱梅,父母,女,1950-05-06,,,
zq-kid,C100,赵小宝,子女,男,2015-07-08,,,
"""
POLICIES = """policy_no,customer_no,product,insured,effective_date,sum_assured,premium,\
frequency,payment_years,next_due_date,status,beneficiaries,cash_value,cash_value_date
ZP001,C100,安康重大疾病保险,C100,2020-01-15,300000,6200,年缴,20,2027-01-15,有效,孙丽:配偶:100%,15000,2026-11-01
ZP002,C100,智慧星教育年金,zq-kid,2021/6/1,100000,5000,月缴,10,2026/12/20,宽限期,赵强:父母:100%,,
"""
CLAIMS = """claim_no,policy_no,status,amount,submitted_at,updated_at,note
ZC001,ZP001,待补材料,12000,2026-11-20,2026-11-25,缺出院小结
"""
CIRCLES = """chat_id,customer_no,agent,channel,name
fam-zhao,C100,zhao-agent,webhook,
"""
BOOK = {"staff.csv": STAFF, "customers.csv": CUSTOMERS, "family.csv": FAMILY,
        "policies.csv": POLICIES, "claims.csv": CLAIMS, "circles.csv": CIRCLES}


def write_book(folder: Path, files: dict[str, str], encoding: str = "utf-8") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        (folder / name).write_bytes(content.encode(encoding))
        paths.append(folder / name)
    return paths


def sessions_of(client: TestClient) -> Any:
    return client.app.state.services.sessions  # type: ignore[attr-defined]


def admin(client: TestClient) -> dict[str, str]:
    svc = client.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        add_user(session=s, username="root", role=UserRole.ADMIN, name="管理员",
                 password="correct horse", naming=naming(svc.scripts, svc.settings),
                 now=datetime.now(UTC))
    return login(client, "root", "correct horse")


def upload(client: TestClient, headers: dict[str, str], paths: list[Path],
           dry_run: bool = False) -> Any:
    files = [("files", (p.name, p.read_bytes(), "text/csv")) for p in paths]
    return client.post("/api/v1/admin/import", headers=headers, files=files,
                       data={"dry_run": "true" if dry_run else "false"})


def counts(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {f["kind"]: (f["created"], f["updated"], f["unchanged"]) for f in report["files"]}


def test_import_reimport_change_reject_then_the_bot_answers_from_the_book(
    client: TestClient, tmp_path: Path
) -> None:
    headers = admin(client)
    paths = write_book(tmp_path / "v1", BOOK)

    first = upload(client, headers, paths)
    assert first.status_code == 200, first.text
    assert counts(first.json()) == {
        "staff": (2, 0, 0), "customers": (1, 0, 0), "family": (3, 0, 0),
        "policies": (2, 0, 0), "claims": (1, 0, 0), "circles": (1, 0, 0)}

    again = upload(client, headers, paths)
    assert again.status_code == 200
    assert all(c == 0 and u == 0 for c, u, _ in counts(again.json()).values())

    changed = write_book(tmp_path / "v2", {
        "policies.csv": POLICIES.replace("2027-01-15", "2027-02-15")})
    third = upload(client, headers, changed)
    assert counts(third.json()) == {"policies": (0, 1, 1)}

    broken = write_book(tmp_path / "v3", {
        "customers.csv": CUSTOMERS + "C101,ww,吴伟,男,1990-01-01,13700000000,"
                                     "110105198003070038,zhao-agent,\n",
        "policies.csv": POLICIES + "ZP003,C999,平安意外险,C100,2026-02-30,1,1,年缴,1,,有效,,,\n",
        "claims.csv": CLAIMS + "ZC002,NOPE,已报案,1,2026-11-20,,\n",
    })
    rejected = upload(client, headers, broken)
    assert rejected.status_code == 422
    problems = {(p["file"], p["line"], p["column"])
                for p in rejected.json()["error"]["report"]["problems"]}
    assert ("customers.csv", 3, "id_number") in problems  # check digit wrong
    assert ("policies.csv", 4, "customer_no") in problems  # the holder is missing
    assert ("policies.csv", 4, "effective_date") in problems  # 30 February
    assert ("claims.csv", 3, "policy_no") in problems
    with sessions_of(client)() as s:
        assert s.scalar(select(Customer).where(Customer.customer_no == "C101")) is None
        due = s.scalar(select(Policy.next_due_date).where(Policy.policy_no == "ZP001"))
        assert due is not None
        assert due.isoformat() == "2027-02-15"

    chat = Chat(client, "fam-zhao")
    holder = chat.say("zq", "下次保费什么时候交", at_bot=True)
    private = " ".join(r["text"] for r in holder["replies"] if r["to"] == "zq")
    assert "2027年2月15日" in private
    assert "ZP001" in private
    assert all("2027年2月15日" not in r["text"] for r in holder["replies"] if r["to"] is None)

    wife = chat.say("zq-wife", "下次保费什么时候交", at_bot=True)  # consent on record
    assert any("2027年2月15日" in r["text"] for r in wife["replies"] if r["to"] == "zq-wife")

    mom = chat.say("zq-mom", "下次保费什么时候交", at_bot=True)  # no consent
    assert mom["replies"]
    assert not any("2027" in r["text"] or "ZP001" in r["text"] for r in mom["replies"])


def test_circle_seats_consent_and_sealed_numbers(client: TestClient, tmp_path: Path) -> None:
    upload(client, admin(client), write_book(tmp_path, BOOK))
    with sessions_of(client)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "fam-zhao"))
        assert circle is not None
        assert circle.name == "赵强家庭服务群"
        seats = {m.member_id: m.role.value for m in s.scalars(
            select(CircleMember).where(CircleMember.circle_id == circle.id))}
        assert seats == {"zq": "customer", "zq-wife": "family", "zq-mom": "family",
                         "zq-kid": "family", "zhao-agent": "agent", "bot": "bot"}
        customer = s.scalar(select(Customer).where(Customer.customer_no == "C100"))
        assert customer is not None
        assert customer.honorific == "赵先生"
        assert customer.phone_masked == "139****2222"
        assert customer.id_number_masked == "110***********0039"
        assert customer.phone_sealed
        assert "13911112222" not in customer.phone_sealed
        keyring = client.app.state.services.keyring  # type: ignore[attr-defined]
        assert keyring.open(customer.phone_sealed) == "13911112222"
        assert customer.phone_hash == keyring.hash("139-1111-2222")
        consent = s.scalar(select(Consent).where(Consent.member_id == "zq-wife"))
        assert consent is not None
        assert consent.scopes == "claim,policy"
        support = s.scalar(select(Circle).where(Circle.chat_id == "support-zhao-agent"))
        assert support is not None
        assert {m.member_id for m in s.scalars(select(CircleMember).where(
            CircleMember.circle_id == support.id))} == {"zhao-agent", "zhao-sup", "bot"}
        kid = s.get(Member, "zq-kid")
        assert kid is not None
        assert kid.relation == "child"
        edu = s.scalar(select(Policy).where(Policy.policy_no == "ZP002"))
        assert edu is not None
        assert (edu.kind, edu.insured_name, edu.premium_frequency) == (
            "education", "赵小宝", "monthly")


def test_withdrawn_consent_stops_the_disclosure(client: TestClient, tmp_path: Path) -> None:
    headers = admin(client)
    upload(client, headers, write_book(tmp_path / "a", BOOK))
    upload(client, headers, write_book(tmp_path / "b", {
        "family.csv": FAMILY.replace('"policy,claim",2099-12-31', ",")}))
    out = Chat(client, "fam-zhao").say("zq-wife", "下次保费什么时候交", at_bot=True)
    assert not any("ZP001" in r["text"] for r in out["replies"])
    with sessions_of(client)() as s:
        assert s.scalar(select(func.count()).select_from(Consent).where(
            Consent.member_id == "zq-wife", Consent.revoked_at.is_not(None))) == 1


def test_imported_staff_cannot_log_in_until_a_password_is_set(
    client: TestClient, tmp_path: Path
) -> None:
    headers = admin(client)
    upload(client, headers, write_book(tmp_path, {"staff.csv": STAFF}))
    refused = client.post("/api/v1/auth/token",
                          data={"username": "zhao-agent", "password": ""})
    assert refused.status_code in (401, 422)
    weak = client.post("/api/v1/admin/users/zhao-agent/password", headers=headers,
                       json={"password": "short"})
    assert weak.status_code == 400
    ok = client.post("/api/v1/admin/users/zhao-agent/password", headers=headers,
                     json={"password": "a long passphrase"})
    assert ok.status_code == 200
    assert ok.json()["can_log_in"] is True
    login(client, "zhao-agent", "a long passphrase")
    client.post("/api/v1/admin/users/zhao-agent/deactivate", headers=headers)
    gone = client.post("/api/v1/auth/token",
                       data={"username": "zhao-agent", "password": "a long passphrase"})
    assert gone.status_code == 401


def test_the_import_route_is_for_admins_only(client: TestClient, tmp_path: Path) -> None:
    r = upload(client, login(client, "demo-agent"), write_book(tmp_path, {"staff.csv": STAFF}))
    assert r.status_code == 403
    with sessions_of(client)() as s:
        assert s.scalar(select(User).where(User.username == "zhao-agent")) is None


# The encoding is the reader's business: once, on the embedded database, is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_chinese_excel_exports_are_read(
    client: TestClient, tmp_path: Path, encoding: str
) -> None:
    """Excel on a Chinese Windows writes GBK (or UTF-8 with a BOM); both read the same."""
    r = upload(client, admin(client), write_book(tmp_path, BOOK, encoding=encoding))
    assert r.status_code == 200, r.text
    with sessions_of(client)() as s:
        assert s.scalar(select(Customer.name).where(Customer.customer_no == "C100")) == "赵强"


def test_xlsx_files_are_read(client: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "xlsx"
    write_book(folder, {k: v for k, v in BOOK.items() if k != "policies.csv"})
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    lines = [line.split(",") for line in POLICIES.strip().splitlines()]
    sheet.append(lines[0])
    for row in lines[1:]:
        sheet.append([datetime(2027, 1, 15) if v == "2027-01-15" else v for v in row])
    book.save(folder / "policies.xlsx")
    paths = sorted(folder.iterdir())
    r = upload(client, admin(client), paths)
    assert r.status_code == 200, r.text
    assert counts(r.json())["policies"] == (2, 0, 0)
    with sessions_of(client)() as s:
        due = s.scalar(select(Policy.next_due_date).where(Policy.policy_no == "ZP001"))
        assert due is not None
        assert due.isoformat() == "2027-01-15"


def test_a_dry_run_reports_and_writes_nothing(client: TestClient, tmp_path: Path) -> None:
    r = upload(client, admin(client), write_book(tmp_path, BOOK), dry_run=True)
    assert r.status_code == 200
    assert r.json()["written"] is False
    with sessions_of(client)() as s:
        assert s.scalar(select(Customer).where(Customer.customer_no == "C100")) is None

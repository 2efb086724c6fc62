"""The write pass of an import: upserts by natural key, in chunks, with bulk statements.

Runs only after every row of every file was checked (storage/book/importer.py), inside the
caller's transaction. A row whose keyed digest matches the stored one is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from storage.book.importer import FileReport, Naming
from storage.crypto import Keyring
from storage.enums import CircleKind, CircleStatus, Role, UserRole
from storage.models import (
    AuditEvent,
    Base,
    Circle,
    CircleMember,
    Claim,
    Consent,
    Customer,
    Member,
    MemberIdentity,
    Policy,
    User,
)

CHUNK = 1000
IMPORT_ACTOR = "import"  # recorded_by on consents the importer manages
T = TypeVar("T")


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def chunks(rows: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


class Writer:
    def __init__(self, s: Session, *, keyring: Keyring, naming: Naming, now: datetime,
                 tz: ZoneInfo) -> None:
        self.s, self.keys, self.naming, self.now, self.tz = s, keyring, naming, now, tz

    def write(self, kind: str, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        self.s.flush()
        getattr(self, f"_{kind}")(records, report)
        self.s.flush()

    def finish(self) -> None:
        self.s.flush()
        self.s.expire_all()  # bulk statements bypassed the identity map

    # -- helpers -----------------------------------------------------------------------------

    def _digest(self, r: dict[str, Any]) -> str:
        return self.keys.digest(json.dumps(r, sort_keys=True, default=str, ensure_ascii=False))

    def _seal(self, prefix: str, value: str | None) -> dict[str, str | None]:
        if not value:
            return {f"{prefix}_sealed": None, f"{prefix}_hash": None, f"{prefix}_masked": None}
        p = self.keys.protect(value)
        return {f"{prefix}_sealed": p.sealed, f"{prefix}_hash": p.hash,
                f"{prefix}_masked": p.masked}

    def _split(self, batch: list[dict[str, Any]], key: str, existing: dict[Any, tuple[Any, Any]],
               report: FileReport) -> tuple[list[tuple[dict[str, Any], str]],
                                            list[tuple[dict[str, Any], Any, str]]]:
        """(new rows, changed rows with their ids); counts the report."""
        new, changed = [], []
        for r in batch:
            digest = self._digest(r)
            found = existing.get(r[key])
            if found is None:
                new.append((r, digest))
                report.created += 1
            elif found[1] != digest:
                changed.append((r, found[0], digest))
                report.updated += 1
            else:
                report.unchanged += 1
        return new, changed

    def _bot(self) -> str:
        return ensure_bot(self.s, self.naming, self.now)

    # -- staff.csv: users, their members, and each agent's support circle --------------------

    def _staff(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        rows = list(records)  # a team's staff: small
        users = {u.username: u for u in self.s.scalars(
            select(User).where(User.username.in_([r["username"] for r in rows])))}
        changed: list[dict[str, Any]] = []
        for r in rows:
            digest = self._digest(r)
            user = users.get(r["username"])
            member = self.s.get(Member, r["username"])
            if member is None:
                member = Member(id=r["username"], display_name=r["name"], created_at=self.now)
                self.s.add(member)
            if user is None:
                user = User(username=r["username"], password_hash=None, role=r["role"],
                            member_id=r["username"])
                self.s.add(user)
                report.created += 1
            elif user.import_digest == digest:
                report.unchanged += 1
                continue
            else:
                report.updated += 1
            user.role, user.name, user.team = r["role"], r["name"], r["team"]
            user.import_digest, user.member_id = digest, user.member_id or r["username"]
            member.display_name = r["name"]
            changed.append(r)
        self.s.flush()
        for r in changed:
            member = self.s.get(Member, r["username"])
            assert member is not None
            member.supervisor_id = r["supervisor"]
        self.s.flush()
        for r in changed:
            if r["role"] == UserRole.AGENT:
                self._support_circle(r)

    def _support_circle(self, r: dict[str, Any]) -> None:
        ensure_support_circle(
            self.s, agent=r["username"], agent_name=r["name"], supervisor=r["supervisor"],
            chat_id=r["support_chat_id"], naming=self.naming, now=self.now,
        )

    # -- customers.csv: customers, the member each is in the chats, channel identities -------

    def _customers(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        existing = {n: (i, d) for i, n, d in self.s.execute(
            select(Customer.id, Customer.customer_no, Customer.import_digest)
            .where(Customer.customer_no.is_not(None)))}
        for batch in chunks(records):
            new, changed = self._split(batch, "customer_no", existing, report)
            ids: dict[str, int] = {}
            if new:
                self.s.execute(insert(_table(Customer)), [
                    {**self._customer_values(r, d), "created_at": self.now} for r, d in new])
                ids = self._customer_ids({r["customer_no"] for r, _ in new})
            if changed:
                self.s.execute(update(Customer), [
                    {"id": i, **self._customer_values(r, d)} for r, i, d in changed])
                ids.update({r["customer_no"]: i for r, i, _ in changed})
            touched = [r for r, _ in new] + [r for r, _, _ in changed]
            if touched:
                self._holder_members(touched, ids)
                self._identities(touched)

    def _customer_values(self, r: dict[str, Any], digest: str) -> dict[str, Any]:
        return {
            "customer_no": r["customer_no"], "name": r["name"],
            "honorific": self.naming.honorific(r["name"], r["gender"]),
            "gender": r["gender"], "birth_date": r["birth_date"], "agent_id": r["agent"],
            **self._seal("phone", r["phone"]), **self._seal("id_number", r["id_number"]),
            "import_digest": digest,
        }

    def _holder_members(self, rows: list[dict[str, Any]], ids: dict[str, int]) -> None:
        mids = [r["member_id"] for r in rows]
        have = set(self.s.scalars(select(Member.id).where(Member.id.in_(mids))))
        values = [{"id": r["member_id"], "display_name": r["name"],
                   "customer_id": ids[r["customer_no"]]} for r in rows]
        fresh = [v for v in values if v["id"] not in have]
        if fresh:
            self.s.execute(insert(_table(Member)), [
                {**v, "is_bot": False, "created_at": self.now} for v in fresh])
        old = [v for v in values if v["id"] in have]
        if old:
            self.s.execute(update(Member), old)

    def _identities(self, rows: list[dict[str, Any]]) -> None:
        wanted = {(ch, r[col]): r["member_id"] for r in rows
                  for ch, col in (("wechat", "wechat_openid"), ("wecom", "wecom_external_userid"))
                  if r[col]}
        if not wanted:
            return
        have = {(i.channel, i.channel_user_id): i for i in self.s.scalars(
            select(MemberIdentity).where(
                MemberIdentity.channel_user_id.in_([u for _, u in wanted])))}
        for (channel, uid), mid in wanted.items():
            ident = have.get((channel, uid))
            if ident is None:
                self.s.add(MemberIdentity(channel=channel, channel_user_id=uid, member_id=mid))
            else:
                ident.member_id = mid

    # -- family.csv: family members and the consent their holder gave --------------------------

    def _family(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        existing = {i: (i, d) for i, d in self.s.execute(
            select(Member.id, Member.import_digest).where(Member.family_of_id.is_not(None)))}
        for batch in chunks(records):
            new, changed = self._split(batch, "member_id", existing, report)
            cids = self._customer_ids({r["customer_no"] for r in batch})
            if new:
                self.s.execute(insert(_table(Member)), [
                    {**self._family_values(r, d, cids), "is_bot": False, "created_at": self.now}
                    for r, d in new])
            if changed:
                self.s.execute(update(Member), [self._family_values(r, d, cids)
                                                for r, _, d in changed])
            touched = [r for r, _ in new] + [r for r, _, _ in changed]
            if touched:
                self._consents(touched, cids)

    def _family_values(self, r: dict[str, Any], digest: str, cids: dict[str, int]
                       ) -> dict[str, Any]:
        return {"id": r["member_id"], "display_name": r["name"],
                "family_of_id": cids[r["customer_no"]], "relation": r["relation"],
                "gender": r["gender"], "birth_date": r["birth_date"],
                **self._seal("phone", r["phone"]), "import_digest": digest}

    def _customer_ids(self, numbers: set[str]) -> dict[Any, int]:
        return dict(self.s.execute(
            select(Customer.customer_no, Customer.id).where(Customer.customer_no.in_(numbers))
        ).all())

    def _consents(self, rows: list[dict[str, Any]], cids: dict[str, int]) -> None:
        """The file's authorized_scopes/until replace the grant the importer made before."""
        current = {c.member_id: c for c in self.s.scalars(select(Consent).where(
            Consent.member_id.in_([r["member_id"] for r in rows]),
            Consent.recorded_by == IMPORT_ACTOR, Consent.revoked_at.is_(None)))}
        granted: list[Consent] = []
        for r in rows:
            scopes = ",".join(r["authorized_scopes"])
            old = current.get(r["member_id"])
            holder = cids[r["customer_no"]]
            if old is not None and (old.scopes, old.until, old.holder_id) == (
                    scopes, r["authorized_until"], holder):
                continue
            if old is not None:
                old.revoked_at = self.now
                self._audit("consent_revoked", old)
            if scopes:
                grant = Consent(holder_id=holder, member_id=r["member_id"], scopes=scopes,
                                until=r["authorized_until"], source="paper",
                                granted_at=self.now, recorded_by=IMPORT_ACTOR)
                self.s.add(grant)
                granted.append(grant)
        self.s.flush()  # the grants get their ids, which their audit events name
        for grant in granted:
            self._audit("consent_granted", grant)

    def _audit(self, kind: str, c: Consent) -> None:
        self.s.add(AuditEvent(
            kind=kind, actor_id=IMPORT_ACTOR, subject=f"consent:{c.id}",
            data={"holder_id": c.holder_id, "member_id": c.member_id, "scopes": c.scopes,
                  "until": c.until.isoformat() if c.until else None, "source": c.source},
            created_at=self.now))

    # -- policies.csv -------------------------------------------------------------------------

    def _policies(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        existing = {n: (i, d) for i, n, d in self.s.execute(
            select(Policy.id, Policy.policy_no, Policy.import_digest))}
        for batch in chunks(records):
            new, changed = self._split(batch, "policy_no", existing, report)
            if not new and not changed:
                continue
            numbers = {r["customer_no"] for r in batch} | {r["insured"] for r in batch}
            customers = {no: (i, name) for no, i, name in self.s.execute(
                select(Customer.customer_no, Customer.id, Customer.name)
                .where(Customer.customer_no.in_(numbers)))}
            family = dict(self.s.execute(
                select(Member.id, Member.display_name).where(
                    Member.id.in_([r["insured"] for r in batch
                                   if r["insured"] not in customers]))).all())
            if new:
                self.s.execute(insert(_table(Policy)), [
                    self._policy_values(r, d, customers, family) for r, d in new])
            if changed:
                self.s.execute(update(Policy), [
                    {"id": i, **self._policy_values(r, d, customers, family)}
                    for r, i, d in changed])

    def _policy_values(self, r: dict[str, Any], digest: str,
                       customers: dict[Any, tuple[int, str]], family: dict[str, str]
                       ) -> dict[str, Any]:
        insured = customers.get(r["insured"])
        return {
            "policy_no": r["policy_no"], "product": r["product"], "kind": r["kind"],
            "holder_id": customers[r["customer_no"]][0],
            "insured_name": insured[1] if insured else family[r["insured"]],
            "insured_customer_id": insured[0] if insured else None,
            "insured_member_id": None if insured else r["insured"],
            "effective_date": r["effective_date"], "sum_assured": r["sum_assured"],
            "premium": r["premium"], "premium_frequency": r["frequency"],
            "payment_years": r["payment_years"], "next_due_date": r["next_due_date"],
            "status": r["status"], "beneficiaries": r["beneficiaries"],
            "cash_value": r["cash_value"], "cash_value_date": r["cash_value_date"],
            "survival_benefit_date": r["survival_benefit_date"],
            "survival_benefit_amount": r["survival_benefit_amount"], "import_digest": digest,
        }

    # -- claims.csv ---------------------------------------------------------------------------

    def _claims(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        existing = {n: (i, d) for i, n, d in self.s.execute(
            select(Claim.id, Claim.claim_no, Claim.import_digest))}
        for batch in chunks(records):
            new, changed = self._split(batch, "claim_no", existing, report)
            if not new and not changed:
                continue
            policies = dict(self.s.execute(select(Policy.policy_no, Policy.id).where(
                Policy.policy_no.in_({r["policy_no"] for r in batch}))).all())
            if new:
                self.s.execute(insert(_table(Claim)), [self._claim_values(r, d, policies)
                                               for r, d in new])
            if changed:
                self.s.execute(update(Claim), [{"id": i, **self._claim_values(r, d, policies)}
                                               for r, i, d in changed])

    def _aware(self, when: datetime | None) -> datetime | None:
        if when is None:
            return None
        return when.replace(tzinfo=self.tz) if when.tzinfo is None else when

    def _claim_values(self, r: dict[str, Any], digest: str, policies: dict[str, int]
                      ) -> dict[str, Any]:
        submitted = self._aware(r["submitted_at"])
        return {"claim_no": r["claim_no"], "policy_id": policies[r["policy_no"]],
                "status": r["status"], "amount": r["amount"], "submitted_at": submitted,
                "updated_at": self._aware(r["updated_at"]) or submitted, "note": r["note"],
                "import_digest": digest}

    # -- circles.csv: the family's group; every family member gets a seat ---------------------

    def _circles(self, records: Iterable[dict[str, Any]], report: FileReport) -> None:
        existing = {n: (i, d) for i, n, d in self.s.execute(
            select(Circle.id, Circle.chat_id, Circle.import_digest))}
        bot = self._bot()
        for batch in chunks(records):
            customers = {no: (i, name) for no, i, name in self.s.execute(
                select(Customer.customer_no, Customer.id, Customer.name).where(
                    Customer.customer_no.in_({r["customer_no"] for r in batch})))}
            cids = [i for i, _ in customers.values()]
            holders = dict(self.s.execute(select(Member.customer_id, Member.id).where(
                Member.customer_id.in_(cids))).all())
            family: dict[int, list[str]] = {}
            for mid, fam in self.s.execute(select(Member.id, Member.family_of_id).where(
                    Member.family_of_id.in_(cids)).order_by(Member.id)):
                if fam is not None:
                    family.setdefault(fam, []).append(mid)
            # Who belongs is part of the row: a new family member changes the circle.
            full = [{**r, "_holder": holders.get(customers[r["customer_no"]][0]),
                     "_family": family.get(customers[r["customer_no"]][0], [])} for r in batch]
            new, changed = self._split(full, "chat_id", existing, report)
            ids: dict[str, int] = {}
            if new:
                self.s.execute(insert(_table(Circle)), [
                    {**self._circle_values(r, d, customers), "kind": CircleKind.CORE,
                     "status": CircleStatus.ACTIVE, "created_at": self.now} for r, d in new])
                ids = dict(self.s.execute(select(Circle.chat_id, Circle.id).where(
                    Circle.chat_id.in_([r["chat_id"] for r, _ in new]))).all())
            if changed:
                self.s.execute(update(Circle), [{"id": i, **self._circle_values(r, d, customers)}
                                                for r, i, d in changed])
                ids.update({r["chat_id"]: i for r, i, _ in changed})
            touched = [r for r, _ in new] + [r for r, _, _ in changed]
            if touched:
                self._seats(touched, ids, bot)

    def _circle_values(self, r: dict[str, Any], digest: str,
                       customers: dict[Any, tuple[int, str]]) -> dict[str, Any]:
        cid, cname = customers[r["customer_no"]]
        name = r["name"] or self.naming.core_circle.format(name=cname)
        return {"chat_id": r["chat_id"], "name": name[:128], "customer_id": cid,
                "agent_id": r["agent"], "channel": r["channel"], "import_digest": digest}

    def _seats(self, rows: list[dict[str, Any]], ids: dict[str, int], bot: str) -> None:
        seats: dict[int, dict[str, Role]] = {}
        for cid, mid, role in self.s.execute(
                select(CircleMember.circle_id, CircleMember.member_id, CircleMember.role)
                .where(CircleMember.circle_id.in_(ids.values()))):
            seats.setdefault(cid, {})[mid] = role
        add: list[dict[str, Any]] = []
        for r in rows:
            circle_id = ids[r["chat_id"]]
            have = seats.get(circle_id, {})
            want: dict[str, Role] = {r["agent"]: Role.AGENT, bot: Role.BOT}
            if r["_holder"]:
                want[r["_holder"]] = Role.CUSTOMER
            want.update(dict.fromkeys(r["_family"], Role.FAMILY))
            gone = [m for m, role in have.items() if role == Role.AGENT and m != r["agent"]]
            if gone:  # the family has a new agent
                self.s.execute(delete(CircleMember).where(
                    CircleMember.circle_id == circle_id, CircleMember.member_id.in_(gone)))
            add += [{"circle_id": circle_id, "member_id": m, "role": role, "authorized": False,
                     "joined_at": self.now} for m, role in want.items() if m not in have]
        if add:
            self.s.execute(insert(_table(CircleMember)), add)


def ensure_bot(s: Session, naming: Naming, now: datetime) -> str:
    if s.get(Member, naming.bot_member_id) is None:
        s.add(Member(id=naming.bot_member_id, display_name=naming.bot_name, is_bot=True,
                     created_at=now))
        s.flush()
    return naming.bot_member_id


def ensure_support_circle(
    s: Session, *, agent: str, agent_name: str, supervisor: str | None, chat_id: str | None,
    naming: Naming, now: datetime,
) -> Circle:
    """The agent's support circle (业务核心圈): the agent, their supervisor, the bot.

    Found by the agent first (a re-import or `users add` never makes a second one), else by
    `chat_id` (default `support-<username>`); a former supervisor loses their seat.
    """
    circle = s.scalar(select(Circle).where(
        Circle.kind == CircleKind.SUPPORT, Circle.agent_id == agent).order_by(Circle.id).limit(1))
    chat_id = chat_id or f"support-{agent}"
    if circle is None:
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
    if circle is None:
        circle = Circle(chat_id=chat_id, kind=CircleKind.SUPPORT,
                        name=naming.support_circle.format(name=agent_name)[:128],
                        agent_id=agent, created_at=now)
        s.add(circle)
        s.flush()
    circle.agent_id = agent
    seats = {m.member_id: m for m in s.scalars(
        select(CircleMember).where(CircleMember.circle_id == circle.id))}
    want = {agent: Role.AGENT, ensure_bot(s, naming, now): Role.BOT}
    if supervisor:
        want[supervisor] = Role.SUPERVISOR
    for mid, seat in seats.items():
        if seat.role in (Role.SUPERVISOR, Role.AGENT) and mid not in want:
            s.delete(seat)  # a former supervisor (or agent) leaves the support circle
    for mid, role in want.items():
        if mid not in seats:
            s.add(CircleMember(circle_id=circle.id, member_id=mid, role=role, joined_at=now))
    s.flush()
    return circle

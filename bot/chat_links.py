"""Signed per-member links to the chat page: a real member of a family circle reads the group
and their own private messages and speaks as themselves (channel "web"), nobody else.

The link is `/chat/{chat_id}?member=<id>&exp=<unix seconds>&sig=<HMAC>`; the HMAC covers the
chat id, the member and the expiry under the service's signing key, so changing any of them (to
speak as someone else, or to stay longer) breaks it. Issued by the circle's agent only; every
issue is an audit event.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import Principal, TokenSigner
from storage.enums import Role, UserRole
from storage.errors import BadRequest, Forbidden
from storage.models import AuditEvent, Circle, CircleMember

PURPOSE = "chat-member"
DEFAULT_DAYS = 7
MAX_DAYS = 30
LINKED_ROLES = (Role.CUSTOMER, Role.FAMILY)  # guests and staff get no member link


@dataclass(frozen=True)
class ChatLink:
    chat_id: str
    member_id: str
    expires_at: datetime
    path: str  # /chat/...?member=&exp=&sig=


def signature(signer: TokenSigner, chat_id: str, member_id: str, exp: int) -> str:
    return signer.mac(PURPOSE, f"{chat_id}\n{member_id}\n{exp}")


def link_query(signer: TokenSigner, chat_id: str, member_id: str, exp: int) -> str:
    return urlencode({"member": member_id, "exp": exp,
                      "sig": signature(signer, chat_id, member_id, exp)})


def seat_role(session: Session, circle: Circle, member_id: str) -> Role | None:
    return session.scalar(select(CircleMember.role).where(
        CircleMember.circle_id == circle.id, CircleMember.member_id == member_id))


def issue(
    session: Session, signer: TokenSigner, circle: Circle, member_id: str, *, who: Principal,
    now: datetime, days: int = DEFAULT_DAYS,
) -> ChatLink:
    """A link for one member of the customer's side of this circle, by the circle's agent."""
    if who.role != UserRole.AGENT or who.member_id is None or who.member_id != circle.agent_id:
        raise Forbidden("only the circle's agent may hand out member links",
                        code="LINK_FORBIDDEN")
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days is 1 to {MAX_DAYS}", code="LINK_DAYS")
    if seat_role(session, circle, member_id) not in LINKED_ROLES:
        raise BadRequest("member_id names the customer or a family member of this circle",
                         code="LINK_MEMBER")
    expires = (now + timedelta(days=days)).replace(microsecond=0)
    exp = int(expires.timestamp())
    session.add(AuditEvent(kind="chat_link_issued", actor_id=who.member_id,
                           circle_id=circle.id, subject=member_id,
                           data={"expires_at": expires.isoformat()}, created_at=now))
    path = f"/chat/{quote(circle.chat_id, safe='')}?" + link_query(
        signer, circle.chat_id, member_id, exp)
    return ChatLink(circle.chat_id, member_id, expires, path)


def verify(
    signer: TokenSigner, chat_id: str, member_id: str, exp: str, sig: str, *, now: datetime
) -> datetime | None:
    """The link's expiry if the signature is ours and it has not expired; else None."""
    if not (member_id and exp.isdigit() and len(exp) <= 12 and sig):
        return None
    expected = signature(signer, chat_id, member_id, int(exp))
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return None
    expires = datetime.fromtimestamp(int(exp), UTC)
    return expires if expires > now else None

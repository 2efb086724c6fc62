"""Import a book of business: validate every file whole, then write it in one transaction.

Two passes over each file, both streamed: the first checks every row and collects the keys
other files refer to; the second (only if nothing was wrong) upserts in chunks by natural key.
Memory grows with the number of keys, not with the size of a row or a file.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.book import parse, rules
from storage.book.parse import KEY, REQUIRED, Cells, Problem
from storage.book.reader import KINDS, UnreadableFile, kind_of, read_rows
from storage.crypto import Keyring
from storage.enums import UserRole
from storage.models import Customer, Member, Policy, User

MAX_PROBLEMS = 500  # enough to fix a file by; the count says how many more there were


@dataclass
class FileReport:
    file: str
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportReport:
    files: list[FileReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "written": self.ok and not self.dry_run,
            "files": [vars(f) for f in self.files],
            "problem_count": self.problem_count,
            "problems": [vars(p) for p in self.problems],
        }


@dataclass(frozen=True)
class Source:
    """A book file: its name says its kind (an upload is saved under its own name first)."""

    name: str
    path: Path

    def open(self) -> IO[bytes]:
        return self.path.open("rb")

    @classmethod
    def of(cls, path: Path) -> Source:
        return cls(path.name, path)


@dataclass(frozen=True)
class Naming:
    """The words the importer needs from scripts_zh (storage reads no scripts itself)."""

    honorific_suffix: dict[str, str]  # gender -> 先生 / 女士
    core_circle: str  # "{name}家庭服务群"
    support_circle: str  # "{name}业务支持群"
    bot_member_id: str = "bot"
    bot_name: str = "小助手"

    def honorific(self, name: str, gender: str | None) -> str:
        suffix = self.honorific_suffix.get(gender or "")
        return (name[:1] + suffix) if suffix else name


@dataclass
class Known:
    """Keys from the database and from the files: what a reference may point at."""

    staff: dict[str, UserRole] = field(default_factory=dict)
    customers: set[str] = field(default_factory=set)
    holder_members: dict[str, str] = field(default_factory=dict)  # member id -> customer_no
    family: dict[str, str] = field(default_factory=dict)  # member id -> customer_no
    policies: set[str] = field(default_factory=set)
    other_members: set[str] = field(default_factory=set)  # staff, bots, guests

    @classmethod
    def load(cls, s: Session) -> Known:
        k = cls()
        k.staff = dict(s.execute(select(User.username, User.role)).all())
        k.customers = {n for n in s.scalars(select(Customer.customer_no)) if n}
        for mid, cno, fam in s.execute(
            select(Member.id, Customer.customer_no, Member.family_of_id).outerjoin(
                Customer, (Customer.id == Member.customer_id) | (Customer.id == Member.family_of_id)
            )
        ):
            if cno is None:
                k.other_members.add(mid)
            elif fam is not None:
                k.family[mid] = cno
            else:
                k.holder_members[mid] = cno
        k.policies = set(s.scalars(select(Policy.policy_no)))
        return k


def sources_from(paths: Sequence[Path]) -> list[Source]:
    """Files named on the command line; a directory stands for the book files in it."""
    found: list[Source] = []
    for p in paths:
        if p.is_dir():
            found += [Source.of(f) for f in sorted(p.iterdir()) if kind_of(f.name)]
        else:
            found.append(Source.of(p))
    return found


def rows_of(src: Source, report: ImportReport | None = None) -> Iterator[tuple[int, Cells]]:
    """Data rows of one file as Cells; header problems go to the report (or raise)."""
    kind = kind_of(src.name) or ""
    with src.open() as stream:
        rows = read_rows(src.path, stream)
        _, header = next(rows, (1, {}))
        missing = [c for c in REQUIRED[kind] if c not in header]
        if missing:
            if report is not None:
                report.add(Problem(src.name, 1, ",".join(missing),
                                   f"missing column(s): {', '.join(missing)}"))
            return
        for line, row in rows:
            yield line, Cells(src.name, line, row)


def validate(s: Session, sources: Sequence[Source], report: ImportReport,
             spool: Path | None = None) -> dict[str, Source]:
    """Every row of every file checked; returns the files by kind, in the order they load.

    With `spool` (a folder), the checked records are written there (<kind>.pickle, one record
    after another) so the write pass streams them instead of parsing every file again.
    """
    by_kind: dict[str, Source] = {}
    for src in sources:
        kind = kind_of(src.name)
        if not src.path.is_file():
            report.add(Problem(src.name, 0, "", f"no such file: {src.path}"))
        elif kind is None:
            report.add(Problem(src.name, 0, "", "not a book file: name it one of "
                               + ", ".join(f"{k}.csv" for k in KINDS) + " (or .xlsx)"))
        elif kind in by_kind:
            report.add(Problem(src.name, 0, "", f"a second {kind} file; give one per kind"))
        else:
            by_kind[kind] = src
    known = Known.load(s)
    ordered = {k: by_kind[k] for k in KINDS if k in by_kind}
    # First the keys each file defines (a reference may point forward within the book) ...
    pending: list[tuple[str, Source]] = []
    for kind, src in ordered.items():
        report.files.append(FileReport(src.name, kind))
        pending.append((kind, src))
    try:
        _collect_keys(ordered, known, report)
        # ... then every row against them.
        for (kind, src), file_report in zip(pending, report.files, strict=True):
            _check_file(kind, src, known, report, file_report,
                        spool=spool / f"{kind}.pickle" if spool else None)
    except UnreadableFile as exc:
        report.add(Problem(getattr(exc, "file", ""), 0, "", str(exc)))
    return ordered


def _collect_keys(ordered: dict[str, Source], known: Known, report: ImportReport) -> None:
    for kind, src in ordered.items():
        for _, c in _rows_named(src):
            key = c.raw(KEY[kind])
            if kind == "staff":
                role = rules.ROLES.get(c.raw("role").lower())
                if key and role is not None:
                    known.staff.setdefault(key, role)
            elif kind == "customers":
                if key:
                    known.customers.add(key)
                    if c.raw("member_id"):
                        known.holder_members.setdefault(c.raw("member_id"), key)
            elif kind == "family":
                if key and c.raw("customer_no"):
                    known.family.setdefault(key, c.raw("customer_no"))
            elif kind == "policies" and key:
                known.policies.add(key)
    del report  # header problems are reported once, by _check_file


def _rows_named(src: Source) -> Iterator[tuple[int, Cells]]:
    try:
        yield from rows_of(src)
    except UnreadableFile as exc:
        exc.file = src.name  # type: ignore[attr-defined]
        raise


def _check_file(kind: str, src: Source, known: Known, report: ImportReport,
                file_report: FileReport, *, spool: Path | None) -> None:
    seen: dict[str, int] = {}
    check = _CHECKS[kind]
    out = spool.open("wb") if spool else None
    try:
        for line, c in rows_of(src, report):
            file_report.rows += 1
            record = parse.PARSERS[kind](c)
            key = record.get(KEY[kind])
            if key is not None:
                if key in seen:
                    c.problem(KEY[kind], f"duplicate {KEY[kind]} {key!r} (first on line "
                                         f"{seen[key]})")
                else:
                    seen[key] = line
            check(c, record, known)
            for p in c.problems:
                report.add(p)
            if out is not None and report.ok:
                pickle.dump(record, out, protocol=pickle.HIGHEST_PROTOCOL)
    except UnreadableFile as exc:
        report.add(Problem(src.name, 0, "", str(exc)))
    finally:
        if out is not None:
            out.close()


def _spooled(path: Path) -> Iterator[dict[str, Any]]:
    """Records written by this import's own validation pass (never anything from outside)."""
    with path.open("rb") as f:
        while True:
            try:
                yield pickle.load(f)  # noqa: S301 - our own file, written a moment ago
            except EOFError:
                return


def _check_staff(c: Cells, r: dict[str, Any], known: Known) -> None:
    sup = r["supervisor"]
    if sup:
        if sup not in known.staff:
            c.problem("supervisor", f"unknown supervisor {sup!r} (not in staff.csv or the book)")
        elif known.staff[sup] == UserRole.AGENT:
            c.problem("supervisor", f"{sup!r} is an agent, not a supervisor")
        elif sup == r["username"]:
            c.problem("supervisor", "a person cannot supervise themselves")


def _check_agent(c: Cells, column: str, username: str | None, known: Known) -> None:
    if username and username not in known.staff:
        c.problem(column, f"unknown agent {username!r} (not in staff.csv or the book)")


def _check_customer(c: Cells, r: dict[str, Any], known: Known) -> None:
    _check_agent(c, "agent", r["agent"], known)
    mid = r["member_id"]
    if mid and (mid in known.family or mid in known.other_members):
        c.problem("member_id", f"member_id {mid!r} already belongs to someone else")
    elif mid and known.holder_members.get(mid, r["customer_no"]) != r["customer_no"]:
        c.problem("member_id", f"member_id {mid!r} is customer {known.holder_members[mid]}'s")


def _check_family(c: Cells, r: dict[str, Any], known: Known) -> None:
    cno, mid = r["customer_no"], r["member_id"]
    if cno and cno not in known.customers:
        c.problem("customer_no", f"unknown customer_no {cno!r}")
    if mid and (mid in known.holder_members or mid in known.other_members):
        c.problem("member_id", f"member_id {mid!r} already belongs to a customer or staff")
    elif mid and known.family.get(mid, cno) != cno:
        c.problem("member_id", f"member_id {mid!r} is in customer {known.family[mid]}'s family")
    if r["authorized_until"] and not r["authorized_scopes"]:
        c.problem("authorized_scopes", "authorized_until without authorized_scopes")


def _check_policy(c: Cells, r: dict[str, Any], known: Known) -> None:
    cno, insured = r["customer_no"], r["insured"]
    if cno and cno not in known.customers:
        c.problem("customer_no", f"the policy's holder {cno!r} is missing (not in "
                                 "customers.csv or the book)")
    if insured and insured not in known.customers and insured not in known.family:
        c.problem("insured", f"unknown insured {insured!r} (a customer_no or a family "
                             "member_id)")


def _check_claim(c: Cells, r: dict[str, Any], known: Known) -> None:
    if r["policy_no"] and r["policy_no"] not in known.policies:
        c.problem("policy_no", f"unknown policy_no {r['policy_no']!r}")


def _check_circle(c: Cells, r: dict[str, Any], known: Known) -> None:
    if r["customer_no"] and r["customer_no"] not in known.customers:
        c.problem("customer_no", f"unknown customer_no {r['customer_no']!r}")
    _check_agent(c, "agent", r["agent"], known)


_CHECKS = {"staff": _check_staff, "customers": _check_customer, "family": _check_family,
           "policies": _check_policy, "claims": _check_claim, "circles": _check_circle}


def import_book(
    s: Session,
    sources: Sequence[Source],
    *,
    keyring: Keyring,
    naming: Naming,
    now: datetime,
    dry_run: bool = False,
    timezone: str = "Asia/Shanghai",
) -> ImportReport:
    """Validate all; write only if nothing is wrong and this is not a dry run.

    The caller owns the transaction: commit if `report.ok`, roll back otherwise.
    """
    from storage.book.writer import Writer  # noqa: PLC0415 - the write pass is its own module

    report = ImportReport(dry_run=dry_run)
    if not sources:
        report.add(Problem("", 0, "", "no files given"))
        return report
    with tempfile.TemporaryDirectory(prefix="corecircle-import-") as tmp:
        spool = Path(tmp)
        ordered = validate(s, sources, report, spool)
        if not report.ok or dry_run:
            return report
        writer = Writer(s, keyring=keyring, naming=naming, now=now, tz=ZoneInfo(timezone))
        for kind, file_report in zip(ordered, report.files, strict=True):
            writer.write(kind, _spooled(spool / f"{kind}.pickle"), file_report)
        writer.finish()
    return report

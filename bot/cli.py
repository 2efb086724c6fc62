"""The `corecircle` command: serve, scheduler, nlu parse, pii mask, scripts lint/export, db
upgrade, import, users, demo generate, care plan, keys reseal."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import logging
import logging.config
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.pii import mask
from storage.scripts import ScriptError, ScriptLibrary

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.settings import Settings


def _jsonl(stream: Any) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"line {n}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise SystemExit(f'line {n}: expected an object with a string "text"')
        yield obj


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from bot import logmask  # noqa: PLC0415
    from bot.app import InsecureConfig, check_webhook_auth  # noqa: PLC0415
    from bot.settings import Settings  # noqa: PLC0415

    # Every worker reads its settings from the environment, so flags become variables.
    if args.demo:
        os.environ["CORECIRCLE_DEMO"] = "true"
    if args.insecure_webhook:
        os.environ["CORECIRCLE_INSECURE_WEBHOOK"] = "true"
    settings = Settings()
    if (settings.demo and not settings.webhook_secret and not settings.insecure_webhook
            and not _loopback(args.host)):
        raise SystemExit(f"refusing to serve the unsigned demo webhook on {args.host}: set "
                         "CORECIRCLE_WEBHOOK_SECRET, bind 127.0.0.1, or pass --insecure-webhook")
    try:
        check_webhook_auth(settings)
    except InsecureConfig as exc:
        raise SystemExit(str(exc)) from exc
    if args.workers > 1 and not settings.redis_url:
        raise SystemExit(
            "--workers > 1 needs REDIS_URL: the in-memory state store (dialogs, locks, "
            "tokens) belongs to one process"
        )
    config = logmask.log_config(settings.log_level, json_lines=settings.log_json)
    logging.config.dictConfig(config)
    # One socket, N worker processes (uvicorn's supervisor restarts one that dies); each
    # worker builds its own app from the environment through the factory.
    uvicorn.run(
        "bot.app:create_served_app", factory=True, workers=args.workers,
        host=args.host, port=args.port or settings.port,
        log_level=settings.log_level.lower(), log_config=config, timeout_keep_alive=5,
        limit_concurrency=512,
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_scheduler(_: argparse.Namespace) -> None:
    """The scan and the outbox in a process of their own (production); stops on SIGTERM/SIGINT."""
    from bot.scheduler import run_standalone  # noqa: PLC0415 - only this command needs it
    from bot.settings import Settings  # noqa: PLC0415

    settings = Settings(scheduler_enabled=True)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    _fault_hook_from_env()
    run_standalone(settings)


def _fault_hook_from_env() -> None:
    """For the crash tests only: `CORECIRCLE_TEST_PAUSE_AFTER_CLAIM=<outbox>:<seconds>` makes this
    process write the claimed ids to `CORECIRCLE_TEST_PAUSE_MARKER` (a file) and sleep right
    after a claim of that outbox commits, so a test can kill -9 it between claim and send."""
    spec = os.environ.get("CORECIRCLE_TEST_PAUSE_AFTER_CLAIM")
    if not spec:
        return
    import time  # noqa: PLC0415

    from storage import outbox  # noqa: PLC0415

    name, _, seconds = spec.partition(":")
    marker = os.environ.get("CORECIRCLE_TEST_PAUSE_MARKER")

    def pause(box: str, ids: list[int]) -> None:
        if box != name:
            return
        if marker:
            with open(marker, "a", encoding="utf-8") as f:
                f.write(" ".join(map(str, ids)) + "\n")
        time.sleep(float(seconds or 60))

    outbox.on_claim(pause)
    logging.getLogger(__name__).warning("fault test: pausing %s s after each %s claim",
                                        seconds, name)


def cmd_nlu_parse(args: argparse.Namespace) -> None:
    from bot.services import train_engine  # noqa: PLC0415 - training is slow; only here

    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    engine = train_engine(ScriptLibrary())
    if args.jsonl:
        for obj in _jsonl(sys.stdin):
            _emit(engine.parse(obj["text"], now).as_rasa())
        return
    text = " ".join(args.text) if args.text else sys.stdin.read().strip()
    _emit(engine.parse(text, now).as_rasa())


def cmd_pii_mask(args: argparse.Namespace) -> None:
    if args.jsonl:
        for obj in _jsonl(sys.stdin):
            _emit({"masked": mask(obj["text"])})
    else:
        _emit({"masked": mask(" ".join(args.text) if args.text else sys.stdin.read())})


def cmd_scripts_lint(_: argparse.Namespace) -> None:
    try:
        problems = ScriptLibrary().lint()
    except ScriptError as exc:
        raise SystemExit(f"scripts_zh cannot be loaded: {exc}") from exc
    for p in problems:
        print(p)
    if problems:
        raise SystemExit(f"{len(problems)} problem(s) in scripts_zh")
    print("scripts_zh: ok")


def cmd_scripts_export(_: argparse.Namespace) -> None:
    for text, intent in ScriptLibrary().examples():
        _emit({"text": text, "intent": intent})


def cmd_db_upgrade(_: argparse.Namespace) -> None:
    from bot.settings import Settings  # noqa: PLC0415
    from storage.db import make_engine, upgrade  # noqa: PLC0415

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(settings.resolved_database_url()))
    print("database schema is current")


def _database() -> tuple[Settings, sessionmaker[Session]]:
    from bot.settings import Settings  # noqa: PLC0415
    from storage.db import make_engine, make_sessionmaker, upgrade  # noqa: PLC0415

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    return settings, make_sessionmaker(engine)


def cmd_import(args: argparse.Namespace) -> None:
    from bot.book import run_import  # noqa: PLC0415
    from bot.keys import build_keyring  # noqa: PLC0415
    from storage.errors import AppError  # noqa: PLC0415

    settings, sessions = _database()
    try:
        report = run_import(
            sessions, [Path(p) for p in args.paths], keyring=build_keyring(settings),
            scripts=ScriptLibrary(), settings=settings, dry_run=args.dry_run,
        )
    except AppError as exc:
        raise SystemExit(f"{exc.code}: {exc.message}") from exc
    if args.json:
        _emit(report.as_dict())
    else:
        for f in report.files:
            print(f"{f.file}: {f.rows} rows, {f.created} created, {f.updated} updated, "
                  f"{f.unchanged} unchanged" if report.ok else f"{f.file}: {f.rows} rows")
        for p in report.problems:
            print(p, file=sys.stderr)
        more = report.problem_count - len(report.problems)
        if more:
            print(f"... and {more} more problem(s)", file=sys.stderr)
        if report.ok:
            print("dry run: nothing written" if args.dry_run else "imported")
    if not report.ok:
        raise SystemExit(f"{report.problem_count} problem(s): nothing written")


def _plan_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def cmd_care_plan(args: argparse.Namespace) -> None:
    """What the daily care run would send on a date; nothing is sent or written."""
    from circles.care_store import plan_day  # noqa: PLC0415

    settings, sessions = _database()
    scripts = ScriptLibrary()
    count = 0
    try:
        with sessions() as s:
            for item in plan_day(s, scripts, settings.care_settings(), args.date,
                                 bot_name=settings.bot_name):
                count += 1
                if args.jsonl:
                    _emit(item.public())
                else:
                    to = item.recipient or "group"
                    print(f"{item.send_at.isoformat()}  {item.kind:<15} {item.circle} -> {to} "
                          f"[{item.route}] {item.script_id}: {item.text}")
    finally:
        sessions.kw["bind"].dispose()
    if not args.jsonl:
        print(f"{count} message(s) planned for {args.date.isoformat()}; nothing sent")


def _read_password(from_stdin: bool, *, required: bool) -> str | None:
    """Never from an argument (it would sit in the shell history and the process list)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise SystemExit("no password on stdin")
        return line
    if not sys.stdin.isatty():
        if required:
            raise SystemExit("no terminal to ask for the password: use --password-stdin")
        return None
    first = getpass.getpass("password (empty: none yet): " if not required else "password: ")
    if not first and not required:
        return None
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


def _account_command(args: argparse.Namespace) -> None:
    from bot import accounts  # noqa: PLC0415
    from bot.book import naming  # noqa: PLC0415
    from storage.db import transaction  # noqa: PLC0415
    from storage.enums import UserRole  # noqa: PLC0415
    from storage.errors import AppError  # noqa: PLC0415

    settings, sessions = _database()
    try:
        with transaction(sessions) as s:
            if args.sub == "add":
                password = _read_password(args.password_stdin, required=False)
                account = accounts.add_user(
                    session=s, username=args.username, role=UserRole(args.role), name=args.name,
                    password=password, naming=naming(ScriptLibrary(), settings),
                    now=datetime.now(UTC),
                )
            elif args.sub == "set-password":
                password = _read_password(args.password_stdin, required=True)
                assert password is not None
                account = accounts.set_password(session=s, username=args.username,
                                                password=password)
            else:
                account = accounts.deactivate(session=s, username=args.username)
    except AppError as exc:
        raise SystemExit(f"{exc.code}: {exc.message}") from exc
    _emit(asdict(account))


def cmd_demo_generate(args: argparse.Namespace) -> None:
    from storage.book.synthetic import write_book  # noqa: PLC0415

    counts = write_book(Path(args.out), customers=args.customers, seed=args.seed,
                        agents=args.agents)
    _emit(counts)


def cmd_keys_reseal(args: argparse.Namespace) -> None:
    from bot.keys import build_keyring  # noqa: PLC0415
    from storage.crypto import reseal_all  # noqa: PLC0415
    from storage.db import transaction  # noqa: PLC0415

    settings, sessions = _database()
    with transaction(sessions) as s:
        _emit({"resealed": reseal_all(s, build_keyring(settings))})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corecircle", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--demo", action="store_true", help="seed the demo circle and logins")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes on the one port (more than 1 needs REDIS_URL)")
    serve.add_argument(
        "--insecure-webhook", action="store_true",
        help="accept unsigned POST /api/v1/messages without a webhook secret (never in "
        "production: anyone who can reach it can speak as any member)",
    )
    serve.set_defaults(func=cmd_serve)

    sched = sub.add_parser(
        "scheduler", help="run the SLA/follow-up scan and the outbox as their own process"
    )
    sched.set_defaults(func=cmd_scheduler)

    nlu = sub.add_parser("nlu", help="the intent engine").add_subparsers(dest="sub", required=True)
    parse = nlu.add_parser("parse", help="parse text into Rasa's format")
    parse.add_argument("text", nargs="*")
    parse.add_argument("--jsonl", action="store_true", help='stdin lines {"text": ...}')
    parse.add_argument("--now", help="ISO-8601 reference time for time entities")
    parse.set_defaults(func=cmd_nlu_parse)

    pii = sub.add_parser("pii", help="personal data").add_subparsers(dest="sub", required=True)
    pmask = pii.add_parser("mask", help="mask ID-card, phone and bank-card numbers")
    pmask.add_argument("text", nargs="*")
    pmask.add_argument("--jsonl", action="store_true")
    pmask.set_defaults(func=cmd_pii_mask)

    scripts = sub.add_parser("scripts", help="the preset scripts").add_subparsers(
        dest="sub", required=True
    )
    scripts.add_parser("lint", help="check scripts_zh").set_defaults(func=cmd_scripts_lint)
    export = scripts.add_parser("export", help="print every training example")
    export.add_argument("--jsonl", action="store_true", help="one {text, intent} per line")
    export.set_defaults(func=cmd_scripts_export)

    db = sub.add_parser("db", help="the database").add_subparsers(dest="sub", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    _add_book_commands(sub)
    return p


def _add_book_commands(sub: Any) -> None:
    """import, users, demo generate, keys reseal: the book of business and its people."""
    imp = sub.add_parser("import", help="import the book of business (see README)")
    imp.add_argument("paths", nargs="+", help="staff.csv, customers.csv, ... or a directory")
    imp.add_argument("--dry-run", action="store_true", help="check only; write nothing")
    imp.add_argument("--json", action="store_true", help="the report as one JSON object")
    imp.set_defaults(func=cmd_import)

    users = sub.add_parser("users", help="console logins").add_subparsers(dest="sub",
                                                                         required=True)
    add = users.add_parser("add", help="add a login (password from a prompt or stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--name")
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(func=_account_command)
    setpw = users.add_parser("set-password", help="set a login's password")
    setpw.add_argument("username")
    setpw.add_argument("--password-stdin", action="store_true")
    setpw.set_defaults(func=_account_command)
    deact = users.add_parser("deactivate", help="stop a login")
    deact.add_argument("username")
    deact.set_defaults(func=_account_command)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="sub", required=True)
    gen = demo.add_parser("generate", help="write a synthetic book of business")
    gen.add_argument("--customers", type=int, required=True)
    gen.add_argument("--out", required=True)
    gen.add_argument("--agents", type=int, default=None, help="default: one per 400 customers")
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(func=cmd_demo_generate)

    care = sub.add_parser("care", help="proactive care").add_subparsers(dest="sub",
                                                                       required=True)
    cplan = care.add_parser("plan", help="print what the daily care run would send on a date")
    cplan.add_argument("--date", type=_plan_date, required=True, help="YYYY-MM-DD")
    cplan.add_argument("--jsonl", action="store_true", help="one JSON object a line")
    cplan.set_defaults(func=cmd_care_plan)

    keys = sub.add_parser("keys", help="data keys").add_subparsers(dest="sub", required=True)
    keys.add_parser("reseal", help="re-seal every personal number under the current data key"
                    ).set_defaults(func=cmd_keys_reseal)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

"""The `corecircle` command: serve, scheduler, nlu parse, pii mask, scripts lint/export, db
upgrade."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from storage.pii import mask
from storage.scripts import ScriptError, ScriptLibrary


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

    from bot.settings import Settings  # noqa: PLC0415

    if args.demo:
        os.environ["CORECIRCLE_DEMO"] = "true"  # every worker reads its settings itself
    settings = Settings()
    if args.workers > 1 and not settings.redis_url:
        raise SystemExit(
            "--workers > 1 needs REDIS_URL: the in-memory state store (dialogs, locks, "
            "tokens) belongs to one process"
        )
    # One socket, N worker processes (uvicorn's supervisor restarts one that dies); each
    # worker builds its own app from the environment through the factory.
    uvicorn.run(
        "bot.app:create_served_app", factory=True, workers=args.workers,
        host=args.host, port=args.port or settings.port,
        log_level=settings.log_level.lower(), timeout_keep_alive=5, limit_concurrency=512,
    )


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corecircle", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--demo", action="store_true", help="seed the demo circle and logins")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes on the one port (more than 1 needs REDIS_URL)")
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
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

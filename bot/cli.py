"""The `corecircle` command: serve, nlu parse, pii mask, scripts lint/export, db upgrade."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import logging.config
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

    from bot import logmask  # noqa: PLC0415
    from bot.app import InsecureConfig, create_app  # noqa: PLC0415
    from bot.settings import Settings  # noqa: PLC0415

    overrides: dict[str, Any] = {"demo": True} if args.demo else {}
    if args.insecure_webhook:
        overrides["insecure_webhook"] = True
    settings = Settings(**overrides)
    if (settings.demo and not settings.webhook_secret and not settings.insecure_webhook
            and not _loopback(args.host)):
        raise SystemExit(f"refusing to serve the unsigned demo webhook on {args.host}: set "
                         "CORECIRCLE_WEBHOOK_SECRET, bind 127.0.0.1, or pass --insecure-webhook")
    config = logmask.log_config(settings.log_level, json_lines=settings.log_json)
    logging.config.dictConfig(config)
    try:
        app = create_app(settings)
    except InsecureConfig as exc:
        raise SystemExit(str(exc)) from exc
    uvicorn.run(
        app, host=args.host, port=args.port or settings.port,
        log_level=settings.log_level.lower(), log_config=config, timeout_keep_alive=5,
        limit_concurrency=512,
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
    serve.add_argument(
        "--insecure-webhook", action="store_true",
        help="accept unsigned POST /api/v1/messages without a webhook secret (never in "
        "production: anyone who can reach it can speak as any member)",
    )
    serve.set_defaults(func=cmd_serve)

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

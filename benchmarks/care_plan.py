"""Planning a day's proactive care over a synthetic book of business: time and query count.

Writes a synthetic book (`corecircle demo generate`: by default 20,000 customers, about 50,000
family members and 60,000 policies, groups for half the families), imports it into a fresh
database, then plans several days as `corecircle care plan --date` does (every family served in
a group; nothing written) and prints the wall and CPU time of each plan, how many messages it
holds by kind, and how many SQL statements it took. The target is under 30 s a plan. With
`--run`, the daily run of the last day is timed too (its messages written into the follow-up
outbox at 06:00 that day). Usage:

    .venv/bin/python benchmarks/care_plan.py [--customers 20000] [--database-url URL]
        [--dates 2027-09-15,2027-04-06] [--run]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from sqlalchemy import event

from benchmarks.pipeline import machine
from bot.book import run_import
from bot.keys import build_keyring
from bot.settings import Settings
from circles.care_store import plan_day, run
from storage.book.synthetic import write_book
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.scripts import ScriptLibrary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    tomorrow = date.today() + timedelta(days=1)
    ap.add_argument("--dates", default=f"{tomorrow.isoformat()},2027-09-15,2027-02-06",
                    help="comma-separated days to plan (default: tomorrow, 中秋 and 春节 2027)")
    ap.add_argument("--run", action="store_true", help="also time the last day's daily run")
    args = ap.parse_args()
    days = [date.fromisoformat(d) for d in args.dates.split(",")]
    with tempfile.TemporaryDirectory(prefix="corecircle-care-") as tmp:
        folder = Path(tmp) / "book"
        counts = write_book(folder, customers=args.customers)
        settings = Settings(data_dir=Path(tmp) / "data", database_url=args.database_url)
        settings.data_dir.mkdir()
        engine = make_engine(settings.resolved_database_url())
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        scripts = ScriptLibrary()
        started = perf_counter()
        report = run_import(sessions, [folder], keyring=build_keyring(settings),
                            scripts=scripts, settings=settings)
        imported = perf_counter() - started
        if not report.ok:
            raise SystemExit("\n".join(str(p) for p in report.problems[:20]))
        statements = [0]

        def count(*_: Any) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        rows = []
        for day in days:
            statements[0] = 0
            started, cpu = perf_counter(), process_time()
            with sessions() as s:
                kinds = Counter(i.kind for i in plan_day(
                    s, scripts, settings.care_settings(), day, bot_name=settings.bot_name))
            rows.append((day, perf_counter() - started, process_time() - cpu,
                         statements[0], kinds))
        ran = None
        if args.run:
            care = settings.care_settings()
            at = datetime.combine(days[-1], time(6), tzinfo=care.zone)
            started = perf_counter()
            report_ = run(sessions, scripts, care, now=at, bot_name=settings.bot_name)
            ran = (perf_counter() - started, report_.created if report_ else 0)
        engine.dispose()
    print(f"machine: {machine()}")
    print(f"database: {engine.dialect.name}")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"imported in {imported:.1f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work shares the cores)")
    print("| day | wall s | CPU s | SQL statements | messages | by kind |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for day, took, cpu, n, kinds in rows:
        by_kind = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
        print(f"| {day} | {took:.2f} | {cpu:.2f} | {n} | {sum(kinds.values()):,} | {by_kind} |")
    if ran is not None:
        print(f"daily run of {days[-1]}: {ran[1]:,} follow-ups written in {ran[0]:.1f} s")


if __name__ == "__main__":
    main()

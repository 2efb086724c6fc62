"""Importing a synthetic book of business: time and peak memory.

Writes a synthetic book (`corecircle demo generate`: by default 20,000 customers, about 50,000
family members and 60,000 policies) into a temporary folder, then imports it into a fresh
database twice (first load, then the nightly re-import of unchanged files) and prints the
figures with the machine described. CPU seconds are this process's own (the database is
in-process for SQLite), so they say what the import costs when other work shares the cores; the
wall time says what it took here. Peak RSS is of this process, measured after generating
the files, so it is the import's. Usage:

    .venv/bin/python benchmarks/import_book.py [--customers 20000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.pipeline import machine
from bot.book import run_import
from bot.keys import build_keyring
from bot.settings import Settings
from storage.book.synthetic import write_book
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.scripts import ScriptLibrary


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="corecircle-bench-") as tmp:
        folder = Path(tmp) / "book"
        started = time.perf_counter()
        counts = write_book(folder, customers=args.customers)
        generated = time.perf_counter() - started
        settings = Settings(data_dir=Path(tmp) / "data", database_url=args.database_url)
        settings.data_dir.mkdir()
        engine = make_engine(settings.resolved_database_url())
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        keyring, scripts = build_keyring(settings), ScriptLibrary()
        before = peak_rss_mb()
        rows = []
        for label in ("first import", "re-import, unchanged"):
            started, cpu = time.perf_counter(), time.process_time()
            report = run_import(sessions, [folder], keyring=keyring, scripts=scripts,
                                settings=settings)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            if not report.ok:
                raise SystemExit("\n".join(str(p) for p in report.problems[:20]))
            done = {f.kind: (f.created, f.updated, f.unchanged) for f in report.files}
            rows.append((label, took, cpu, done))
        engine.dispose()
    print(f"machine: {machine()}")
    print(f"database: {engine.dialect.name}")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"generated in {generated:.1f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work shares the cores)")
    print("| run | wall s | CPU s (this process) | rows/s (wall) | created | unchanged |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    total = sum(counts.values())
    for label, took, cpu, done in rows:
        created = sum(c for c, _, _ in done.values())
        unchanged = sum(u for _, _, u in done.values())
        print(f"| {label} | {took:.1f} | {cpu:.1f} | {total / took:,.0f} | {created:,} "
              f"| {unchanged:,} |")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before importing: {before:.0f} MB)")


if __name__ == "__main__":
    main()

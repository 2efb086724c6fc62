"""`corecircle import`, `users`, `demo generate` and `keys reseal` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.crypto import Keyring, KeyringError, new_key_spec
from tests.test_book_import import BOOK, write_book

CLI = [sys.executable, "-m", "bot.cli"]


def run(data: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DATABASE_URL", "REDIS_URL", "CORECIRCLE_DATABASE_URL")}
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=300, check=False,
        env={**clean, "CORECIRCLE_DATA_DIR": str(data), **env},
    )


def test_import_reports_problems_by_line_and_exits_non_zero(tmp_path: Path) -> None:
    book = write_book(tmp_path / "book", {
        **BOOK, "claims.csv": BOOK["claims.csv"] + "ZC9,ZP001,已报案,1,2026-13-01,,\n"})
    out = run(tmp_path / "data", "import", *map(str, book), "--json")
    assert out.returncode != 0
    report = json.loads(out.stdout)
    assert report["written"] is False
    assert [(p["file"], p["line"], p["column"]) for p in report["problems"]] == [
        ("claims.csv", 3, "submitted_at")]
    fixed = write_book(tmp_path / "fixed", BOOK)
    dry = run(tmp_path / "data", "import", str(tmp_path / "fixed"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing written" in dry.stdout
    done = run(tmp_path / "data", "import", *map(str, fixed))
    assert done.returncode == 0, done.stderr
    assert "policies.csv: 2 rows, 2 created" in done.stdout


def test_users_add_set_password_deactivate_never_take_a_password_argument(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    added = run(data, "users", "add", "ops", "--role", "admin", "--name", "运维",
                "--password-stdin", stdin="a fine passphrase\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["can_log_in"] is True
    again = run(data, "users", "add", "ops", "--role", "admin", "--password-stdin",
                stdin="whatever else\n")
    assert again.returncode != 0
    assert "USER_EXISTS" in again.stderr
    agent = run(data, "users", "add", "li", "--role", "agent")  # no terminal: no password yet
    assert json.loads(agent.stdout)["can_log_in"] is False
    weak = run(data, "users", "set-password", "li", "--password-stdin", stdin="short\n")
    assert weak.returncode != 0
    ok = run(data, "users", "set-password", "li", "--password-stdin", stdin="long enough pw\n")
    assert json.loads(ok.stdout)["can_log_in"] is True
    off = run(data, "users", "deactivate", "li")
    assert json.loads(off.stdout)["active"] is False
    assert run(data, "users", "add", "x", "--role", "agent", "--password", "p").returncode != 0


def test_a_generated_book_imports_clean(tmp_path: Path) -> None:
    gen = run(tmp_path / "data", "demo", "generate", "--customers", "60", "--out",
              str(tmp_path / "syn"))
    counts = json.loads(gen.stdout)
    assert counts["customers"] == 60
    assert counts["family"] > 60
    assert counts["policies"] > 60
    out = run(tmp_path / "data", "import", str(tmp_path / "syn"), "--json")
    assert out.returncode == 0, out.stdout[-2000:]


def test_rotation_old_values_still_open_and_reseal_moves_them(tmp_path: Path) -> None:
    old_key, hash_key = new_key_spec("k1"), new_key_spec("h1")
    old = Keyring.from_specs(old_key, [], hash_key)
    token = old.seal("13812345678")
    new = Keyring.from_specs(new_key_spec("k2"), [old_key], hash_key)
    assert new.open(token) == "13812345678"
    assert new.reseal(token).startswith("v1:k2:")
    assert new.hash("138 1234 5678") == old.hash("13812345678")  # matching survives
    with pytest.raises(KeyringError):
        Keyring.from_specs(new_key_spec("k3"), [], hash_key).open(token)
    book = write_book(tmp_path / "book", BOOK)
    env = {"CORECIRCLE_DATA_KEY": old_key, "CORECIRCLE_DATA_HASH_KEY": hash_key}
    assert run(tmp_path / "data", "import", *map(str, book), **env).returncode == 0
    rotated = {"CORECIRCLE_DATA_KEY": new_key_spec("k2"),
               "CORECIRCLE_DATA_OLD_KEYS": json.dumps([old_key]),
               "CORECIRCLE_DATA_HASH_KEY": hash_key}
    out = run(tmp_path / "data", "keys", "reseal", **rotated)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["resealed"] == 3  # 赵强's phone and ID, 孙丽's phone
    again = run(tmp_path / "data", "keys", "reseal", **rotated)
    assert json.loads(again.stdout)["resealed"] == 0

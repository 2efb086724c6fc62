"""Property-based API test: schemathesis against the app in-process, without a token and with a
supervisor's: zero server errors and no status code the OpenAPI document does not describe."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.conftest import login

EXAMPLES = 25  # per operation and token: the whole run stays well under two minutes here
SEED = 20261202


@pytest.fixture
def app(make_client: Callable[..., TestClient], tmp_path: Any) -> FastAPI:
    client = make_client(database_url=f"sqlite:///{tmp_path / 'fuzz.db'}",
                         scheduler_enabled=False, login_free_failures=100_000,
                         outbound_dispatch=False)
    return client.app  # type: ignore[return-value]


def _fuzz_operation(operation: Any, headers: dict[str, str], failures: list[str]) -> int:
    """Up to EXAMPLES generated requests against one operation; failures are collected."""
    label = operation.label
    calls = 0

    @given(case=operation.as_strategy(), _n=st.just(0))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any, _n: int) -> None:
        nonlocal calls
        calls += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 - a crash in the app: reported below
            failures.append(f"{label} raised {type(exc).__name__}: {exc}")
            return
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except FailureGroup as group:  # collected, reported together below
            kinds = ", ".join(sorted({type(e).__name__ for e in group.exceptions}))
            failures.append(f"{label} -> {response.status_code}: "
                            f"{response.text[:160]!r} ({kinds})")

    run()
    return calls


def _fuzz(app: FastAPI, headers: dict[str, str]) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls = sum(_fuzz_operation(result.ok(), headers, failures)
                for result in schema.get_all_operations())
    return failures, calls


@pytest.mark.parametrize("who", ["anonymous", "demo-supervisor"])
def test_no_server_errors_and_no_undocumented_statuses(app: FastAPI, who: str) -> None:
    headers: dict[str, str] = {}
    if who != "anonymous":
        headers = login(TestClient(app), who)
    started = time.monotonic()
    failures, calls = _fuzz(app, headers)
    print(f"schemathesis {who}: {calls} calls in {time.monotonic() - started:.1f} s")
    assert failures == [], "\n".join(sorted(set(failures))[:40])

"""Channel fixtures: one app per module (building an app runs the migrations: the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from tests.channels.wx import PLAIN_APP, WECOM_APPS


@pytest.fixture(scope="module")
def wx(tmp_path_factory: pytest.TempPathFactory, nlu: IntentEngine) -> Iterator[TestClient]:
    """The demo app (safe mode), a plain-mode app and two WeCom apps (a corp app and an AI bot),
    on SQLite and the memory state store."""
    data = tmp_path_factory.mktemp("wx")
    settings = Settings(data_dir=data, demo=True, database_url=f"sqlite:///{data}/wx.db",
                        wechat_apps=PLAIN_APP, wecom_apps=WECOM_APPS)
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        yield client

"""G18: a bad EncodingAESKey or an empty token refuses to start with a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.channels.config import ChannelConfigError, load_apps
from bot.settings import Settings


@pytest.mark.parametrize(("app", "needle"), [
    ({"token": "t", "aes_key": "a" * 42, "appid": "wx1"}, "43 characters"),
    ({"token": "t", "aes_key": "!" * 43, "appid": "wx1"}, "43 characters"),
    ({"token": "", "appid": "wx1"}, "token is empty"),
    ({"token": "t", "mode": "safe", "appid": "wx1"}, "needs aes_key"),
])
def test_bad_app_config_is_refused(app: dict[str, str], needle: str) -> None:
    with pytest.raises(ChannelConfigError, match=needle):
        load_apps(Settings(wechat_apps={"x": app}))


def test_process_refuses_to_start(tmp_path: object) -> None:
    code = ("from bot.app import create_app; from bot.settings import Settings;"
            f"create_app(Settings(data_dir='{tmp_path}', wechat_apps="
            "{'x': {'token': 't', 'aes_key': 'short', 'appid': 'wx'}}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode != 0
    assert "EncodingAESKey" in run.stderr

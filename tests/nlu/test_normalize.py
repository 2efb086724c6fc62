"""Normalisation: many ways of typing one question collapse to one string."""

import time

import pytest

from bot.nlu.normalize import mentions, normalize, strip_for_display


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("保單續期", "保单续期"),
        ("我想問一下下次保費什麼時候交", "我想问一下下次保费什么时候交"),
        ("@小助手\u2005下次保费", "下次保费"),
        ("@小助手 下次保费", "下次保费"),
        ("下次保费@小助手", "下次保费"),
        ("@小助手\u2005@李娜\u2005帮我看看", "帮我看看"),
        ("\u202e费保\u202c多少", "费保多少"),
        ("保\u200b费\u2060多\ufeff少\u200d", "保费多少"),
        ("保费\x07多少", "保费多少"),
        ("😀👍🏻🎉", ""),
        ("[微笑][捂脸]", ""),
        ("谢谢🙏🏻🙏🏻", "谢谢"),
        ("ＡＢＣ１２３　ｈｅｌｌｏ", "abc123 hello"),
        ("保费多少！！！", "保费多少!"),
        ("什么时候到账？？？", "什么时候到账?"),
        ("真的吗？！？", "真的吗?"),
        ("好的。。。", "好的…"),
        ("好的……", "好的…"),
        ("  保费   多少 \n 呢 ", "保费 多少 呢"),
        ("CC2024000123 怎么查", "cc2024000123 怎么查"),
        ("保额1.2万", "保额1.2万"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_is_idempotent() -> None:
    once = normalize("@小助手\u2005保單續期！！😀 ＯＫ？？")
    assert normalize(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@小助手\u2005下次保费", ["小助手"]),
        ("@小助手 @李娜 你好", ["小助手", "李娜"]),
        ("你好@小助手", ["小助手"]),
        ("@Bot\u2005hi", ["Bot"]),
        ("我的邮箱是abc@qq.com 谢谢", []),
        ("没有人被提到", []),
        ("@\u200b小助手\u2005保费", ["小助手"]),
    ],
)
def test_mentions(text: str, expected: list[str]) -> None:
    assert mentions(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u202e保费\u202c", "保费"),
        ("保\u200b费\u2066x\u2069", "保费x"),
        ("好的👍🏻", "好的👍🏻"),
        ("👨\u200d👩\u200d👧 一家人", "👨\u200d👩\u200d👧 一家人"),
        ("保\u200d费", "保费"),
        ("第一行\r\n第二行\t完", "第一行\n第二行\t完"),
        ("响铃\x07", "响铃"),
    ],
)
def test_strip_for_display_keeps_emoji_and_drops_tricks(text: str, expected: str) -> None:
    assert strip_for_display(text) == expected


def test_normalize_is_fast_on_a_chat_sized_message() -> None:
    text = "@小助手\u2005我想問一下保單續期的事情，下次保費什麼時候交？？😀謝謝！！！老師您好"
    normalize(text)  # build the converter outside the measurement
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        normalize(text)
    assert (time.perf_counter() - started) / runs < 0.0002

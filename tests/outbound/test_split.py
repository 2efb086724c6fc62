"""G28: long text split into ≤ 2048-byte parts on character boundaries, numbered, in order."""

from bot.outbound.split import split_text


def test_g28_five_thousand_cjk_characters() -> None:
    text = "保" * 2500 + "险" * 2500
    parts = split_text(text)
    assert len(parts) > 1
    assert all(len(p.encode()) <= 2048 for p in parts)
    n = len(parts)
    assert [p.split(" ", 1)[0] for p in parts] == [f"({i}/{n})" for i in range(1, n + 1)]
    assert "".join(p.split(" ", 1)[1] for p in parts) == text


def test_short_text_is_one_unlabelled_part() -> None:
    assert split_text("你好") == ["你好"]


def test_emoji_are_never_cut() -> None:
    parts = split_text("😀" * 1000, limit=100)
    assert all(len(p.encode()) <= 100 for p in parts)
    assert "".join(p.split(" ", 1)[1] for p in parts) == "😀" * 1000

"""Long text split into parts the platforms accept (≤ 2048 UTF-8 bytes), numbered, in order."""

from __future__ import annotations

TEXT_MAX_BYTES = 2048
ROBOT_MARKDOWN_MAX_BYTES = 4096


def _label(i: int, n: int) -> str:
    return f"({i}/{n}) "


def _cut(text: str, budget: int) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for ch in text:
        width = len(ch.encode())
        if size + width > budget:
            parts.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += width
    if current:
        parts.append("".join(current))
    return parts


def split_text(text: str, limit: int = TEXT_MAX_BYTES) -> list[str]:
    """One part if it fits; else parts on character boundaries, each prefixed "(i/n) "."""
    if len(text.encode()) <= limit:
        return [text]
    n = 2
    while True:  # the label grows with n; recut until the count is stable
        budget = limit - len(_label(n, n).encode())
        pieces = _cut(text, budget)
        if len(pieces) <= n:
            return [_label(i, len(pieces)) + p for i, p in enumerate(pieces, 1)]
        n = len(pieces)

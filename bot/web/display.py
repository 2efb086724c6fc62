"""How stored text and times are shown on the pages: escaped by Jinja, controls neutralised,
times in Asia/Shanghai."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from storage.text import strip_controls

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Bidi embeddings, overrides and isolates, zero-width characters, word joiner, BOM: they can
# reorder or hide what a customer wrote ("Trojan Source"); the page shows the text without them.
INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def neutral(value: object) -> object:
    """Jinja's `finalize`: every string printed on a page loses control characters."""
    if isinstance(value, Markup):
        return value  # built by a filter below from neutralised, escaped pieces
    if isinstance(value, str):
        return INVISIBLE.sub("", strip_controls(value))
    return value


def local(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if value is None:
        return "-"
    return value.astimezone(SHANGHAI).strftime(fmt)


def span(delta: timedelta) -> str:
    """A duration as a person says it: 3分钟, 2小时5分, 1天3小时."""
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def countdown(deadline: datetime | None, now: datetime) -> str:
    if deadline is None:
        return "-"
    left = deadline - now
    return f"剩 {span(left)}" if left.total_seconds() >= 0 else f"超时 {span(left)}"


def masked(name: str | None) -> str:
    """A person's name on a list: the surname only (王建国 -> 王**)."""
    name = (name or "").strip()
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else (name or "-")


def initial(name: str | None) -> str:
    """The avatar letter: the last character of a Chinese name (李娜 -> 娜), else the first."""
    name = (name or "?").strip() or "?"
    return name[-1] if re.fullmatch(r"[\u4e00-\u9fff]{2,4}", name) else name[0].upper()


MENTION = re.compile(r"@[^\s@]+")


def mentions(text: str) -> Markup:
    """Escaped text with each @name highlighted, as WeChat shows it."""
    clean = str(neutral(text))
    out, last = [], 0
    for m in MENTION.finditer(clean):
        out += [escape(clean[last:m.start()]), Markup('<span class="at">%s</span>') % m.group()]
        last = m.end()
    out.append(escape(clean[last:]))
    return Markup("").join(out)

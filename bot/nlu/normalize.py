"""Intent engine, step 1: normalise chat text so that one script example matches many spellings."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

# Zero-width and bidi-control characters: invisible, but they split words and can reorder what
# an agent sees (an RLO can make "退保" display as something else).
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b\u200c\u200e\u200f"  # soft hyphen, marks, zero-width (not ZWJ)
    "\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # bidi embeddings, isolates, BOM
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}\u200d]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_EMOJI_CLASS = (
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, skin tones
    "\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff"  # watches, misc symbols, dingbats, stars
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u3030\u303d\u3297\u3299"
    "\ufe00-\ufe0f\u20e3\U000e0000-\U000e007f"  # variation selectors, keycap, tags
)
# WeChat's own stickers arrive as bracketed names: [微笑] [捂脸].
_EMOJI_RE = re.compile(f"[{_EMOJI_CLASS}\u200d]+|\\[[\u4e00-\u9fff]{{1,4}}\\]")
# Display keeps a ZWJ only where it glues two emoji into one (family, profession emoji).
_DISPLAY_STRIP_RE = re.compile(
    f"[{_INVISIBLE}]|(?<![{_EMOJI_CLASS}])\u200d|\u200d(?![{_EMOJI_CLASS}])"
)
_TERMINATORS = r"\s,，:：;；!！?？。、"
_MENTION_RE = re.compile(
    rf"(?<![0-9A-Za-z._%+\-])[@＠](?P<name>[^{_TERMINATORS}@＠]{{1,32}})"
    rf"(?P<sep>\s|(?=[{_TERMINATORS}])|$)"
)
_ELLIPSIS_RE = re.compile(r"[.。…⋯]{2,}")
_BANG_QUESTION_RE = re.compile(r"[!?]{2,}")
_REPEAT_PUNCT_RE = re.compile(r"([^\w\s])\1+")
_SPACE_RE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    """One shared converter, built on first use: loading the dictionaries costs ~10 ms."""
    return opencc.OpenCC("t2s")


def _strip_invisible(text: str) -> str:
    """Remove zero-width, bidi and control characters that carry no meaning."""
    return _CONTROL_RE.sub("", _INVISIBLE_RE.sub("", text))


def mentions(text: str) -> list[str]:
    """The @names in a message, in order; a name ends at WeChat's U+2005, a space or the end."""
    return [m.group("name") for m in _MENTION_RE.finditer(_strip_invisible(text))]


def _collapse_punct(text: str) -> str:
    """！！！ and ？？ and 。。。 say no more than one mark does."""
    text = _ELLIPSIS_RE.sub("…", text)
    text = _BANG_QUESTION_RE.sub(lambda m: "?" if "?" in m.group() else "!", text)
    return _REPEAT_PUNCT_RE.sub(r"\1", text)


def normalize(text: str) -> str:
    """Canonical form for intent matching: half-width, simplified, lower-case, no noise."""
    text = _strip_invisible(text)
    text = _MENTION_RE.sub("", text)
    text = _EMOJI_RE.sub(" ", text)  # before NFKC, which would turn ㊗ into 祝
    text = unicodedata.normalize("NFKC", text)
    text = _t2s().convert(text)
    text = _collapse_punct(text)
    return _SPACE_RE.sub(" ", text).strip().lower()


def strip_for_display(text: str) -> str:
    """Safe to show an agent: no bidi tricks, zero-width or control chars; emoji are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_RE.sub("", _DISPLAY_STRIP_RE.sub("", text))

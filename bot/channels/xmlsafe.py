"""XML hygiene wechatpy leaves to us: control characters in, `]]>` and controls out."""

from __future__ import annotations

import re

from wechatpy.replies import TextReply

from storage.text import strip_controls

# Everything XML 1.0 forbids below 0x20 except tab, LF and CR; WeChat itself sends \x1d.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def strip_control_bytes(body: bytes) -> bytes:
    """Safe on UTF-8: bytes below 0x20 never occur inside a multi-byte sequence."""
    return _CONTROL_BYTES.sub(b"", body)


def cdata_safe(text: str) -> str:
    """Text that can sit inside <![CDATA[...]]>: controls removed, `]]>` split across sections."""
    return strip_controls(text).replace("]]>", "]]]]><![CDATA[>")


def text_reply_xml(*, to_user: str, from_user: str, text: str, create_time: int) -> str:
    """A passive text reply rendered by wechatpy, with every user-influenced value made safe."""
    reply = TextReply(
        source=cdata_safe(from_user),
        target=cdata_safe(to_user),
        content=cdata_safe(text),
        time=create_time,
    )
    return str(reply.render())

"""Text that may be stored or sent: no control characters (PostgreSQL refuses NUL, XML 1.0
refuses the rest, and WeChat itself sends 0x1D)."""

from __future__ import annotations

import re

# C0 controls except tab, newline and carriage return, plus DEL.
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_controls(text: str) -> str:
    return CONTROLS.sub("", text)

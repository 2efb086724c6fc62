"""Masks ID-card, phone and bank-card numbers in every log record, tracebacks included.

Installed as the log-record factory, so it covers our loggers, libraries' loggers and any
exception whose message quotes what a customer wrote.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from storage.pii import mask

_MARK = "_corecircle_masking"


def install() -> None:
    """Idempotent: wrap the current record factory once per process."""
    current = logging.getLogRecordFactory()
    if getattr(current, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            record.msg, record.args = mask(record.getMessage()), ()
        except (TypeError, ValueError):  # a malformed format string: keep it, masked
            record.msg, record.args = mask(str(record.msg)), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)

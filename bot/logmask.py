"""Logs: ID-card, phone and bank-card numbers masked in every record, a request id on each line.

Two layers. The log-record factory masks each record where it is made (our loggers, libraries'
loggers, tracebacks), keeping `record.args` the same shape so formatters that read the
arguments themselves (uvicorn's access formatter unpacks five) still work. The server's
formatters (`log_config`) mask their final output as well, text or JSON.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from storage.pii import mask

_MARK = "_corecircle_masking"
request_id: ContextVar[str] = ContextVar("corecircle_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


def _mask_value(value: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


def _mask_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(_mask_value(a) for a in args)
    if isinstance(args, Mapping):
        return {k: _mask_value(v) for k, v in args.items()}
    return args


def mask_record(record: logging.LogRecord) -> None:
    """Mask a record in place; `args` keep their shape unless only flattening can hide PII."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed format string: keep it, masked
        record.msg, record.args = mask(str(record.msg)), ()
    else:
        masked = mask(message)
        if masked != message:
            msg = _mask_value(record.msg)
            args = _mask_args(record.args)
            try:
                same = (str(msg) % args if args else str(msg)) == masked
            except (TypeError, ValueError):
                same = False
            # PII spread over non-string arguments (an int phone number): flatten, masked.
            record.msg, record.args = (msg, args) if same else (masked, ())
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip())
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


def install() -> None:
    """Idempotent: wrap the current record factory once per process."""
    current = logging.getLogRecordFactory()
    if getattr(current, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = request_id.get()
        mask_record(record)
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


class MaskedFormatter(logging.Formatter):
    """The text formatter of the server's handlers: masks whatever it finally writes."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return mask(super().format(record))


class MaskedJsonFormatter(JsonFormatter):
    """One JSON object a line (python-json-logger), masked, with the request id."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return mask(super().format(record))


def log_config(level: str, *, json_lines: bool) -> dict[str, Any]:
    """dictConfig for the server: one stderr handler for our, library and uvicorn loggers."""
    formatter: dict[str, Any] = (
        {"()": MaskedJsonFormatter, "fmt": JSON_FIELDS,
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
        if json_lines else {"()": MaskedFormatter, "fmt": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main",
               "stream": "ext://sys.stderr"}
    quiet = {"handlers": [], "level": level.upper(), "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {"uvicorn": quiet, "uvicorn.error": quiet, "uvicorn.access": quiet},
    }

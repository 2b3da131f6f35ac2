"""Logging that never writes personal data: every record is redacted at every level.

The formatters here run each record's message, arguments, extra fields and traceback through the same
redaction as transcripts (``assistant.calls.redaction``), mask bearer tokens (``?token=``, ``Bearer ...``)
and replace the content of WebSocket frames that servers log at DEBUG ("< TEXT '...'") with their size.
``assistant`` (the CLI) installs them on the root logger and ``assistant serve`` on uvicorn's loggers, so
``--log-level debug`` shows what happens without showing what was said. The service itself logs call ids,
seqs and counts at INFO, never transcript text.

Example:
    >>> f = RedactingFormatter("%(message)s")
    >>> f.format(logging.makeLogRecord({"msg": "caller said %s", "args": ("call me on 07700 900123",)}))
    'caller said call me on [PHONE]'
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

from assistant.calls.redaction import redact

_TOKEN = re.compile(r"(?i)((?:[?&]token=)|(?:bearer\s+))[^\s&\"']+")
_JWT = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")
_FRAME = re.compile(r"^([<>] (?:TEXT|BINARY|CONT))\b")
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def redact_log_text(text: str) -> str:
    """``text`` with tokens masked and personal data redacted."""
    text = _TOKEN.sub(r"\1[TOKEN]", text)
    text = _JWT.sub("[TOKEN]", text)
    return redact(text).text


def _clean(value: Any) -> Any:
    return redact_log_text(value) if isinstance(value, str) else value


def redacted_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` whose message, arguments and extra fields are redacted (the original is kept
    for other handlers)."""
    out = copy.copy(record)
    message = record.getMessage()
    frame = _FRAME.match(message)
    if frame is not None:
        out.msg, out.args = f"{frame.group(1)} [content not logged, {len(message)} characters]", None
    elif isinstance(record.args, tuple):
        out.msg = _clean(record.msg)
        out.args = tuple(_clean(a) for a in record.args)
    elif isinstance(record.args, dict):
        out.msg = _clean(record.msg)
        out.args = {k: _clean(v) for k, v in record.args.items()}
    else:
        out.msg = _clean(message)
        out.args = None
    for key, value in record.__dict__.items():
        if key not in _STANDARD:
            setattr(out, key, _redact_extra(value))
    if hasattr(out, "color_message"):
        out.color_message = None  # uvicorn's coloured copy of the message holds the unredacted arguments
    out.exc_text = None
    return out


def _redact_extra(value: Any) -> Any:
    if isinstance(value, str):
        return redact_log_text(value)
    if isinstance(value, list | tuple):
        return type(value)(_redact_extra(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_extra(v) for k, v in value.items()}
    return value


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(redacted_record(record))

    def formatException(self, ei: Any) -> str:
        return redact_log_text(super().formatException(ei))


class RedactingFormatter(_Redacting):
    """A ``logging.Formatter`` that redacts (see the module)."""


class RedactingDefaultFormatter(_Redacting, DefaultFormatter):
    """uvicorn's default formatter, redacting."""


class RedactingAccessFormatter(_Redacting, AccessFormatter):
    """uvicorn's access-log formatter, redacting (request lines carry ``?token=`` and ``?agent=``)."""


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with redacting formatters."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["default"]["()"] = f"{__name__}.RedactingDefaultFormatter"
    config["formatters"]["access"]["()"] = f"{__name__}.RedactingAccessFormatter"
    return config


def configure_logging(level: int) -> None:
    """The CLI's root logger: one stderr handler with the redacting formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

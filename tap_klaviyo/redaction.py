"""The API key is never printed: once the tap knows it, every log record (whichever logger made it and whichever
handler writes it: the SDK's console, a file from SINGER_SDK_LOG_CONFIG, a library's warning) and every line the
command prints has it replaced by `MASK`.

Records are rewritten when they are made (a log record factory) rather than by a filter on each handler: a handler
configured later, or a logger that does not propagate, is covered all the same.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

MASK = "<api_key>"
# Shorter values would mask ordinary text; a Klaviyo private key is 37 characters.
SHORTEST = 6

_secrets: list[str] = []
_make_record = logging.getLogRecordFactory()


def protect(secret: str) -> None:
    """Mask `secret` from now on: as it is, without surrounding whitespace, and as a repr shows it."""
    forms = {secret, secret.strip(), repr(secret)[1:-1], repr(secret.strip())[1:-1]}
    _secrets.extend(form for form in forms if len(form) >= SHORTEST and form not in _secrets)
    # Longest first, so that a form containing another is masked whole.
    _secrets.sort(key=len, reverse=True)
    if logging.getLogRecordFactory() is not _masked_record:
        logging.setLogRecordFactory(_masked_record)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return text


def _holds_secret(text: str) -> bool:
    return any(secret in text for secret in _secrets)


def _masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    if not _secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format: logging reports it itself when the record is written
        message = str(record.msg)
    if _holds_secret(message):
        # Only then is the record rewritten: formatters that read its msg and args (the SDK's METRIC lines) keep them.
        record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info))
        if _holds_secret(text):
            # Formatters print exc_text when it is set; a structured one that reads exc_info gets none.
            record.exc_text, record.exc_info = redact(text).rstrip("\n"), None
    if record.stack_info and _holds_secret(record.stack_info):
        record.stack_info = redact(record.stack_info)
    return record

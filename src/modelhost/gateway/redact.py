"""Privacy: redaction of personal data and secrets in log lines.

Installed as a log-record factory, so it covers every logger and handler (ours, uvicorn's, the
access log) whatever logging configuration is applied later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from modelhost.config import Settings
from modelhost.errors import InvalidInput

BUILTIN_PATTERNS: dict[str, str] = {
    "api_key": r"mh_live_[0-9a-f]{12}_[A-Za-z0-9_-]+",
    "bearer": r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}",
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "card": r"\b(?:\d[ -]?){13,19}\b",
    "phone": r"(?<![\w.])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?![\w.])",
}


class Redactor:
    """Replaces every match of the built-in and the operator's patterns with ``[REDACTED:<kind>]``."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.patterns: list[tuple[str, re.Pattern[str]]] = [
            (name, re.compile(p)) for name, p in BUILTIN_PATTERNS.items()
        ]
        for i, pattern in enumerate(extra):
            try:
                self.patterns.append((f"custom{i + 1}", re.compile(pattern)))
            except re.error as exc:
                raise InvalidInput(
                    f"MODELHOST_REDACT_PATTERNS entry {pattern!r} is not a valid regex: {exc}"
                ) from None

    def __call__(self, text: str) -> str:
        for name, pattern in self.patterns:
            text = pattern.sub(f"[REDACTED:{name}]", text)
        return text


_installed: Redactor | None = None


def install_redaction(settings: Settings) -> Redactor | None:
    """Redact every log record created from now on (when MODELHOST_REDACT_LOGS, the default)."""
    global _installed
    if not settings.redact_logs:
        return None
    redactor = Redactor(settings.redact_patterns)
    if _installed is None:
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            active = _installed
            if active is not None:
                try:
                    message = record.getMessage()
                except (TypeError, ValueError):
                    return record
                record.msg, record.args = active(message), ()
            return record

        logging.setLogRecordFactory(factory)
    _installed = redactor
    return redactor

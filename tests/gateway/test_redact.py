"""Privacy: personal data and secrets never reach the logs."""

from __future__ import annotations

import logging

import pytest

from modelhost.config import Settings
from modelhost.errors import InvalidInput
from modelhost.gateway import redact
from modelhost.gateway.redact import Redactor, install_redaction


def test_redactor_patterns() -> None:
    r = Redactor([r"CUST-\d{6}"])
    line = (
        "user jane.doe@example.com phoned +44 20 7946 0958 about card 4111 1111 1111 1111, "
        "customer CUST-123456, key mh_live_0123456789ab_abcDEF-_xyz, header Bearer abc.def-123456; "
        "shape [1, 4] version 2 took 12.5 ms"
    )
    out = r(line)
    for secret in (
        "jane.doe@example.com",
        "7946 0958",
        "4111 1111",
        "CUST-123456",
        "mh_live_0123",
        "abc.def-123456",
    ):
        assert secret not in out, secret
    for kept in ("shape [1, 4]", "version 2", "12.5 ms"):
        assert kept in out, kept
    assert "[REDACTED:email]" in out and "[REDACTED:custom1]" in out
    with pytest.raises(InvalidInput, match="regex"):
        Redactor(["("])


def test_installed_redaction_covers_every_logger(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    previous = logging.getLogRecordFactory()
    try:
        install_redaction(settings)
        # Handler on the logger itself: a server started earlier in the session configures
        # uvicorn.access with propagate=False, so the root handler alone would see nothing.
        access = logging.getLogger("uvicorn.access")
        access.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.INFO, logger="uvicorn.access"):
                access.info("payload from %s", "bob@example.org")
        finally:
            access.removeHandler(caplog.handler)
        assert "bob@example.org" not in caplog.text and "[REDACTED:email]" in caplog.text
    finally:
        logging.setLogRecordFactory(previous)
        redact._installed = None
    assert install_redaction(settings.model_copy(update={"redact_logs": False})) is None

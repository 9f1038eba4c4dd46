"""Redaction at the root: a registered secret never leaves through any logger, a traceback a record
carries, a warning or an uncaught exception in a thread, in its raw or URL-encoded form."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from synth.secrets import protect, redact_url, scrub, url_secrets

SECRET = "p@ss w0rd!"
ROOT = Path(__file__).resolve().parents[1]


def test_a_registered_secret_is_redacted_from_any_logger_and_the_tracebacks_records_carry(caplog):
    protect(SECRET)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("a.logger.nobody.configured").info("GET http://h/v1/models?api-key=p%40ss%20w0rd%21 200")
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        logging.getLogger("another").exception("the request failed")
    logging.getLogger("third").warning("sent %s", {"Authorization": f"Bearer {SECRET}"})
    assert "refused ***" in caplog.text and "api-key=***" in caplog.text and "Bearer ***" in caplog.text
    assert SECRET not in caplog.text and "p%40ss" not in caplog.text


def test_warnings_and_uncaught_exceptions_are_redacted():
    """In a process of its own: pytest records warnings and exceptions its own way."""
    code = f"""
import threading, warnings
from synth.secrets import protect
protect({SECRET!r})
warnings.warn("retrying with {SECRET}")
thread = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError("key {SECRET} refused in a thread")))
thread.start(); thread.join()
raise RuntimeError("stopped with {SECRET}")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    for shown in ("retrying with ***", "key *** refused in a thread", "RuntimeError: stopped with ***"):
        assert shown in result.stderr, result.stderr
    assert SECRET not in result.stderr


def test_short_query_credentials_are_redacted_by_context_and_other_parameters_stay():
    assert scrub("POST http://h/v1/chat/completions?api-key=ab&api-version=2024-06-01&token=z") == \
        "POST http://h/v1/chat/completions?api-key=***&api-version=2024-06-01&token=***"
    assert redact_url("http://u:pw@h/v1?access_token=x&api-version=1") == "http://***@h/v1?access_token=***&api-version=1"
    assert set(url_secrets("http://u:pw@h/v1?sig=abc&api-version=1")) == {"u:pw", "pw", "abc"}  # a user name beside a password is no secret
    assert set(url_secrets("https://ghp_tok3n@h/v1")) == {"ghp_tok3n"}  # a token written as the user is

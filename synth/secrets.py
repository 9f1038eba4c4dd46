"""Keeping secrets out of everything synth writes or prints.

Keys come from the environment only. What a user may still put in a config by mistake (credentials in
a URL, a token pasted where a variable *name* goes, `engine.env` values) is redacted here, the one
place that knows what a secret looks like.

Redaction sits at the root, not on named loggers: HTTP stacks change their logger names between
releases (the openai client logs through `httpx2` today), so `protect` installs it in the log record
factory (every record of every logger), on the root handlers, in `warnings` and in the exception hooks,
and registers the exact values to hide (an API key, URL credentials), however short.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
import warnings
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# names of query parameters that carry credentials (api-key, api_key, key, token, access_token, sig, ...)
_SECRET_NAME = r"[A-Za-z0-9_.\-]*(?:key|token|secret|passw|pwd|sig|auth|credential)[A-Za-z0-9_.\-]*"
_SECRET_PARAM = re.compile(_SECRET_NAME, re.IGNORECASE)
# name=value inside a query string, wherever a URL is quoted (a log line, an exception, an error body)
_QUERY_SECRET = re.compile(rf"(?<=[?&;])({_SECRET_NAME})=([^&#\s\"'<>]*)", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
# what provider keys and tokens look like: sk-..., hf_..., ghp_..., xoxb-..., AKIA..., long opaque strings
_TOKEN = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|xox[abpr]-[A-Za-z0-9-]{8,}"
    r"|AKIA[0-9A-Z]{12,}|[A-Za-z0-9_-]{32,})\b")

# a registered value shorter than this is only redacted where its context says it is a secret (name=value in
# a URL): replacing every "ab" in every log line would garble them without protecting anything
MIN_EXACT = 3
_known: set[str] = set()
_installed = False
_lock = threading.Lock()


def redact_url(url: str) -> str:
    """`url` without user:password and without credential query parameters (values replaced)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_PARAM.fullmatch(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secret values a URL carries: its password (or a user part without one: a token written as the
    user), and its credential query values. A user name beside a password is no secret, and redacting
    a short common one (`user`) everywhere would garble unrelated text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        name, colon, password = userinfo.partition(":")
        found += [userinfo, password] if colon else [name]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAM.fullmatch(k)]
    return [v for v in found if v]


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of a key or token (so it must never be echoed back)."""
    return bool(_TOKEN.search(value))


def scrub(text: str, *secrets: str, shapes: bool = True) -> str:
    """`text` with each of `secrets`, every registered secret, URL credentials and (with `shapes`)
    anything token-shaped replaced. Messages synth wrote itself pass shapes=False: a long file name
    there is not a token."""
    for secret in sorted({*secrets, *_known}, key=len, reverse=True):  # longest first: a value inside another
        if secret and len(secret) >= MIN_EXACT:
            text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(f"{REDACTED}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _TOKEN.sub(REDACTED, text) if shapes else text


def protect(*values: str) -> None:
    """Never show `values` anywhere (in their raw and URL-encoded forms), and make sure every log record,
    warning and uncaught traceback of the process passes through `scrub`. Idempotent."""
    with _lock:
        for value in values:
            if value:
                _known.update({value, quote(value, safe=""), quote_plus(value)})
    install_redaction()


class ScrubLogs(logging.Filter):
    """On a log handler: every record leaves with URL credentials and token-shaped strings redacted
    (libraries log request URLs; an error may quote a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a library's own broken format string: logging reports it as usual
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:  # the formatter uses exc_text when it is set
        record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def install_redaction() -> None:
    """Redaction at the root of logging (the record factory, so every logger whatever its name or handlers;
    and the root handlers, for records built elsewhere), of `warnings` and of the exception hooks."""
    global _installed
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubLogs) for f in handler.filters):
            handler.addFilter(ScrubLogs())
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(scrubbed_record)
    # formatwarning, not showwarning: every way of showing a warning formats it there (logging's
    # captureWarnings included), and catch_warnings() does not swap it back and forth
    format_warning = warnings.formatwarning

    def scrubbed_warning(message, category, filename, lineno, line=None) -> str:
        return scrub(format_warning(message, category, filename, lineno, line))

    warnings.formatwarning = scrubbed_warning
    excepthook, thread_hook = sys.excepthook, threading.excepthook

    def scrubbed_excepthook(kind, value, tb):
        if not issubclass(kind, Exception):
            return excepthook(kind, value, tb)
        sys.stderr.write(scrub("".join(traceback.format_exception(kind, value, tb))))

    def scrubbed_thread_hook(args):
        if args.exc_type is SystemExit or args.exc_value is None:
            return thread_hook(args)
        name = args.thread.name if args.thread else "?"
        sys.stderr.write(f"Exception in thread {name}:\n" + scrub(
            "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))))

    sys.excepthook, threading.excepthook = scrubbed_excepthook, scrubbed_thread_hook

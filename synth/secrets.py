"""Keeping secrets out of everything synth writes or prints.

Keys come from the environment only. What a user may still put in a config by mistake (credentials in
a URL, a token pasted where a variable *name* goes, `engine.env` values) is redacted here, the one
place that knows what a secret looks like.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# query parameters that carry credentials (api-key, api_key, key, token, access_token, sig, password, ...)
_SECRET_PARAM = re.compile(r"(key|token|secret|passw|pwd|sig|auth|credential)", re.IGNORECASE)
# what provider keys and tokens look like: sk-..., hf_..., ghp_..., xoxb-..., AKIA..., long opaque strings
_TOKEN = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|xox[abpr]-[A-Za-z0-9-]{8,}"
    r"|AKIA[0-9A-Z]{12,}|[A-Za-z0-9_-]{32,})\b")


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
        query = urlencode([(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of a key or token (so it must never be echoed back)."""
    return bool(_TOKEN.search(value))


def scrub(text: str, *secrets: str) -> str:
    """`text` with each of `secrets` and anything token-shaped replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _TOKEN.sub(REDACTED, text)


_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")


class ScrubLogs(logging.Filter):
    """On a log handler: every record leaves with URL credentials and token-shaped strings redacted
    (libraries log request URLs; an error may quote a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(_USERINFO.sub(f"{REDACTED}@", message))
        if clean != message:
            record.msg, record.args = clean, None
        return True

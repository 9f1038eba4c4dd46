"""What synth accepts from an HTTP server: a bounded body, and an answer whose every field is checked.

A server can be broken or hostile: it may ignore `max_tokens`, trickle bytes, send a gzip bomb, lie
about usage or answer 200 with something that is not a chat completion. Nothing it sends is trusted
before it passes here: the body is read under a byte cap (decompressed size included), and the JSON is
validated field by field into plain values. Two outcomes besides an answer: `MalformedAnswer` (the
server's fault, retried like an outage) and `AnswerTooLong` (the server ignored `max_tokens`: that
request's reject).
"""

from __future__ import annotations

import importlib
import json
import math
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from openai import DefaultAsyncHttpxClient

from synth.loading import DOCUMENT, Unreadable, json_value

# the HTTP library the installed openai client is built on (httpx2 from openai 3, httpx before)
httpx = importlib.import_module(next(c for c in DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
                                .__module__.split(".")[0])

# A token is rarely longer than a few characters; 16 per token (plus slack) is far beyond any real answer,
# so text over this bound means the server ran past max_tokens.
CHARS_PER_TOKEN = 16
# JSON can spend 12 bytes on one character (a surrogate pair as two \u escapes)
BYTES_PER_CHAR = 12
MIN_BODY_CAP = 1 << 20  # model lists, error pages and small answers always fit
# a token count beyond this is not a count (a lie, an overflow); within it, counts are checked against the request
MAX_COUNT = 10 ** 7
# a prompt of n characters is at most 4n tokens (one per UTF-8 byte), plus the chat template around it
PROMPT_TEMPLATE_TOKENS = 4096


class MalformedAnswer(Exception):
    """The server's answer is not a usable chat completion (its fault: retried, counted)."""


class AnswerTooLong(Exception):
    """The server sent far more than `max_tokens` allows (this request's reject)."""


class BodyTooLarge(Exception):
    """The body outgrew the cap while it was read; `status` is the HTTP status it came with."""

    def __init__(self, cap: int, status: int):
        super().__init__(f"the body is over {cap} bytes (HTTP {status}); not read further")
        self.cap, self.status = cap, status


def answer_chars_bound(max_tokens: int) -> int:
    """Most characters an answer of `max_tokens` tokens can honestly hold."""
    return 64 + CHARS_PER_TOKEN * max_tokens


def output_tokens_bound(max_tokens: int) -> int:
    """Most output tokens a server may report for `max_tokens` (some count a few special tokens)."""
    return 16 + 2 * max_tokens


def body_cap(max_tokens: int) -> int:
    """Bytes of one response body synth reads at most, for requests of at most `max_tokens`."""
    return max(MIN_BODY_CAP, (64 << 10) + BYTES_PER_CHAR * answer_chars_bound(max_tokens))


def split_query(base_url: str) -> tuple[str, dict[str, str]]:
    """`base_url` without its query, and the query as parameters to send with every request (the
    openai client would otherwise paste request paths after the query: `/v1?key=x/chat/completions`)."""
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


class _CappedStream(httpx.AsyncByteStream):
    """The response stream, stopped once it yields more than `cap` bytes; gzip/deflate are decoded here
    (under the same cap) so a small compressed body cannot expand without bound."""

    def __init__(self, stream: httpx.AsyncByteStream, cap: int, status: int, compressed: bool):
        self._stream, self._cap, self._status, self._compressed = stream, cap, status, compressed

    @property
    def elapsed(self):  # httpx reads it from the stream it knows
        return getattr(self._stream, "elapsed", None)

    async def __aiter__(self):
        total = 0
        decoder = zlib.decompressobj(wbits=47) if self._compressed else None  # 47: gzip or zlib header
        async for chunk in self._stream:
            if decoder is not None:
                try:
                    chunk = decoder.decompress(chunk, self._cap - total + 1)
                except zlib.error as exc:
                    raise MalformedAnswer(f"the compressed body does not decode ({exc})") from None
                if decoder.unconsumed_tail:
                    raise BodyTooLarge(self._cap, self._status)
            total += len(chunk)
            if total > self._cap:
                raise BodyTooLarge(self._cap, self._status)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def capped_body_hook(cap: int):
    """An httpx response hook (it runs before the body is read) that puts every body under `cap`."""

    async def hook(response: httpx.Response) -> None:
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise MalformedAnswer(f"the server sent Content-Encoding {encoding[:40]!r}, which was not asked for")
        if encoding not in ("", "identity"):
            del response.headers["content-encoding"]  # decoded by the capped stream instead
        response.stream = _CappedStream(response.stream, cap, response.status_code, encoding not in ("", "identity"))

    return hook


def http_client(cap: int, max_connections: int, timeout_s: float) -> httpx.AsyncClient:
    """The HTTP client of one engine: every body capped, only encodings the cap can decode asked for."""
    return DefaultAsyncHttpxClient(
        timeout=timeout_s, headers={"Accept-Encoding": "gzip, deflate"}, event_hooks={"response": [capped_body_hook(cap)]},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int


def read_answer(body: bytes, max_tokens: int, prompt_chars: int) -> Answer:
    """The validated chat completion in `body`, for a request of `max_tokens` whose messages hold
    `prompt_chars` characters. Raises MalformedAnswer or AnswerTooLong."""
    try:
        data = json_value(body, DOCUMENT)
    except (Unreadable, ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep, a key twice
        raise MalformedAnswer(f"the body is not JSON ({type(exc).__name__}, {len(body)} bytes)") from None
    if not isinstance(data, dict):
        raise MalformedAnswer(f"the body is not a JSON object ({_kind(data)})")
    if data.get("error") not in (None, {}, "", []) and not data.get("choices"):
        raise MalformedAnswer(f"HTTP 200 carrying an error: {_error_text(data['error'])}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedAnswer(f"no choices (choices is {_kind(choices)})")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise MalformedAnswer("choices[0] has no message object")
    text = _content(choice["message"].get("content"))
    finish = choice.get("finish_reason")
    if finish is not None and (not isinstance(finish, str) or len(finish) > 64):
        raise MalformedAnswer(f"finish_reason is {_kind(finish)}, not a short string")
    prompt_tokens, output_tokens = _usage(data.get("usage"))
    if len(text) > answer_chars_bound(max_tokens):
        raise AnswerTooLong(f"{len(text)} characters for max_tokens {max_tokens} (the server ignored max_tokens)")
    if output_tokens > output_tokens_bound(max_tokens):
        raise AnswerTooLong(f"the server reported {output_tokens} output tokens for max_tokens {max_tokens}")
    if prompt_tokens > 4 * prompt_chars + PROMPT_TEMPLATE_TOKENS:
        raise MalformedAnswer(f"usage.prompt_tokens {prompt_tokens} for a prompt of {prompt_chars} characters")
    return Answer(text, finish, prompt_tokens, output_tokens)


def _content(content: Any) -> str:
    """`message.content`: a string, null (no text), or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise MalformedAnswer(f"message.content is {_kind(content)}, not text")


def _usage(usage: Any) -> tuple[int, int]:
    """(prompt, output) tokens; no usage reported counts as 0 (the cost block then under-counts, never lies)."""
    if usage is None:
        return 0, 0
    if not isinstance(usage, dict):
        raise MalformedAnswer(f"usage is {_kind(usage)}, not an object")
    return _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")


def _count(usage: dict, name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise MalformedAnswer(f"usage.{name} is {_kind(value)}, not a token count")
    return value


def _kind(value: Any) -> str:
    """A short description of a value that never quotes much of it (it may be huge or hostile)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return f"the string {value[:24]!r}" + ("..." if len(value) > 24 else "")
    return f"a{'n' if type(value).__name__[0] in 'aeiou' else ''} {type(value).__name__}"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:200]

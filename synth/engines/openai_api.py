"""An engine that calls an OpenAI-compatible chat completions server (vLLM, SGLang, OpenAI, ...).

Use it when the model already runs behind an HTTP endpoint, e.g. `vllm serve` on another machine,
instead of hosting replicas with Ray. Like the replica pool, it never raises for one bad request:
every request gets a Completion, failed ones with `error` set.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import threading
import time
from typing import Any, Sequence

import openai

from synth.engines.base import Completion, EngineUnavailable, GenerationRequest, SamplingConfig
from synth.engines.capabilities import Capabilities, EngineNeeds, probe, schema_instruction
from synth.engines.configs import OpenAIEngineConfig
from synth.engines.http_limits import (AnswerTooLong, BodyTooLarge, MalformedAnswer, body_cap, http_client, read_answer,
                                       split_query)
from synth.errors import ConfigError
from synth.secrets import protect, redact_url, scrub, url_secrets
from synth.text import well_formed

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer than this is treated as asking for this

# How servers word "the prompt does not fit the context". vLLM 0.32 answers 400 with
#   "This model's maximum context length is 256 tokens. However, your prompt contains at least 257
#    input tokens, ..." (prompt longer than max_model_len), and
#   "max_tokens must be at least 1, got 0." (prompt exactly max_model_len: no room for output);
# older vLLM/input-processor paths say "... is longer than the maximum model length of N",
# SGLang "... is longer than the model's context length", llama.cpp "exceeds the available context size".
# Not matched on purpose: "max_tokens=300 cannot be greater than max_model_len=256" is a config
# mistake that no prompt shortening fixes, so it stays an engine_error.
_TOO_LONG = re.compile(
    r"maximum context length|context length|maximum model length|context size|prompt is too long"
    r"|max_tokens must be at least 1, got 0",
    re.IGNORECASE,
)


# A server that answers a request it cannot parse with HTTP 500: llama-cpp-python's server (0.3.x) wraps
# FastAPI's RequestValidationError as {"error": {"message": "1 validation error:\n  {'type': 'literal_error',
# 'loc': ('body', 'response_format', 'type'), ...", "type": "internal_server_error"}}. The same body is
# sent back for every retry, so it is this request's fault (or a job setting's), not an outage.
_INVALID_500 = re.compile(r"\bvalidation errors?\b|'loc': \('body'|\"loc\": \[\"body\"", re.IGNORECASE)


class _Failure(Exception):
    """A failed call. `retry`: the engine may recover (429, 5xx, timeouts, connection); `fatal`: the
    engine refuses every request (bad key, unknown model); neither: this request is at fault."""

    def __init__(self, error: str, retry: bool, delay: float | None = None, fatal: bool = False):
        super().__init__(error)
        self.error, self.retry, self.delay, self.fatal = error, retry, delay, fatal


class OpenAIEngine:
    """Runs requests concurrently on a private asyncio loop in a background thread.

    The loop and its HTTP client live as long as the engine, so repeated `generate` calls reuse
    connections, and `generate` also works when the caller already runs an event loop. Engine
    failures are retried with backoff; one that outlasts `max_retries` (or a refused key, an unknown
    model) trips the breaker: `generate` raises EngineUnavailable and the job stops resumable.
    """

    def __init__(self, config: OpenAIEngineConfig, sampling: SamplingConfig):
        self.config = config
        self.sampling = sampling
        self.endpoint = redact_url(config.base_url)  # what messages and logs may name
        api_key = "EMPTY"  # the openai client insists on a key; local servers ignore it
        if config.api_key_env is not None:
            if not os.environ.get(config.api_key_env):
                raise ConfigError(
                    f"engine.api_key_env: environment variable {config.api_key_env} is not set; "
                    f"export it with the API key, or set api_key_env: null for a server without keys"
                )
            api_key = os.environ[config.api_key_env]
        protect(*url_secrets(config.base_url), *([api_key] if api_key != "EMPTY" else []))
        self.tokens_out = 0
        # attempts per committed slice: a few waves of concurrent requests (a stop loses at most this)
        self.slice_size = max(8, 4 * config.max_concurrency)
        self.retries = 0  # engine failures retried (not model rejects)
        self.outages = 0  # times the breaker tripped
        self._broken: str | None = None
        # how requests are sent; measured by preflight(), until then what the config asks for
        self.capabilities = Capabilities(continue_final_message=config.continue_final_message)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-engine", daemon=True)
        self._thread.start()
        self._client = self._call(self._make_client(api_key))  # the key lives only inside the client
        self._semaphore = asyncio.Semaphore(config.max_concurrency)

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self.endpoint!r}, model={self.config.model!r})"

    async def _make_client(self, api_key: str) -> openai.AsyncOpenAI:
        """Built on the engine's loop: httpx connection pools belong to the loop that made them. The base
        URL's query (e.g. `?api-version=...`) goes with every request, after the request's path."""
        base_url, query = split_query(self.config.base_url)
        client = http_client(body_cap(self.sampling.max_tokens), self.config.max_concurrency, self.config.timeout_s)
        return openai.AsyncOpenAI(base_url=base_url, default_query=query or None, api_key=api_key, max_retries=0,
                                  timeout=self.config.timeout_s, http_client=client)

    def _call(self, coro, timeout: float | None = None) -> Any:
        """Run `coro` on the engine's loop. Whatever stops the wait (SIGTERM raises in the waiting thread)
        cancels the coroutine too, so no task is left running on the loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def preflight(self, needs: EngineNeeds | None = None) -> Capabilities:
        """Before any attempt: the server answers, accepts the key and serves the model (`/models`, then
        one one-token request), then every feature in `needs` is tried (synth.engines.capabilities) and
        the requests adapt to what the server does. Raises ConfigError naming the endpoint, or the job
        key to change, and what is wrong (exit 2)."""
        self._call(self._preflight())
        if needs is not None:
            where = f"engine.base_url {self.endpoint} (model {self.config.model})"
            self.capabilities = self._call(probe(self._probe_send, needs, self.capabilities, where))
        return self.capabilities

    async def _probe_send(self, request: GenerationRequest, capabilities: Capabilities,
                          temperature: float | None) -> Completion:
        """One probe request: a refusal comes back as `error`; an outage or a refused key is a ConfigError."""
        try:
            return await self._request(request, capabilities, temperature)
        except _Failure as failure:
            if failure.retry or failure.fatal:
                raise ConfigError(f"engine.base_url {self.endpoint}: a preflight request failed: "
                                  f"{self._scrub(failure.error)}") from None
            return Completion(request.id, error=self._scrub(failure.error))

    async def _preflight(self) -> None:
        where = f"engine.base_url {self.endpoint}"
        try:
            async with asyncio.timeout(min(30.0, self.config.timeout_s)):
                served = [m.id async for m in self._client.models.list(timeout=min(30.0, self.config.timeout_s))]
        except TimeoutError:
            raise ConfigError(f"{where}: the server did not list its models within {min(30.0, self.config.timeout_s):g}s; "
                              f"check it is an OpenAI-compatible server and not overloaded") from None
        except (BodyTooLarge, MalformedAnswer) as exc:
            raise ConfigError(f"{where}: the model list is not usable ({self._scrub(str(exc))}); check the URL "
                              f"points at an OpenAI-compatible /v1") from None
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise ConfigError(f"{where}: the server refused the API key (HTTP {exc.status_code}); check the "
                                  f"variable named by engine.api_key_env") from None
            served = None  # some servers do not list models: the test request below decides
        except (AttributeError, TypeError, ValueError, KeyError):  # a list of odd shape: the test request decides
            served = None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(f"{where}: cannot reach the server ({type(cause).__name__}: "
                              f"{self._scrub(str(cause))[:200]}); start it or fix the URL") from None
        served = [str(m)[:200] for m in served] if isinstance(served, list) else None
        if served is not None and self.config.model not in served:
            raise ConfigError(f"engine.model: {self.config.model!r} is not served by {self.endpoint}; it serves "
                              f"{served[:10]} (vLLM: --served-model-name)")
        try:
            await self._request(GenerationRequest(id="preflight", messages=[{"role": "user", "content": "Hi"}],
                                                  max_tokens=1), Capabilities(structured="text", seeds=False))
        except _Failure as failure:
            if failure.error.startswith("answer_too_long"):  # it answers; rows over max_tokens become rejects
                log.warning("%s ignores max_tokens (a one-token test request: %s); answers far over max_tokens "
                            "are rejected as answer_too_long", self.endpoint, failure.error)
                return
            raise ConfigError(f"{where}: a one-token test request failed: {self._scrub(failure.error)}") from None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        started = time.perf_counter()
        completions = self._call(self._generate_all(list(requests)))
        tokens = sum(c.output_tokens for c in completions)
        self.tokens_out += tokens
        elapsed = time.perf_counter() - started
        log.info("generated %d requests (%d request errors), %d output tokens in %.1fs (%.0f tokens/s)",
                 len(completions), sum(c.error is not None for c in completions), tokens, elapsed,
                 tokens / max(elapsed, 1e-9))
        return completions

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[Completion]:
        """Every request's completion, or EngineUnavailable as soon as one trips the breaker (the
        others are cancelled: none of their work becomes a row)."""
        if self._broken:
            raise EngineUnavailable(self._broken)
        tasks = [asyncio.ensure_future(self._generate_one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _generate_one(self, request: GenerationRequest) -> Completion:
        async with self._semaphore:
            for attempt in range(self.config.max_retries + 1):
                if self._broken:
                    raise EngineUnavailable(self._broken)
                try:
                    return await self._request(request)
                except _Failure as failure:
                    failed = failure
                except UnicodeEncodeError as exc:  # this request's own text (a lone surrogate): no retry can send it
                    failed = _Failure(f"invalid_request: its text is not encodable as UTF-8 ({exc.reason})", retry=False)
                except Exception as exc:  # e.g. a malformed response body: the server's fault, retried
                    failed = _Failure(f"engine_error: {type(exc).__name__}: {exc}", retry=True)
                error = self._scrub(failed.error)
                if failed.fatal:
                    self._trip(error)
                if not failed.retry:
                    return Completion(request.id, error=error)  # this request's own problem: a rejected row
                if attempt == self.config.max_retries:
                    self._trip(f"{error} (still failing after {self.config.max_retries} retries)")
                self.retries += 1
                delay = failed.delay
                if delay is None:
                    delay = min(MAX_BACKOFF_S, self.config.backoff_s * 2 ** attempt)
                    delay *= random.uniform(0.5, 1.0)  # jitter: concurrent retries do not stampede
                log.debug("request %s: %s; retry %d in %.2fs", request.id, error, attempt + 1, delay)
                await asyncio.sleep(delay)  # holding the slot: a struggling server gets fewer requests
            raise AssertionError("unreachable")

    def _trip(self, error: str) -> None:
        if not self._broken:
            self.outages += 1
            self._broken = f"endpoint {self.endpoint}: {error}"
        raise EngineUnavailable(self._broken)

    def _scrub(self, error: str) -> str:
        """Some servers quote the key (or the URL with its credentials); reject reasons reach output files."""
        key = self._client.api_key
        error = error.replace(self.config.base_url, self.endpoint)
        return scrub(error, key if key != "EMPTY" else "")

    async def _request(self, request: GenerationRequest, capabilities: Capabilities | None = None,
                       temperature: float | None = None) -> Completion:
        capabilities = capabilities or self.capabilities
        body = request_body(request, self.sampling, capabilities, temperature)
        raw = await self._post(model=self.config.model, n=1, **body)
        answer = _validated(raw, body["max_tokens"], body["messages"])
        text = with_prefix(request, well_formed(answer.text), capabilities)  # a JSON escape can hold a lone surrogate
        return Completion(request.id, text=text, finish_reason=answer.finish_reason,
                          prompt_tokens=answer.prompt_tokens, output_tokens=answer.output_tokens)

    async def _post(self, **kwargs) -> bytes:
        """The body of one chat completion, read whole within `timeout_s` (a deadline for the request,
        not only for the gap between two bytes: a server trickling a byte a second never hangs a job) and
        under the body cap. Raises _Failure."""
        timeout_s = self.config.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
                return raw.http_response.content
        except TimeoutError:
            raise _Failure(f"engine_error: timeout: no complete answer within {timeout_s:g}s", retry=True) from None
        except BodyTooLarge as exc:
            if exc.status >= 400:  # an error page that will not end: the server is broken
                raise _Failure(f"engine_error: {exc}", retry=True) from None
            raise _Failure(f"answer_too_long: {exc}", retry=False) from None
        except MalformedAnswer as exc:
            raise _Failure(f"engine_error: malformed answer: {exc}", retry=True) from None
        except openai.APIStatusError as exc:
            raise _classify(exc) from None
        except openai.APITimeoutError:
            raise _Failure(f"engine_error: timeout after {timeout_s:g}s", retry=True) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, (BodyTooLarge, MalformedAnswer)):
                raise _Failure(f"engine_error: {cause}", retry=True) from None
            raise _Failure(f"engine_error: connection: {type(cause).__name__}", retry=True) from None

    def shutdown(self) -> None:
        """Cancel and await every task still on the loop (a stop can come during a Retry-After wait),
        close the client, then the loop: nothing is left to complain at exit."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._close(), timeout=15)
        except Exception as exc:  # a client that will not close must not hide why the job stopped
            log.debug("closing the HTTP client: %s", self._scrub(f"{type(exc).__name__}: {exc}"))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._loop.is_running():
                self._loop.close()

    async def _close(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.close()
        await self._loop.shutdown_asyncgens()


def _validated(body: bytes, max_tokens: int, messages: list[dict[str, str]]):
    """The checked answer in `body`. Raises _Failure: a malformed answer is retried (the server's fault),
    one far over max_tokens is this request's reject."""
    prompt_chars = sum(len(m.get("content") or "") for m in messages if isinstance(m, dict))
    try:
        return read_answer(body, max_tokens, prompt_chars)
    except MalformedAnswer as exc:
        raise _Failure(f"engine_error: malformed answer: {exc}", retry=True) from None
    except AnswerTooLong as exc:
        raise _Failure(f"answer_too_long: {exc}", retry=False) from None


def request_body(request: GenerationRequest, sampling: SamplingConfig, capabilities: Capabilities,
                 temperature: float | None = None) -> dict[str, Any]:
    """The `chat.completions.create` arguments (besides model and n) of one request, sent the way
    `capabilities` says the server takes it: structured output in the form it honours (the schema in
    the prompt where it does not enforce it), the prefix as a continued assistant message only where
    it is continued, seeds only where accepted."""
    messages: list[dict[str, str]] = [dict(m) for m in request.messages]
    body: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    if request.json_schema is not None:
        body.update(_structured_output(request.json_schema, capabilities))
        if capabilities.structured != "json_schema":
            asked = max((i for i, m in enumerate(messages) if m["role"] != "assistant"), default=None)
            if asked is not None:  # the last message that asks (not a prefilled answer)
                messages[asked]["content"] += schema_instruction(request.json_schema)
    if request.prefix and capabilities.continue_final_message:
        messages.append({"role": "assistant", "content": request.prefix})
        extra_body.update(continue_final_message=True, add_generation_prompt=False)
    if sampling.repetition_penalty != 1.0:
        extra_body["repetition_penalty"] = sampling.repetition_penalty
    seed = request.seed(sampling.seed) if capabilities.seeds else None
    if seed is not None:
        body["seed"] = seed
    body.update(
        messages=messages, temperature=sampling.temperature if temperature is None else temperature,
        top_p=sampling.top_p, max_tokens=min(request.max_tokens or sampling.max_tokens, sampling.max_tokens),
        stop=(sampling.stop + (request.stop or [])) or None, extra_body=extra_body or None,
    )
    return body


def _structured_output(schema: dict, capabilities: Capabilities) -> dict[str, Any]:
    """The `response_format` of a constrained request (none in `text` mode)."""
    if capabilities.structured == "json_schema":  # OpenAI's structured outputs; vLLM serve honours it too
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "answer", "schema": schema, "strict": True}}}
    if capabilities.structured == "json_object+schema":  # llama-cpp-python turns the schema into a grammar
        return {"response_format": {"type": "json_object", "schema": schema}}
    if capabilities.structured == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}


def with_prefix(request: GenerationRequest, text: str, capabilities: Capabilities) -> str:
    """The answer with its prefix: a continued prefix is not repeated by the server; an uncontinued
    one is only added where the model did not write it itself."""
    if request.prefix and (capabilities.continue_final_message or not text.startswith(request.prefix)):
        return request.prefix + text
    return text


def _refused_as_invalid(status: int, message: str) -> bool:
    """The server says the request itself is invalid (the same answer for every retry): not an outage."""
    return status in (400, 422) or (status == 500 and bool(_INVALID_500.search(message)))


def _classify(exc: openai.APIStatusError) -> _Failure:
    """Map an HTTP error to a reject reason, and say whether a retry could succeed."""
    status = exc.status_code
    message = _error_message(exc)
    if status == 400 and _TOO_LONG.search(message):
        return _Failure("prompt_too_long", retry=False)
    if _refused_as_invalid(status, message):
        return _Failure(f"request_refused: HTTP {status}: {message[:200]}", retry=False)
    reason = f"engine_error: HTTP {status}: {message[:200]}"
    if status in (408, 429) or status >= 500:
        return _Failure(reason, retry=True, delay=_retry_after(exc.response.headers))
    if status in (401, 403, 404):  # key refused, model or route unknown: no request can succeed
        return _Failure(reason, retry=False, fatal=True)
    return _Failure(f"request_refused: HTTP {status}: {message[:200]}", retry=False)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return exc.message


def _retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After` seconds or HTTP date)."""
    try:
        if "retry-after-ms" in headers:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(headers["retry-after-ms"]) / 1000))
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - time.time()
        return min(MAX_RETRY_AFTER_S, max(0.0, seconds))
    except (TypeError, ValueError, OverflowError):
        return None

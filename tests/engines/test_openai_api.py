"""The OpenAI-compatible engine against a real vLLM server, and against the scripted local HTTP server
(tests/fault_server.py) for the failure paths (rate limits, outages, keys) that a healthy vLLM never produces."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synth.engines.base import EngineUnavailable, GenerationRequest, SamplingConfig
from synth.engines.configs import OpenAIEngineConfig
from synth.engines.openai_api import OpenAIEngine
from synth.errors import ConfigError
from tests.fault_server import FaultServer, error, ok
from tests.ports import free_port
from tests.vllm_server import VllmServer


@pytest.fixture(scope="module")
def vllm_url(tiny_model_dir, tmp_path_factory):
    """A real `vllm.entrypoints.openai.api_server` on the tiny model (its own process group)."""
    server = VllmServer(tiny_model_dir, free_port(), tmp_path_factory.mktemp("vllm-server") / "server.log")
    try:
        yield server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tiny_engine(vllm_url):
    engine = OpenAIEngine(
        OpenAIEngineConfig(base_url=vllm_url, model="tiny", api_key_env=None, max_concurrency=4),
        SamplingConfig(temperature=0.0, max_tokens=16, seed=0),
    )
    yield engine
    engine.shutdown()


def _ask(i: int, **kwargs) -> GenerationRequest:
    return GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": f"Tell me about number {i}."}],
                             **kwargs)


def test_results_complete_in_order_with_prefix_stop_and_max_tokens(tiny_engine):
    plain = tiny_engine.generate([_ask(99)])[0]
    assert plain.error is None and len(plain.text) > 4, plain
    stop = plain.text[2:4]  # greedy decoding: the same request reproduces this text, so it must stop here
    requests = [_ask(i) for i in range(12)]
    requests[3] = _ask(3, prefix="Answer: ")
    requests[5] = GenerationRequest(id="stopped", messages=_ask(99).messages, stop=[stop])
    requests[7] = _ask(7, max_tokens=3)
    requests[8] = GenerationRequest(id="q8", messages=_ask(3).messages)  # q3 without the prefix
    tokens_before = tiny_engine.tokens_out

    completions = tiny_engine.generate(requests)

    assert [c.id for c in completions] == [r.id for r in requests]
    assert [c.error for c in completions] == [None] * 12
    assert all(c.finish_reason in ("stop", "length") and c.output_tokens > 0 for c in completions)
    assert completions[3].text.startswith("Answer: ")
    assert completions[3].prompt_tokens > completions[8].prompt_tokens  # the prefix was sent, not just pasted
    assert stop not in completions[5].text and completions[5].finish_reason == "stop"
    assert plain.text.startswith(completions[5].text)
    assert completions[7].output_tokens <= 3
    assert tiny_engine.tokens_out - tokens_before == sum(c.output_tokens for c in completions)


def test_over_long_prompt_is_rejected_while_the_others_succeed(tiny_engine):
    long = GenerationRequest(id="long", messages=[{"role": "user", "content": "word " * 400}])
    completions = tiny_engine.generate([_ask(0), long, _ask(1)])
    assert [c.id for c in completions] == ["q0", "long", "q1"]
    assert completions[1].error == "prompt_too_long" and completions[1].text == ""
    assert completions[0].error is None and completions[2].error is None


class _Scripted:
    """A local chat-completions server that answers from a script (the last reply repeats) and
    records every request it saw."""

    def __init__(self, replies: list[tuple[int, dict[str, str], dict]] | Callable[[dict], tuple[int, dict, dict]]):
        self.replies = replies
        self.seen: list[dict] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {name.lower(): value for name, value in self.headers.items()}
                scripted.seen.append({"path": self.path, "headers": headers, "body": body})
                if callable(scripted.replies):
                    status, headers, payload = scripted.replies(body)
                else:
                    status, headers, payload = scripted.replies[min(len(scripted.seen), len(scripted.replies)) - 1]
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ok(text: str) -> tuple[int, dict, dict]:
    return 200, {}, {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _error(status: int, message: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    return status, headers or {}, {"error": {"message": message, "type": "Error", "code": status}}


def _engine(url: str, **config) -> OpenAIEngine:
    settings = {"api_key_env": None, "backoff_s": 0.01, **config}
    return OpenAIEngine(OpenAIEngineConfig(base_url=url, model="scripted", **settings),
                        SamplingConfig(max_tokens=8, stop=["###"], repetition_penalty=1.1))


def test_rate_limit_is_retried_after_retry_after():
    with FaultServer([error(429, "slow down", {"Retry-After": "0"}), ok("hello")]) as server:
        engine = _engine(server.url, backoff_s=60)  # only Retry-After: 0 keeps this test fast
        try:
            [completion] = engine.generate([_ask(0, prefix="Hi", stop=["\n\n"], max_tokens=100)])
        finally:
            engine.shutdown()
    assert completion.error is None
    assert completion.text == "Hihello"  # the server continued the prefix; the text includes it
    assert (completion.finish_reason, completion.prompt_tokens, completion.output_tokens) == ("stop", 7, 3)
    assert len(server.seen) == 2 and server.seen[1]["path"] == "/v1/chat/completions"
    body = server.seen[1]["body"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Hi"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["stop"] == ["###", "\n\n"] and body["max_tokens"] == 8 and body["n"] == 1
    assert body["repetition_penalty"] == 1.1 and body["seed"] == _ask(0).seed(0)
    assert server.seen[0]["headers"]["authorization"] == "Bearer EMPTY"


def test_server_errors_trip_the_breaker_after_max_retries():
    """An engine failure never becomes a rejected row: retried, then EngineUnavailable."""
    with FaultServer([error(503, "overloaded")]) as server:
        engine = _engine(server.url, max_retries=2)
        try:
            with pytest.raises(EngineUnavailable, match="HTTP 503.*still failing after 2 retries"):
                engine.generate([_ask(0)])
            with pytest.raises(EngineUnavailable):  # tripped: later calls fail at once, sending nothing
                engine.generate([_ask(1)])
        finally:
            engine.shutdown()
    assert len(server.seen) == 3
    assert (engine.retries, engine.outages) == (2, 1)


def test_a_failing_request_cancels_the_others_of_its_batch():
    with FaultServer([error(500, "boom")]) as server:
        engine = _engine(server.url, max_retries=1, max_concurrency=2)
        try:
            started = time.monotonic()
            with pytest.raises(EngineUnavailable):
                engine.generate([_ask(i) for i in range(50)])
        finally:
            engine.shutdown()
    assert time.monotonic() - started < 10
    assert len(server.seen) < 20  # the breaker stopped the batch: 50 requests x 2 tries never went out


def test_a_refused_key_or_unknown_model_stops_at_once():
    with FaultServer([error(404, "The model `scripted` does not exist.")]) as server:
        engine = _engine(server.url)
        try:
            with pytest.raises(EngineUnavailable, match="HTTP 404.*does not exist"):
                engine.generate([_ask(0)])
        finally:
            engine.shutdown()
    assert len(server.seen) == 1


def test_a_request_the_server_refuses_is_that_request_s_reject():
    with FaultServer([error(400, "invalid json schema"), ok("fine")]) as server:
        engine = _engine(server.url)
        try:
            first, second = engine.generate([_ask(0)]) + engine.generate([_ask(1)])
        finally:
            engine.shutdown()
    assert first.error.startswith("request_refused: HTTP 400") and second.text == "fine"
    assert len(server.seen) == 2


def test_a_request_whose_text_utf8_cannot_encode_is_that_request_s_reject_not_an_outage():
    with FaultServer([ok("fine")]) as server:
        engine = _engine(server.url, max_retries=2)
        try:
            broken = GenerationRequest(id="broken", messages=[{"role": "user", "content": "Tafsiri \ud800 hii."}])
            first, second = engine.generate([broken, _ask(1)])
        finally:
            engine.shutdown()
    assert first.error == "invalid_request: its text is not encodable as UTF-8 (surrogates not allowed)"
    assert second.text == "fine" and len(server.seen) == 1  # never sent, never retried
    assert (engine.retries, engine.outages) == (0, 0)


def test_unreachable_server_trips_the_breaker_and_fails_preflight():
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = _engine(url, max_retries=1)
    try:
        with pytest.raises(EngineUnavailable, match="connection"):
            engine.generate([_ask(0), _ask(1)])
        with pytest.raises(ConfigError, match=r"cannot reach the server .*start it or fix the URL"):
            _engine(url).preflight()
    finally:
        engine.shutdown()


def test_preflight_names_a_model_the_server_does_not_serve(vllm_url):
    engine = OpenAIEngine(OpenAIEngineConfig(base_url=vllm_url.replace("127.0.0.1", "user:sk-planted-in-url-123@127.0.0.1"),
                                             model="no-such-model", api_key_env=None), SamplingConfig())
    try:
        with pytest.raises(ConfigError) as info:
            engine.preflight()
    finally:
        engine.shutdown()
    message = str(info.value)
    assert "'no-such-model' is not served" in message and "'tiny'" in message
    assert "sk-planted-in-url-123" not in message


def test_preflight_passes_on_a_real_server_and_unseeded_requests_send_no_seed(vllm_url):
    engine = OpenAIEngine(OpenAIEngineConfig(base_url=vllm_url, model="tiny", api_key_env=None),
                          SamplingConfig(max_tokens=4, seed=None))
    try:
        engine.preflight()
        [completion] = engine.generate([_ask(0)])
    finally:
        engine.shutdown()
    assert completion.error is None and completion.output_tokens > 0
    with FaultServer([ok("x")]) as server:
        unseeded = OpenAIEngine(OpenAIEngineConfig(base_url=server.url, model="scripted", api_key_env=None),
                                SamplingConfig(seed=None))
        try:
            unseeded.generate([_ask(0)])
        finally:
            unseeded.shutdown()
    assert "seed" not in server.seen[0]["body"]


def test_without_continue_final_message_the_prefix_is_prepended_when_missing():
    with FaultServer([ok("Answer: yes"), ok("no")]) as server:
        engine = _engine(server.url, continue_final_message=False)
        try:
            first = engine.generate([_ask(0, prefix="Answer: ")])[0]
            second = engine.generate([_ask(1, prefix="Answer: ")])[0]  # a second call reuses the engine
        finally:
            engine.shutdown()
    assert (first.text, second.text) == ("Answer: yes", "Answer: no")
    assert all(seen["body"]["messages"][-1]["role"] == "user" for seen in server.seen)
    assert all("continue_final_message" not in seen["body"] for seen in server.seen)


def test_api_key_is_sent_but_never_shown(caplog):
    caplog.set_level(logging.DEBUG)
    os.environ["SYNTH_TEST_KEY"] = "sk-secret-123"
    try:
        with FaultServer([error(500, "boom"), ok("fine")]) as server:
            config = OpenAIEngineConfig(base_url=server.url, model="scripted", api_key_env="SYNTH_TEST_KEY",
                                        backoff_s=0.01)
            engine = OpenAIEngine(config, SamplingConfig())
            try:
                [completion] = engine.generate([_ask(0)])
                shown = [repr(engine), str(engine), repr(config), config.model_dump_json()]
            finally:
                engine.shutdown()
    finally:
        del os.environ["SYNTH_TEST_KEY"]
    assert completion.text == "fine"
    assert [seen["headers"]["authorization"] for seen in server.seen] == ["Bearer sk-secret-123"] * 2
    assert caplog.records  # the retry and the httpx/openai debug logs were captured
    for text in shown + [caplog.text, completion.error or ""]:
        assert "sk-secret-123" not in text


def test_missing_key_variable_is_a_configerror():
    name = "SYNTH_TEST_KEY_THAT_IS_NOT_SET"
    assert name not in os.environ
    config = OpenAIEngineConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=name)
    with pytest.raises(ConfigError, match=name):
        OpenAIEngine(config, SamplingConfig())


def test_a_key_pasted_into_api_key_env_is_rejected_without_echoing_it():
    with pytest.raises(ValueError) as info:
        OpenAIEngineConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="sk-secret-123")
    assert "sk-secret-123" not in str(info.value)


# ---- the capability probe on a server without structured output ---------------------------------

def _no_response_format(body: dict) -> tuple[int, dict, dict]:
    """A server that refuses any `response_format` as invalid (400), as minimal servers do (no real
    server here lacks every JSON mode), and answers everything else."""
    return _error(400, "response_format is not supported") if "response_format" in body else _ok('{"x": 1}')


def test_without_structured_output_the_judge_adapts_and_structured_icl_exits_2_naming_the_key():
    from synth.engines.capabilities import EngineNeeds
    from synth.methods.icl import pair_schema
    from synth.verify.judge import verdict_schema

    judge_only = EngineNeeds(schemas={"judge.enabled": verdict_schema()})
    with _Scripted(_no_response_format) as server:
        engine = _engine(server.url)
        try:
            found = engine.preflight(judge_only)
            assert found.structured == "text" and found.probed
            assert any("json_schema refused" in note for note in found.notes)
            server.seen.clear()
            [answer] = engine.generate([_ask(0, json_schema=verdict_schema())])
            body = server.seen[0]["body"]
            assert answer.error is None and "response_format" not in body
            assert '"language"' in body["messages"][-1]["content"]  # the schema went into the prompt
            with pytest.raises(ConfigError, match=r"^icl\.structured: .*set icl\.structured: false"):
                engine.preflight(EngineNeeds(schemas={"icl.structured": pair_schema(False)},
                                             strict=frozenset({"icl.structured"})))
        finally:
            engine.shutdown()
    assert engine.outages == 0

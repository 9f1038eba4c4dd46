"""The OpenAI-compatible engine against a real vLLM server, and against a scripted local HTTP server
for the failure paths (rate limits, outages, keys) that a healthy vLLM never produces."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synth.engines.base import GenerationRequest, SamplingConfig
from synth.engines.configs import OpenAIEngineConfig
from synth.engines.openai_api import OpenAIEngine
from synth.errors import ConfigError
from tests.conftest import CPU_ENV
from tests.ports import free_port


@pytest.fixture(scope="module")
def vllm_url(tiny_model_dir, tmp_path_factory):
    """A real `vllm.entrypoints.openai.api_server` on the tiny model (its own process group)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, **CPU_ENV, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_model_dir,
             "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "256", "--enforce-eager",
             "--dtype", "float32", "--served-model-name", "tiny"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"vLLM server exited with {server.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"vLLM server not healthy after 180 s:\n{tail}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the API server and its engine-core child
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


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

    def __init__(self, replies: list[tuple[int, dict[str, str], dict]]):
        self.replies = replies
        self.seen: list[dict] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {name.lower(): value for name, value in self.headers.items()}
                scripted.seen.append({"path": self.path, "headers": headers, "body": body})
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
    with _Scripted([_error(429, "slow down", {"Retry-After": "0"}), _ok("hello")]) as server:
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


def test_server_errors_give_up_after_max_retries():
    with _Scripted([_error(503, "overloaded")]) as server:
        engine = _engine(server.url, max_retries=2)
        try:
            [completion] = engine.generate([_ask(0)])
        finally:
            engine.shutdown()
    assert completion.error.startswith("engine_error: HTTP 503") and completion.text == ""
    assert len(server.seen) == 3


def test_other_client_errors_are_not_retried():
    with _Scripted([_error(404, "The model `scripted` does not exist.")]) as server:
        engine = _engine(server.url)
        try:
            [completion] = engine.generate([_ask(0)])
        finally:
            engine.shutdown()
    assert completion.error.startswith("engine_error: HTTP 404") and "does not exist" in completion.error
    assert len(server.seen) == 1


def test_unreachable_server_is_an_engine_error():
    engine = _engine(f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    try:
        completions = engine.generate([_ask(0), _ask(1)])
    finally:
        engine.shutdown()
    assert [c.error for c in completions] == ["engine_error: connection: ConnectError"] * 2


def test_without_continue_final_message_the_prefix_is_prepended_when_missing():
    with _Scripted([_ok("Answer: yes"), _ok("no")]) as server:
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
        with _Scripted([_error(500, "boom"), _ok("fine")]) as server:
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


def test_missing_key_variable_is_a_config_error():
    name = "SYNTH_TEST_KEY_THAT_IS_NOT_SET"
    assert name not in os.environ
    config = OpenAIEngineConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=name)
    with pytest.raises(ConfigError, match=name):
        OpenAIEngine(config, SamplingConfig())


def test_a_key_pasted_into_api_key_env_is_rejected_without_echoing_it():
    with pytest.raises(ValueError) as info:
        OpenAIEngineConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="sk-secret-123")
    assert "sk-secret-123" not in str(info.value)

"""The OpenAI engine against a hostile or broken server (tests/fault_server.py on 127.0.0.1): a server that
trickles, ignores max_tokens, lies about usage, sends garbage or half bodies, or carries credentials in
its URL. Whatever it sends, each request ends as an accepted text, that request's reject with a
registered reason, or a retried engine failure, within the deadline and the byte cap."""

from __future__ import annotations

import gzip
import itertools
import re
import json
import logging
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth import reasons
from synth.conversations import Conversation
from synth.engines.base import Completion, EngineUnavailable, GenerationRequest, SamplingConfig
from synth.engines.configs import OpenAIEngineConfig
from synth.engines.http_limits import answer_chars_bound, body_cap
from synth.engines.openai_api import OpenAIEngine
from synth.errors import ConfigError
from synth.languages import get_language
from synth.methods.translate import TranslateMethod
from synth.plan import Attempt
from synth.prompts import load_prompts
from tests.fault_server import USAGE, FaultServer, Reply, completion, error, ok

MAX_TOKENS = 8


def _engine(url: str, **config) -> OpenAIEngine:
    settings_ = {"api_key_env": None, "backoff_s": 0.01, "max_retries": 1, **config}
    return OpenAIEngine(OpenAIEngineConfig(base_url=url, model="scripted", **settings_),
                        SamplingConfig(max_tokens=MAX_TOKENS, seed=None))


def _ask(i: int = 0) -> GenerationRequest:
    return GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": f"Tell me about number {i}."}])


def _generate(server: FaultServer, requests=None, **config) -> list[Completion]:
    engine = _engine(server.url, **config)
    try:
        return engine.generate(requests or [_ask()])
    finally:
        engine.shutdown()


# 1. a deadline for the whole request, not for the gap between two bytes

def test_a_trickling_server_meets_the_request_deadline_then_the_outage_path():
    body = json.dumps(completion("Habari")).encode()
    with FaultServer([Reply(body=body, trickle_s=0.2)]) as server:  # the whole body would take ~40 s
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match=r"no complete answer within 1s.*still failing after 1 retries"):
            _generate(server, timeout_s=1)
        elapsed = time.monotonic() - started
    assert elapsed < 6, elapsed  # two attempts of 1 s each (and the backoff), never the trickle's 40 s
    assert len(server.seen) == 2


def test_a_trickled_model_list_does_not_hang_the_preflight():
    with FaultServer() as server:
        server.models = ["scripted"]
        engine = _engine(server.url, timeout_s=1)
        slow = Reply(body=b'{"object": "list", "data": [{"id": "scripted"}]}', trickle_s=0.2)
        original = server._send
        server._send = lambda handler, reply: original(handler, slow if reply.body and "data" in reply.body else reply)
        started = time.monotonic()
        try:
            with pytest.raises(ConfigError, match="did not list its models within 1s"):
                engine.preflight()
        finally:
            engine.shutdown()
    assert time.monotonic() - started < 5


# 3. what synth accepts from a server is bounded

def test_an_answer_far_over_max_tokens_is_that_request_s_reject_and_not_retried():
    with FaultServer([ok("x" * 2_000_000)]) as server:
        [completion_] = _generate(server)
    assert completion_.error.startswith("answer_too_long:") and completion_.text == ""
    assert "not read further" in completion_.error  # over the byte cap: the body was not even read whole
    assert len(server.seen) == 1


def test_text_over_the_per_token_bound_and_reported_tokens_over_max_tokens_are_rejects():
    too_many_chars = "y" * (answer_chars_bound(MAX_TOKENS) + 1)
    with FaultServer([ok(too_many_chars), ok("short", usage={"prompt_tokens": 5, "completion_tokens": 500})]) as server:
        first, second = _generate(server, [_ask(0)]), _generate(server, [_ask(1)])
    assert first[0].error.startswith("answer_too_long:") and "characters for max_tokens 8" in first[0].error
    assert second[0].error.startswith("answer_too_long:") and "500 output tokens" in second[0].error
    assert reasons.split_error(first[0].error)[0] in reasons.FIXED


def test_a_gzip_bomb_is_capped_while_it_is_decompressed():
    big = json.dumps(completion(" " * (64 << 20))).encode()  # 64 MB of text in a ~65 KB body
    with FaultServer([Reply(body=gzip.compress(big), headers={"Content-Encoding": "gzip"})]) as server:
        [completion_] = _generate(server)
    assert completion_.error.startswith("answer_too_long:") and f"over {body_cap(MAX_TOKENS)} bytes" in completion_.error


def test_a_gzipped_honest_answer_is_read():
    with FaultServer([Reply(body=completion("Habari ya leo."), gzip=True)]) as server:
        [completion_] = _generate(server)
    assert completion_.error is None and completion_.text == "Habari ya leo."


def test_a_runaway_translation_is_rejected_before_it_fans_out_into_back_translations():
    source = Conversation("s", "open_qa", (("user", "Why is the river so busy today?"),
                                           ("assistant", "Many people came early to fish.")))
    method = TranslateMethod(load_prompts()["translate_turn"], load_prompts()["back_translate_turn"],
                             {c: get_language(c) for c in ("eng_Latn", "swh_Latn")}, [source], "eng_Latn", seed=0,
                             model="m", max_chars=200)
    attempt = Attempt("swh_Latn", "translate", "open_qa", 0)
    requests = method.requests([attempt])
    runaway = ". ".join(["Mto una watu wengi leo"] * 400)  # about 9,600 characters for a 31-character source
    completions = [Completion(r.id, text=runaway if r.id.endswith("t0.0") else "Watu wengi walikuja mapema.",
                              finish_reason="stop") for r in requests]
    [row] = method.rows([attempt], completions)
    assert row.error == "translation_too_long" and "at most 3" in row.error_detail
    assert method.back_requests([row]) == []
    sane = [Completion(r.id, text="Kwa nini mto una watu wengi leo?", finish_reason="stop") for r in requests]
    [row] = method.rows([attempt], sane)
    assert row.error is None and len(method.back_requests([row])) == 2


# 4. odd fields: retried as the server's fault or that request's reject, never a traceback

@pytest.mark.parametrize("reply, why", [
    (ok(usage="lots"), "usage is the string 'lots'"),
    (ok(usage={"prompt_tokens": 10 ** 30, "completion_tokens": 1}), "usage.prompt_tokens is a number of 31 digits"),
    (ok(usage={"prompt_tokens": -1, "completion_tokens": 1}), "usage.prompt_tokens is -1"),
    (ok(usage={"prompt_tokens": 5, "completion_tokens": True}), "usage.completion_tokens is true"),
    (ok(usage={"prompt_tokens": 900_000, "completion_tokens": 2}), "for a prompt of 23 characters"),
    (Reply(body={"object": "chat.completion", "choices": "none"}), "no choices"),
    (Reply(body={"choices": [{"message": "hi"}]}), "choices[0] has no message"),
    (ok({"text": 5}), "message.content is a dict"),
    (ok(finish_reason=7), "finish_reason is 7"),
    (Reply(body=b"<html>502 Bad Gateway</html>"), "not JSON"),
    (Reply(body=b"\xff\xfe garbage"), "not JSON"),
    (Reply(body=[1, 2]), "not a JSON object (a list)"),
    (Reply(body={"error": {"message": "model overloaded"}}), "HTTP 200 carrying an error: model overloaded"),
    (Reply(body=completion("Habari"), cut_at=20), "connection"),
])
def test_a_malformed_answer_is_retried_as_the_server_s_fault(reply, why):
    with FaultServer([reply, ok("Habari ya leo.")]) as server:
        engine = _engine(server.url)
        try:
            [completion_] = engine.generate([_ask()])
        finally:
            engine.shutdown()
    assert completion_.error is None and completion_.text == "Habari ya leo.", completion_
    assert engine.retries == 1 and len(server.seen) == 2
    with FaultServer([reply]) as server:
        with pytest.raises(EngineUnavailable, match=re.escape(why)):
            _generate(server)


def test_null_usage_and_null_content_are_answers_with_zero_counts():
    with FaultServer([ok("Habari", usage=None), ok(None), ok([{"type": "text", "text": "Hab"}, {"type": "text", "text": "ari"}])]) as server:
        completions = [_generate(server, [_ask(i)])[0] for i in range(3)]
    assert [(c.error, c.text, c.prompt_tokens, c.output_tokens) for c in completions] == [
        (None, "Habari", 0, 0), (None, "", 7, 3), (None, "Habari", 7, 3)]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 40, 10 ** 40), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=10)
field_values = st.one_of(json_values, st.just(USAGE), st.just("stop"), st.just("Habari ya leo."),
                         st.integers(0, 10 ** 6).map(lambda n: {"prompt_tokens": n, "completion_tokens": n % 50}))


@st.composite
def server_answers(draw) -> Reply:
    """A chat completion with random fields replaced by random JSON, or a random body altogether."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "body", "bytes"]))
    if kind == "bytes":
        return Reply(status=draw(st.sampled_from([200, 200, 201, 500])), body=draw(st.binary(max_size=200)))
    if kind == "body":
        return Reply(body=draw(json_values))
    answer = completion("Habari ya leo.")
    choice, message = answer["choices"][0], answer["choices"][0]["message"]
    for name in draw(st.lists(st.sampled_from(["usage", "content", "finish_reason", "choices", "message", "choice",
                                               "error", "top"]), max_size=3, unique=True)):
        value = draw(field_values)
        if name == "usage":
            answer["usage"] = value
        elif name == "content":
            message["content"] = value
        elif name == "finish_reason":
            choice["finish_reason"] = value
        elif name == "choices":
            answer["choices"] = value
        elif name == "message":
            choice["message"] = value
        elif name == "choice":
            answer["choices"] = [value]
        elif name == "error":
            answer["error"] = value
        elif name == "top":
            answer[draw(st.text(max_size=8))] = value
    return Reply(body=answer)


_examples = itertools.count()


@pytest.fixture(scope="module")
def shared_server():
    with FaultServer() as server:
        yield server


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=server_answers())
def test_any_server_answer_ends_as_a_text_a_reject_with_a_reason_or_a_retried_failure(shared_server, answer):
    shared_server.script = [answer]
    n = next(_examples) * 2  # this example's own prompts: a request cancelled in the one before may arrive late
    engine = _engine(shared_server.url, max_retries=1, timeout_s=5)
    started = time.monotonic()
    try:
        try:
            engine.preflight()  # the first answer a job sees: a ConfigError (exit 2) at worst
        except ConfigError as exc:
            assert "a one-token test request failed: engine_error" in str(exc)
        completions = engine.generate([_ask(n), _ask(n + 1)])
    except EngineUnavailable as exc:  # the server's fault, retried then the breaker: the job stops resumable
        assert "engine_error" in str(exc)
        assert engine.retries >= 1
    else:
        for c in completions:
            if c.error is None:
                assert isinstance(c.text, str) and len(c.text) <= answer_chars_bound(MAX_TOKENS)
                assert c.finish_reason is None or isinstance(c.finish_reason, str)
            else:
                assert reasons.split_error(c.error)[0] in reasons.FIXED, c.error
            for count in (c.prompt_tokens, c.output_tokens):
                assert type(count) is int and 0 <= count <= 10 ** 7
    finally:
        engine.shutdown()
    assert time.monotonic() - started < 10
    mine = {_ask(n).messages[0]["content"], _ask(n + 1).messages[0]["content"]}
    sent = [s for s in list(shared_server.seen) if s["body"]["messages"][0]["content"] in mine]
    assert len(sent) <= 4  # two requests, one retry each at most (the preflight asks about "Hi")


# 2. credentials in the base_url's query: sent right, shown nowhere

def test_a_query_in_base_url_is_sent_on_every_request_and_redacted_everywhere(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpx2"):  # `synth.cli.main`, run in-process by other tests, quiets them
        caplog.set_level(logging.DEBUG, logger=name)
    secrets = ("k9x", "tq7")  # short values: a scrubber that only knows token shapes misses them
    with FaultServer([ok("hello"), error(400, "bad request for http://127.0.0.1/v1/chat/completions?api-key=k9x&token=tq7"),
                      ok("fine")]) as server:
        url = f"{server.url}?api-key={secrets[0]}&token={secrets[1]}&api-version=2024-06-01"
        engine = _engine(url)
        try:
            engine.preflight()
            first, second = engine.generate([_ask(0)]) + engine.generate([_ask(1)])
            shown = [repr(engine), engine.endpoint, first.error]
        finally:
            engine.shutdown()
        logging.getLogger("some.new.http.stack").warning("GET %s failed", url)  # any logger, any name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn(f"retrying {url}")
    query = f"api-key={secrets[0]}&token={secrets[1]}&api-version=2024-06-01"
    assert [s["path"] for s in server.seen] == [f"/v1/chat/completions?{query}"] * 3  # preflight + 2
    assert server.gets == [f"/v1/models?{query}"]
    assert first.error.startswith("request_refused") and second.text == "fine"
    assert any(r.name.startswith("httpx") for r in caplog.records)  # the HTTP stack's own request lines
    assert "api-version=2024-06-01" in caplog.text  # what is not a credential stays readable
    for text in shown + [caplog.text]:
        for secret in secrets:
            assert secret not in text, text


def test_a_base_url_with_a_repeated_or_fragment_query_is_refused_at_config_time():
    for url, problem in [("http://h:1/v1?key=a&key=b", "'key' is given twice"), ("http://h:1/v1#frag", "fragment"),
                         ("ftp://h/v1", "http:// or https://"), ("http:///v1", "no host")]:
        with pytest.raises(ValueError, match=problem) as info:
            OpenAIEngineConfig(base_url=url, model="m", api_key_env=None)
        assert "=a" not in str(info.value) and "=b" not in str(info.value)

"""synth against real OpenAI-compatible servers it did not write: llama.cpp's (llama-cpp-python
0.3.x, the bundled SmolLM2 GGUF) and vLLM's own. Each one's capabilities are measured by the preflight
probe, never assumed, and a small job with ICL (structured), translation and the judge completes.

The llama.cpp tier skips when llama-cpp-python[server] is not installed (`make setup` builds it once;
a failed build leaves a note and this tier skips).
"""

from __future__ import annotations

import pytest

from synth.conversations import load_conversations
from synth.engines.base import GenerationRequest, SamplingConfig
from synth.engines.capabilities import PROBE_SCHEMA, Capabilities, EngineNeeds
from synth.engines.configs import OpenAIEngineConfig
from synth.engines.openai_api import OpenAIEngine
from synth.languages import load_registry
from synth.methods.icl import IclMethod, pair_schema
from synth.models import bundled_gguf
from synth.plan import Attempt
from synth.prompts import load_prompts
from synth.verify.judge import verdict_schema
from tests.ports import free_port
from tests.real_servers import ROOT, LlamaCppServer, run_cli, small_job
from tests.vllm_server import VllmServer

NEEDS = EngineNeeds(schemas={"icl.structured": pair_schema(notes=False), "judge.enabled": verdict_schema()},
                    strict=frozenset({"icl.structured"}), prefix=True, seeds=True)
NOT_INSTALLED = ("llama-cpp-python[server] is not installed: `make setup` builds it from source once (about "
                 "13 minutes on 2 cores); pip install 'llama-cpp-python[server]==0.3.36'")


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason=NOT_INSTALLED)
    server = LlamaCppServer(bundled_gguf("bundled:smollm2"), free_port(),
                            tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def vllm_url(smollm2_dir, tmp_path_factory):
    server = VllmServer(smollm2_dir, free_port(), tmp_path_factory.mktemp("vllm-server") / "server.log",
                        served_name="smollm2", max_model_len=2048)
    try:
        yield server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


def _engine(url: str, **config) -> OpenAIEngine:
    return OpenAIEngine(OpenAIEngineConfig(base_url=url, model="smollm2", api_key_env=None, max_concurrency=2,
                                           backoff_s=0.01, **config),
                        SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=40, seed=0))


def _icl_requests(n: int) -> tuple[IclMethod, list[Attempt], list[GenerationRequest]]:
    seeds = load_conversations(ROOT / "examples/seeds/swh_Latn.jsonl", "seeds")
    method = IclMethod(load_prompts()["icl_pair_direct"], dict(load_registry()), {"swh_Latn": seeds}, k=1, seed=0,
                       model="smollm2")
    attempts = [Attempt("swh_Latn", "icl", "open_qa", i) for i in range(n)]
    return method, attempts, method.requests(attempts)


# ---- llama.cpp's server -------------------------------------------------------------------------

@pytest.mark.slow
def test_llama_cpp_probe_measures_what_the_server_takes(llama_url):
    engine = _engine(llama_url)
    try:
        found = engine.preflight(NEEDS)
    finally:
        engine.shutdown()
    # response_format json_schema is refused (HTTP 500, a validation error); json_object with a schema is a grammar
    assert found.probed and found.structured == "json_object+schema", found
    assert any("json_schema refused" in note for note in found.notes)
    # llama.cpp ignores continue_final_message: it closes the prefilled turn and opens a new one
    assert found.continue_final_message is False
    assert any("continue_final_message ignored" in note for note in found.notes)
    assert found.seeds is True and found.seeds_reproducible is True
    assert set(found.checked) == {"structured", "continue_final_message", "seeds"}


@pytest.mark.slow
def test_llama_cpp_s_invalid_request_500_is_that_request_s_reject_not_an_outage(llama_url):
    engine = _engine(llama_url, max_retries=3)
    engine.capabilities = Capabilities(structured="json_schema")  # a form this server refuses
    question = [{"role": "user", "content": "Hi"}]
    try:
        [refused] = engine.generate([GenerationRequest(id="bad", messages=question, max_tokens=4,
                                                       json_schema=PROBE_SCHEMA)])
        [fine] = engine.generate([GenerationRequest(id="ok", messages=question, max_tokens=4)])
    finally:
        engine.shutdown()
    assert refused.error.startswith("request_refused: HTTP 500") and "validation error" in refused.error
    assert engine.retries == 0 and engine.outages == 0  # not retried, breaker untouched
    assert fine.error is None and fine.output_tokens > 0


@pytest.mark.slow
def test_icl_on_llama_cpp_with_the_default_continue_final_message_writes_real_instructions(llama_url):
    """Before the probe, 13 of 14 outputs began `### Instruction\\n### Response`: the prefix was sent as an
    assistant turn that llama.cpp closed, and the model started over with a response."""
    engine = _engine(llama_url)  # continue_final_message: true, the default
    method, attempts, requests = _icl_requests(4)
    try:
        engine.preflight(EngineNeeds(prefix=True))
        completions = engine.generate(requests)
    finally:
        engine.shutdown()
    assert engine.capabilities.continue_final_message is False
    texts = [c.text for c in completions]
    assert all(c.error is None for c in completions)
    assert not any(t.startswith("### Instruction\n### Response") for t in texts), texts
    assert sum(t.lstrip().startswith("### Instruction") for t in texts) >= 2, texts  # the model wrote the format


@pytest.mark.slow
def test_a_job_with_structured_icl_translation_and_the_judge_completes_on_llama_cpp(llama_url, tmp_path):
    result, manifest = run_cli(small_job(tmp_path, llama_url, "smollm2"), tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert manifest is not None and manifest["status"] in ("complete", "partial")
    capabilities = manifest["engine"]["capabilities"]
    assert capabilities["probed"] and capabilities["structured"] == "json_object+schema"
    assert capabilities["continue_final_message"] is None  # structured ICL sends no prefix: not probed
    assert capabilities["checked"] == ["structured", "seeds"] and capabilities["seeds"] is True
    _completed_with_the_judge(manifest)


def _completed_with_the_judge(manifest: dict) -> None:
    """No request was refused or lost to the engine, and the judge graded rows (a verdict it could read
    gives judge scores; an unreadable one is judge_unparseable, never an engine error)."""
    assert manifest["engine"]["outages"] == 0
    reasons = manifest["languages"]["swh_Latn"]["rejected_by_reason"]
    assert not {"request_refused", "engine_error"} & set(reasons), reasons
    assert manifest["judge"]["usage"]["requests"] >= 1, manifest["judge"]
    assert manifest["languages"]["swh_Latn"]["attempts"] == 3


# ---- vLLM's server ------------------------------------------------------------------------------

@pytest.mark.slow
def test_vllm_server_probe_and_a_job_with_structured_icl_translation_and_the_judge(vllm_url, tmp_path):
    engine = _engine(vllm_url)
    try:
        found = engine.preflight(NEEDS)
    finally:
        engine.shutdown()
    assert found.structured == "json_schema" and found.continue_final_message is True, found
    assert found.seeds is True and found.notes == ()

    result, manifest = run_cli(small_job(tmp_path, vllm_url, "smollm2"), tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert manifest is not None and manifest["engine"]["capabilities"]["structured"] == "json_schema"
    _completed_with_the_judge(manifest)

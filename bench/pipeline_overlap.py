"""Verification pipelined with generation vs verification after each slice: same job, same engine, one run.

(a) `verify.workers: 0`: the driver verifies each slice after generating it (generation idles).
(b) `verify.workers: N`: verifier actors score slice k while the engine generates slice k+1.
Sampling is greedy, so both runs generate the same rows; the bench checks that they commit the same
ids and verdicts. Prints the wall time of each and, as the last line, `ratio <a/b>` (above 1: the
pipelined run is faster).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job_config(model: str, rows: int, workers, preset: str, max_tokens: int, batch_size: int, cpu: bool):
    from synth.config import JobConfig
    from tests.cpu_env import CPU_ENV

    return JobConfig.model_validate({
        "name": "pipeline-bench",
        "targets": [{"lang": lang, "rows": rows, "methods": {"icl": 0.5, "translate": 0.5},
                     "categories": ["open_qa", "reasoning"], "seeds": str(ROOT / "examples" / "seeds" / f"{lang}.jsonl")}
                    for lang in ("fra_Latn", "swh_Latn")],
        "sources": {"path": str(ROOT / "examples" / "sources" / "en_sft.jsonl")},
        "engine": {"type": "vllm", "model": model, "max_model_len": 1536, "num_cpus": 1, "batch_size": batch_size,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"} if cpu else {},
                   "env": CPU_ENV if cpu else {}},
        "sampling": {"max_tokens": max_tokens, "temperature": 0.0, "top_p": 1.0, "seed": 0},
        "plan": {"max_rounds": 2, "max_attempts_per_row": 3},
        "verify": {"preset": preset, "workers": workers},
    })


def committed(out: Path):
    from synth.shards import read_committed

    return read_committed(out).select("id", "accepted", "reject_reasons")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:smollm2")
    parser.add_argument("--rows", type=int, default=6, help="accepted rows wanted per language (2 languages)")
    parser.add_argument("--workers", default="auto", help="verify.workers of the pipelined run")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8, help="engine batch: slices are 2 batches per replica")
    parser.add_argument("--order", default="sequential,pipelined",
                        help="run order; the first run also pays warm-up, so try both orders")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    logging.basicConfig(level=logging.WARNING)

    import ray
    import torch

    from synth.prepare import prepare
    from synth.engines.start import start_engine
    from synth.runner import JobRun

    cpu = not torch.cuda.is_available()
    workers = args.workers if args.workers == "auto" else int(args.workers)
    model = args.model
    if model.startswith("bundled:"):
        from synth.models import resolve_model

        model = resolve_model(model)
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, log_to_driver=False)
    engine_job = job_config(model, args.rows, 0, args.preset, args.max_tokens, args.batch_size, cpu)
    pool = start_engine(engine_job.engine, engine_job.sampling)
    try:
        times, frames = {}, {}
        settings = {"sequential": 0, "pipelined": workers}
        with tempfile.TemporaryDirectory() as tmp:
            for label in args.order.split(","):
                w = settings[label]
                job = job_config(model, args.rows, w, args.preset, args.max_tokens, args.batch_size, cpu)
                out = Path(tmp) / label
                run = JobRun(prepare(job), out)
                start = time.perf_counter()
                manifest = run.run(engine=pool)
                times[label] = time.perf_counter() - start
                frames[label] = committed(out)
                slices = len(list((out / "_work").glob("round-*.parquet")))
                generating = run._tokens_time  # wall time inside the engine's generate calls
                print(f"{label:<11} verify.workers={w!s:<5} {times[label]:7.1f}s  (generating {generating:.1f}s, "
                      f"the rest {times[label] - generating:.1f}s)  {frames[label].height} attempts "
                      f"in {slices} slices, {manifest['totals']['accepted']} accepted")
        same = frames["sequential"].equals(frames["pipelined"])
        print(f"same ids and verdicts: {same}")
        print(f"ratio {times['sequential'] / times['pipelined']:.2f}")
    finally:
        pool.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()

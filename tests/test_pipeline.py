"""Verification pipelined with generation: the same job verified in the driver (workers 0) and on 1
or 2 verifier actors commits the same rows with the same verdicts, slice by slice."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.config import JobConfig
from synth.engines.start import start_engine
from synth.prepare import prepare
from synth.runner import JobRun
from synth.verify.base import Candidate
from synth.verify.workers import VerificationPool, VerifierSpec, plan_workers
from tests.conftest import CPU_ENV

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# filters that let the random-weight model's output through (LID and round trip at 0), so acceptance,
# dedup and the per-cell surplus decision all happen and can differ if they were applied out of order
LENIENT = {"name": "lenient", "filters": ["empty", "copy", "lid", "roundtrip", "dedup"],
           "thresholds": {"empty": 1, "lid": 0.0, "roundtrip": 0.0}}


def tiny_job(tmp_path: Path, model_dir: str, workers, rows: int = 4) -> JobConfig:
    preset = tmp_path / "lenient.yaml"
    preset.write_text(yaml.safe_dump(LENIENT))
    return JobConfig.model_validate({
        "name": "pipeline",
        "targets": [{"lang": lang, "rows": rows, "methods": {"icl": 0.5, "translate": 0.5},
                     "categories": ["open_qa", "writing"], "seeds": str(EXAMPLES / "seeds" / f"{lang}.jsonl")}
                    for lang in ("fra_Latn", "swh_Latn")],
        "sources": {"path": str(EXAMPLES / "sources" / "en_sft.jsonl")},
        "engine": {"type": "vllm", "model": model_dir, "max_model_len": 1024, "num_cpus": 1, "batch_size": 4,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "icl": {"k": 1},
        # greedy (the same prompts give the same text in every run, so runs compare row by row); the
        # repetition penalty keeps the random model from emitting only newlines
        "sampling": {"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 2.0},
        # 3x the attempts a cell needs: rows that pass every filter beyond a cell's target become surplus
        "plan": {"initial_acceptance": 1.0, "oversample": 3.0, "max_rounds": 2, "max_attempts_per_row": 4},
        "verify": {"preset": str(preset), "workers": workers},
    })


@pytest.fixture(scope="module")
def greedy_pool(ray_address, tiny_model_dir, tmp_path_factory):
    """One replica for every run of this module (started from the job's own engine config)."""
    job = tiny_job(tmp_path_factory.mktemp("engine"), tiny_model_dir, 0)
    pool = start_engine(job.engine, job.sampling)
    yield pool
    pool.shutdown()


def _committed(out: Path) -> pl.DataFrame:
    parts = sorted((out / "_work").glob("round-*.parquet"))
    return pl.concat([pl.read_parquet(p).with_columns(pl.lit(p.name).alias("file")) for p in parts])


def _timeless(languages: dict) -> dict:
    """The manifest's languages without engine seconds (wall time differs between runs; tokens do not)."""
    out = {}
    for lang, stats in languages.items():
        cost = {m: {k: v for k, v in c.items() if k not in ("engine_seconds", "per_accepted_row")}
                for m, c in stats.get("cost", {}).items()}
        out[lang] = {**stats, "cost": cost}
    return out


def test_same_rows_and_verdicts_with_0_1_2_workers(greedy_pool, tiny_model_dir, tmp_path):
    runs, seconds = {}, {}
    for workers in (0, 1, 2):
        out = tmp_path / f"w{workers}"
        t0 = time.perf_counter()
        manifest = JobRun(prepare(tiny_job(tmp_path, tiny_model_dir, workers)), out).run(engine=greedy_pool)
        seconds[workers] = time.perf_counter() - t0
        runs[workers] = (manifest, _committed(out))
    base_manifest, base = runs[0]
    reasons = {r for rs in base["reject_reasons"].to_list() for r in rs}
    # the job exercises what must be applied in order: acceptance, surplus and several slices per round
    assert base["accepted"].sum() > 0 and "surplus" in reasons, reasons
    assert base.filter(pl.col("round") == 1)["file"].n_unique() > 1
    columns = ["file", "id", "accepted", "reject_reasons", "reject_details", "scores", "messages"]
    for workers in (1, 2):
        manifest, frame = runs[workers]
        assert frame.select(columns).equals(base.select(columns)), f"workers={workers} differs from the driver"
        assert manifest["totals"] == base_manifest["totals"]
        assert _timeless(manifest["languages"]) == _timeless(base_manifest["languages"])
    print(f"run wall time by verify.workers: {seconds}")


def test_verifier_reservation_shrinks_instead_of_waiting(ray_address, tmp_path, tiny_model_dir):
    """Asking for more CPUs than are free must not leave the actors pending forever (1-CPU machines)."""
    import ray

    assert plan_workers("auto", 0.5, 1.0) == (2, 0.5)
    assert plan_workers("auto", 0.5, 0.0) == (1, 0.0)  # the replica took the only CPU: share it
    assert plan_workers(3, 0.5, 1.0) == (3, 0.333)
    assert plan_workers(0, 0.5, 8.0) == (0, 0.0)
    assert plan_workers("auto", 0.5, 64.0)[0] == 4

    job = tiny_job(tmp_path, tiny_model_dir, 2)
    p = prepare(job)
    spec = VerifierSpec((p.preset, p.languages, set(p.lid_skip), None, {}))
    driver = spec.build()
    free = ray.available_resources().get("CPU", 0.0)
    t0 = time.perf_counter()
    pool = VerificationPool(spec, driver, workers=2, num_cpus=free + 10)  # more than the cluster has
    try:
        assert time.perf_counter() - t0 < 60 and len(pool.actors) == 2
        assert pool.num_cpus <= free / 2
        batch = [Candidate(id=str(i), lang="swh_Latn", text=t, source=s, source_lang="eng_Latn", back_translation=s)
                 for i, (t, s) in enumerate([("Habari ya asubuhi, rafiki yangu mpendwa.", "Good morning, my dear friend."),
                                             ("", "Empty answer."),
                                             ("Bonjour tout le monde, comment allez-vous?", "Hello everyone.")])]
        remote = pool.submit(batch).result()
        local = driver.score_filters(batch)
        assert [(v.scores, v.reasons) for v in remote] == [(v.scores, v.reasons) for v in local]
        assert remote[1].reasons == ["empty"]
    finally:
        pool.shutdown()


def test_a_judge_engine_that_fails_its_preflight_leaves_nothing_and_the_callers_engine_running(
        greedy_pool, tiny_model_dir, tmp_path):
    """The engine lifecycle of a run (JobRun._engines): the judge's separate engine is checked before
    the run directory is written; when it fails, the lock is taken back, nothing is written, and an
    engine the caller gave is not shut down (the caller owns it)."""
    from synth.engines.base import GenerationRequest
    from synth.errors import ConfigError
    from tests.ports import free_port

    job = tiny_job(tmp_path, tiny_model_dir, 0).model_dump()
    job["judge"] = {"enabled": True, "engine": {"type": "openai", "model": "judge", "api_key_env": None,
                                                "base_url": f"http://127.0.0.1:{free_port()}/v1"}}
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="cannot reach the server"):
        JobRun(prepare(JobConfig.model_validate(job)), out).run(engine=greedy_pool)
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    answer = greedy_pool.generate([GenerationRequest(id="after", messages=[{"role": "user", "content": "Hi"}],
                                                     max_tokens=2)])
    assert [c.id for c in answer] == ["after"] and answer[0].error is None

"""Cost before the run: `synth run --dry-run` (nothing started, nothing written, its arithmetic), money at
`engine.price`, and `plan.budget` stopping a real run between slices, resumed with a raised budget."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.config import parse_job
from synth.estimate import TokenCounter, estimate, token_counter
from synth.plan import Attempt
from synth.prepare import prepare
from tests.conftest import CPU_ENV

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "seeds" / "eng_Latn.jsonl"
NOUNS = ["river", "market", "garden", "teacher", "bridge", "kitchen", "forest", "village", "library", "harbour"]


def _sources(path: Path, per_category: int = 10) -> Path:
    lines = [json.dumps({"id": f"open_qa-{noun}", "category": "open_qa", "messages": [
        {"role": "user", "content": f"Why is the {noun} so busy today?"},
        {"role": "assistant", "content": f"The {noun} is busy because many people came early."}]})
        for noun in NOUNS[:per_category]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write(directory: Path, job: dict) -> Path:
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _icl_job(model: str, **plan) -> dict:
    return {"name": "dry", "targets": [{"lang": "eng_Latn", "rows": 4, "methods": {"icl": 1.0},
                                        "categories": ["open_qa"], "seeds": str(SEEDS)}],
            "engine": {"type": "vllm", "model": model, "throughput_tokens_per_s": 100.0,
                       "price": {"prompt": 2.0, "output": 10.0, "currency": "EUR"}},
            "sampling": {"max_tokens": 50, "temperature": 0.7, "top_p": 1.0, "seed": 0},
            "icl": {"k": 2, "prompt": "icl_pair_direct"},
            "plan": {"initial_acceptance": 0.5, "oversample": 1.0, "max_attempts_per_row": 3, **plan}}


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in sorted(root.rglob("*"))}


def test_dry_run_starts_no_engine_and_writes_nothing(tmp_path, tiny_model_dir):
    """The CLI prints the plan (table and JSON) without importing Ray or vLLM and without creating a file
    anywhere under the working directory, the job's directory or the Hugging Face cache it was given."""
    job = _write(tmp_path, {**_icl_job(tiny_model_dir), "name": "nothing-written"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"), "RAY_ADDRESS": "127.0.0.1:1"}
    before = _tree(tmp_path)
    probe = ("import sys\n"
             "from synth.cli import main\ncode = main(sys.argv[1:])\n"
             "print('LOADED', sorted(m for m in ('ray', 'vllm') if m in sys.modules), file=sys.stderr)\n"
             "sys.exit(code)")
    for fmt in ("table", "json"):
        done = subprocess.run([sys.executable, "-c", probe, "run", str(job), "--dry-run", "--format", fmt],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "LOADED []" in done.stderr
        if fmt == "json":
            est = json.loads(done.stdout)
            assert est["expected"]["attempts"] == 8 and est["tokens_counted_with"].startswith("the tokenizer")
        else:
            assert "no engine started, nothing written" in done.stdout and "EUR" in done.stdout
    assert _tree(tmp_path) == before
    assert not (tmp_path / "out").exists()


def test_estimate_arithmetic_on_a_small_job(tmp_path, tiny_model_dir):
    """4 rows at a prior of 0.5 (oversample 1): 8 attempts in one round; prompt tokens are those of the
    8 real requests counted with the model's tokenizer and chat template; output 8 x max_tokens;
    engine-hours at the stated throughput; money at engine.price; at most the attempt budget (12)."""
    prepared = prepare(parse_job(_write(tmp_path, _icl_job(tiny_model_dir))))
    est = estimate(prepared)
    counter = token_counter(tiny_model_dir)
    assert counter._tokenizer is not None
    icl, _ = prepared.methods
    requests = icl.requests([Attempt("eng_Latn", "icl", "open_qa", i) for i in range(8)])
    prompt = sum(counter.chat(r.messages, r.prefix) for r in requests)
    exp = est["expected"]
    assert (exp["attempts"], exp["requests"], est["rounds_expected"]) == (8, 8, 1)
    assert exp["prompt_tokens"] == prompt and exp["output_tokens"] == 8 * 50
    assert exp["tokens"] == prompt + 400
    assert math.isclose(exp["engine_hours"], round(400 / 100 / 3600, 4))
    assert math.isclose(exp["money"], round(prompt / 1e6 * 2 + 400 / 1e6 * 10, 4))
    assert est["at_most"]["attempts"] == 12 and est["at_most"]["output_tokens"] == 12 * 50
    assert est["currency"] == "EUR" and est["throughput_from"] == "engine.throughput_tokens_per_s"
    assert est["budget"] == {}
    job = _icl_job(tiny_model_dir, budget={"tokens": prompt + 100, "money": 1.0})
    budgeted = estimate(prepare(parse_job(_write(tmp_path, job))))["budget"]
    assert budgeted["tokens"]["fits"] is False and budgeted["money"]["fits"] is True
    # a lower prior: the planner sizes round 1 at need / prior, capped by the attempt budget
    low = estimate(prepare(parse_job(_write(tmp_path, _icl_job(tiny_model_dir, initial_acceptance=0.4)))))
    assert low["expected"]["attempts"] == 10


def test_translation_estimate_counts_back_translations_and_caps_at_the_sources(tmp_path, tiny_model_dir):
    """Every forward translation back-translated with `back_translate: all`; a cell never plans more
    attempts than it has sources, and the judge adds one request per judged row."""
    job = _icl_job(tiny_model_dir)
    job["targets"] = [{"lang": "swh_Latn", "rows": 6, "methods": {"translate": 1.0}, "categories": ["open_qa"]}]
    job["sources"] = {"path": str(_sources(tmp_path / "sources.jsonl", per_category=5))}
    job["translate"] = {"back_translate": "all"}
    job["judge"] = {"enabled": True, "rows": "all", "max_tokens": 30}
    job["plan"] = {"initial_acceptance": 1.0, "oversample": 1.0, "max_attempts_per_row": 3}
    est = estimate(prepare(parse_job(_write(tmp_path, job))))
    exp = est["expected"]
    assert exp["attempts"] == 5  # 6 rows wanted, 5 sources: each is translated at most once
    assert est["at_most"]["attempts"] == 5
    # two one-sentence messages per source: 2 forward + 2 back-translations + 1 judge request
    assert exp["requests"] == 5 * 5
    assert exp["judge_output_tokens"] == 5 * 30 and exp["judge_prompt_tokens"] > 0


def test_offline_hub_id_falls_back_to_characters_per_token_and_says_so(tmp_path):
    count = token_counter("nobody/not-a-model-anywhere")
    assert count._tokenizer is None and "characters per token" in count.how and "nobody/not-a-model" in count.how
    assert TokenCounter("rule").text("x" * 40) == 10


def test_money_budget_without_a_price_is_refused(tmp_path, tiny_model_dir):
    job = _icl_job(tiny_model_dir)
    del job["engine"]["price"]
    job["plan"]["budget"] = {"money": 5}
    done = subprocess.run([sys.executable, "-m", "synth.cli", "run", str(_write(tmp_path, job)), "--dry-run"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 2 and "plan.budget.money" in done.stderr and "engine.price" in done.stderr
    assert "Traceback" not in done.stderr


def test_budget_is_not_part_of_the_job_identity(tmp_path, tiny_model_dir):
    job = _icl_job(tiny_model_dir)
    base = parse_job(_write(tmp_path, job)).config_hash()
    job["plan"]["budget"] = {"tokens": 10}
    job["engine"]["price"] = {"prompt": 9, "output": 9}
    job["engine"]["throughput_tokens_per_s"] = 5
    assert parse_job(_write(tmp_path, job)).config_hash() == base
    job["plan"]["max_attempts_per_row"] = 4
    assert parse_job(_write(tmp_path, job)).config_hash() != base


@pytest.fixture
def budget_job(tmp_path, tiny_model_dir) -> Path:
    (tmp_path / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text passes (budget tests)",
        "filters": ["empty", "dedup"], "thresholds": {"empty": 1}}))
    job = {
        "name": "budget",
        "targets": [{"lang": "swh_Latn", "rows": 8, "methods": {"translate": 1.0}, "categories": ["open_qa"]}],
        "sources": {"path": str(_sources(tmp_path / "sources.jsonl"))},
        "engine": {"type": "vllm", "model": tiny_model_dir, "max_model_len": 512, "num_cpus": 1,
                   "batch_size": 2,  # slices of 4 attempts: the round's 8 attempts in 2 slices
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "sampling": {"max_tokens": 8, "temperature": 0.8, "top_p": 1.0, "seed": 3},
        "verify": {"preset": str(tmp_path / "permissive.yaml"), "workers": 0},
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 2, "max_attempts_per_row": 2,
                 "budget": {"tokens": 1}},
    }
    return _write(tmp_path, job)


def test_budget_stops_between_slices_and_resumes_with_a_raised_budget(budget_job, ray_address, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "synth.cli", "run", str(budget_job), "--output", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert first.returncode == 3, first.stderr[-3000:]
    assert "plan.budget.tokens spent" in first.stderr and "Raise the limit" in first.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    committed = pl.read_parquet(sorted((out / "_work").glob("round-*.parquet")))
    assert committed.height == 4  # the slice that reached the budget, committed whole; not the next one
    assert manifest["estimate"]["spent"]["tokens"] == int(committed["prompt_tokens"].sum() + committed["output_tokens"].sum())

    job = yaml.safe_load(budget_job.read_text())
    job["plan"]["budget"] = {"tokens": 10**9}
    budget_job.write_text(yaml.safe_dump(job))
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    rows = pl.read_parquet(sorted((out / "_work").glob("round-*.parquet")))
    # resumed after the committed slice: no attempt twice (a later round may add attempts for rows rejected)
    assert rows.height >= 8 and rows["id"].n_unique() == rows.height
    assert set(committed["id"]) <= set(rows["id"])
    est = manifest["estimate"]
    assert est["expected"]["attempts"] == 8 and est["spent"]["tokens"] > 0
    assert "estimate (synth run --dry-run" in second.stdout
    assert "estimate (synth run --dry-run" in (out / "report.html").read_text()


def test_estimate_line_shows_a_hostile_block_as_text():
    from synth.report import estimate_line

    assert estimate_line({"expected": {"tokens": "<b>"}, "spent": 3, "spent_over_expected": "x"}) is not None
    assert estimate_line({"expected": "nope"}) is None and estimate_line(None) is None
    line = estimate_line({"expected": {"tokens": 1000}, "at_most": {"tokens": 3000}, "spent": {"tokens": 1100},
                          "spent_over_expected": 1.1, "acceptance_prior": 0.5})
    assert line.endswith("1,000 tokens expected, at most 3,000; spent 1,100 (1.10x the expected)")


@pytest.mark.parametrize("budget,field", [({}, "plan.budget"), ({"tokens": 0}, "plan.budget.tokens"),
                                          ({"money": ".inf"}, "plan.budget.money"), ({"hours": 1}, "plan.budget.hours")])
def test_a_bad_budget_names_its_field(tmp_path, budget, field):
    from synth.errors import ConfigError

    job = _icl_job("bundled:smollm2")
    job["plan"]["budget"] = budget
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job).replace("'.inf'", ".inf"))
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_job(path)

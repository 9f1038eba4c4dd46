"""`synth run JOB.yaml --targets-from DIR`: the evaluation's targets replace the job's, validated like
any job; the manifest and the card name the evaluation. The round trip runs the tiny vLLM model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synth.cli import main
from synth.config import parse_job
from synth.errors import ConfigError
from synth.eval.targets import apply_targets
from tests.cpu_env import CPU_ENV
from tests.eval.eval_server import EvalServer

ROOT = Path(__file__).resolve().parents[2]
SWAHILI = ("Kila mtu anastahili kuwa na haki zote na uhuru wote ambao umeelezwa katika Taarifa hii bila ubaguzi wo "
           "wote, kwa mfano wa rangi, taifa, jinsia, lugha, dini, siasa au maoni mengineyo.")
ENGLISH = "Everyone is entitled to all the rights and freedoms set forth in this Declaration, without distinction."


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory) -> Path:
    """A finished evaluation (scripted model: Swahili right, English to French prompts) of 40 next rows."""
    directory = tmp_path_factory.mktemp("evaluation")
    rows = []
    for lang in ("swh_Latn", "fra_Latn"):
        for category in ("open_qa", "reasoning"):
            for i in range(4):
                rows.append({"id": f"{lang}-{category}-{i}", "lang": lang, "category": category, "level": "language",
                             "messages": [{"role": "user", "content": f"{lang} {category} {i}"}]})
    (directory / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with EvalServer({"student": lambda m: ENGLISH if m[-1]["content"].startswith("fra") else SWAHILI}) as server:
        (directory / "eval.yaml").write_text(yaml.safe_dump({
            "name": "round-1", "model": {"type": "openai", "base_url": server.url, "model": "student",
                                         "api_key_env": None},
            "prompts": ["prompts.jsonl"], "next_rows": 40, "allocation": {"min_items": 2}}))
        assert main(["eval", str(directory / "eval.yaml"), "-o", str(directory / "out")]) == 0
    return directory / "out"


def _job(directory: Path, model: str = "unused", **extra) -> Path:
    sources = directory / "sources.jsonl"
    sources.write_text("".join(json.dumps({"id": f"{c}-{i}", "category": c, "messages": [
        {"role": "user", "content": f"Why is the river so quiet today, number {i}?"},
        {"role": "assistant", "content": "The river is quiet because few people came early."}]}) + "\n"
        for c in ("open_qa", "reasoning") for i in range(12)))
    (directory / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text with a word character passes", "filters": ["empty"],
        "thresholds": {"empty": 1}}))
    job = {"name": "next", "targets": [{"lang": "swh_Latn", "rows": 50, "methods": {"translate": 1.0}}],
           "sources": {"path": str(sources)}, "engine": {"type": "vllm", "model": model},
           "verify": {"preset": str(directory / "permissive.yaml"), "workers": 0}, **extra}
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_targets_from_replaces_the_targets_and_keeps_what_the_job_can_run(evaluation, tmp_path):
    plan = yaml.safe_load((evaluation / "next_targets.yaml").read_text())
    job, origin = apply_targets(parse_job(_job(tmp_path)), evaluation)
    assert {t.lang: t.rows for t in job.targets} == {t["lang"]: t["rows"] for t in plan["targets"]}
    assert sum(t.rows for t in job.targets) == 40
    by = {t.lang: t for t in job.targets}
    assert by["fra_Latn"].rows > by["swh_Latn"].rows
    assert all(set(t.methods) == {"translate"} for t in job.targets)  # icl dropped: the job has no seeds
    assert origin["name"] == "round-1" and origin["config_hash"]
    assert job.sources is not None and Path(job.sources.path).is_absolute()
    assert job.verify.contamination is None  # the job's preset has no contamination filter: a warning only
    # with one (the default preset), the evaluation's prompts are kept out of the next round's training rows
    raw = yaml.safe_load((tmp_path / "job.yaml").read_text())
    raw["verify"]["preset"] = "default"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(raw))
    job, _ = apply_targets(parse_job(tmp_path / "job.yaml"), evaluation)
    assert [p.name for p in job.verify.contamination.paths] == ["prompts.jsonl"]


def test_targets_from_refuses_what_it_cannot_run_or_read(evaluation, tmp_path):
    job = parse_job(_job(tmp_path))
    with pytest.raises(ConfigError, match="not found"):
        apply_targets(job, tmp_path / "nowhere")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"targets": [{"lang": "swh_Latn", "rows": 3, "categories": ["open_qa"],
                                                "category_weights": {"writing": 1}}]}))
    with pytest.raises(ConfigError, match="category_weights"):
        apply_targets(job, bad)
    no_sources = job.model_copy(update={"sources": None})
    with pytest.raises(ConfigError, match="neither"):
        apply_targets(no_sources, evaluation / "next_targets.yaml")


def test_round_trip_a_real_run_with_the_evaluation_s_targets(evaluation, tmp_path, tiny_model_dir, ray_address):
    job = _job(tmp_path, tiny_model_dir)
    raw = yaml.safe_load(job.read_text())
    raw["engine"] = {"type": "vllm", "model": tiny_model_dir, "max_model_len": 512, "num_cpus": 1, "batch_size": 8,
                     "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV}
    raw["sampling"] = {"max_tokens": 12, "temperature": 0.8, "top_p": 1.0, "seed": 3}
    raw["plan"] = {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 2, "max_attempts_per_row": 2}
    job.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out),
                             "--targets-from", str(evaluation)], capture_output=True, text=True, timeout=900, cwd=ROOT,
                            env={**__import__("os").environ, "RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    plan = yaml.safe_load((evaluation / "next_targets.yaml").read_text())
    assert manifest["targets"] == {t["lang"]: t["rows"] for t in plan["targets"]}
    assert manifest["targets_from"]["name"] == "round-1"
    for target in plan["targets"]:  # the per-category rows of the evaluation became the cells' targets
        cells = manifest["languages"][target["lang"]]["cells"]
        assert {k.split("/")[1]: v["target"] for k, v in cells.items()} == target["category_weights"]
    assert "round-1" in (out / "README.md").read_text()

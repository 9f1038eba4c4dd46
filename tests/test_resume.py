"""Exactly-once resume: `synth run` SIGKILLed at several points, then rerun until it finishes.

One output directory goes through the whole story, on the tiny random-weight model with a permissive
preset (its text is nonsense; the rows only need to be committed):
  1. killed during generation, while the first slice is being committed (nothing committed yet);
  2. rerun, killed between committed slices (slice 0 of round 1 committed, slice 1 being written),
     attached to a terminal (a pty): the live progress table; a rerun with the sources reordered
     meanwhile is refused (exit 2), and they are restored;
  3. rerun, killed while finishing, with the first language's first shard written and the second
     half written, plain progress log lines;
  4. rerun: nothing left to generate, it writes the outputs;
  5. rerun of the finished run does nothing; a changed config is refused.
The process kills itself at a named point through the documented test hook SYNTH_TEST_KILL_AT.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.plan import Attempt
from tests.conftest import CPU_ENV

ROOT = Path(__file__).resolve().parents[1]
NOUNS = ["river", "market", "garden", "teacher", "bridge", "kitchen", "forest", "village", "library", "harbour"]
ADJECTIVES = ["busy", "quiet", "old", "green", "wide", "warm"]
TARGETS = {"swh_Latn": (10, ["open_qa", "reasoning"]), "fra_Latn": (4, ["open_qa"])}
SHARD_ROWS = 3


def _sources(path: Path) -> Path:
    """Plain sentences without digits or markup: the structure check passes the random model's text."""
    lines = []
    for category in ("open_qa", "reasoning"):
        for noun in NOUNS:
            for adjective in ADJECTIVES[:3]:
                lines.append(json.dumps({"id": f"{category}-{noun}-{adjective}", "category": category, "messages": [
                    {"role": "user", "content": f"Why is the {noun} so {adjective} today?"},
                    {"role": "assistant", "content": f"The {noun} is {adjective} because many people came early."}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def resume_job(tmp_path_factory, tiny_model_dir) -> Path:
    directory = tmp_path_factory.mktemp("resume_job")
    (directory / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text with a word character passes (resume tests)",
        "filters": ["empty", "dedup"], "thresholds": {"empty": 1}}))
    job = {
        "name": "resume",
        "targets": [{"lang": lang, "rows": rows, "methods": {"translate": 1.0}, "categories": categories}
                    for lang, (rows, categories) in TARGETS.items()],
        "sources": {"path": str(_sources(directory / "sources.jsonl"))},
        "engine": {"type": "vllm", "model": tiny_model_dir, "max_model_len": 512, "num_cpus": 1,
                   "batch_size": 4,  # slices of 8 attempts: round 1 (14 attempts) is committed in 2 parts
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "sampling": {"max_tokens": 12, "temperature": 0.8, "top_p": 1.0, "seed": 3},
        # scoring in the driver: no verifier actors to start in each of the four runs (the pipelined
        # loop, slice k committed after slice k+1 is generated, is the same)
        "verify": {"preset": str(directory / "permissive.yaml"), "workers": 0},
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 4, "max_attempts_per_row": 4},
        "output": {"shard_rows": SHARD_ROWS},
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _env(ray_address: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SYNTH_TEST_KILL_AT"}
    return {**env, "RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled", **extra}


def _run(job: Path, out: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _run_in_pty(job: Path, out: Path, env: dict, timeout: float = 600) -> tuple[int, str]:
    """`synth run` with stdout and stderr on a pseudo-terminal, as in an interactive shell."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                               stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm", "COLUMNS": "120"},
                               cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(master)
    process.wait(timeout=60)
    return process.returncode, b"".join(chunks).decode("utf-8", "replace")


def _hashes(out: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob(pattern)) if p.is_file()}


def _temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def story(resume_job, ray_address, tmp_path_factory) -> dict:
    """Runs the whole kill / resume sequence once; the tests check what each step left behind."""
    out = tmp_path_factory.mktemp("resume") / "out"
    seen: dict = {"out": out}
    started = time.time()

    first = _run(resume_job, out, _env(ray_address, SYNTH_TEST_KILL_AT="round-0001-00000.parquet"))
    seen["1"] = {"rc": first.returncode, "stderr": first.stderr, "work": sorted(p.name for p in (out / "_work").iterdir()),
                 "tmp": _temporaries(out), "manifest": (out / "manifest.json").exists()}

    rc, text = _run_in_pty(resume_job, out, _env(ray_address, SYNTH_TEST_KILL_AT="round-0001-00001.parquet"))
    seen["2"] = {"rc": rc, "terminal": text, "work": _hashes(out, "_work/round-*.parquet"), "tmp": _temporaries(out)}

    sources = resume_job.parent / "sources.jsonl"  # edited between the kill and the resume: refused
    original = sources.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    sources.write_text("".join(lines[1:] + lines[:1]))  # the same sources, reordered
    edited = _run(resume_job, out, _env(ray_address))
    sources.write_bytes(original)
    seen["2b"] = {"rc": edited.returncode, "stderr": edited.stderr, "work": _hashes(out, "_work/round-*.parquet"),
                  "sources": str(sources)}

    third = _run(resume_job, out, _env(ray_address, SYNTH_TEST_KILL_AT="train-00001-of-*.parquet", SYNTH_PROGRESS_SECONDS="0"))
    seen["3"] = {"rc": third.returncode, "stderr": third.stderr, "work": _hashes(out, "_work/round-*.parquet"),
                 "shards": _hashes(out, "*_Latn/train-*.parquet"), "tmp": _temporaries(out),
                 "manifest": (out / "manifest.json").exists()}

    fourth = _run(resume_job, out, _env(ray_address))
    seen["4"] = {"rc": fourth.returncode, "stderr": fourth.stderr, "stdout": fourth.stdout,
                 "files": _hashes(out, "**/*.parquet"), "tmp": _temporaries(out)}

    fifth = _run(resume_job, out, _env(ray_address))
    manifest = out / "manifest.json"
    seen["5"] = {"rc": fifth.returncode, "stderr": fifth.stderr, "files": _hashes(out, "**/*.parquet"),
                 "manifest": manifest.read_bytes() if manifest.exists() else b"{}"}
    seen["seconds"] = time.time() - started
    for step in "12345":  # what each run printed, next to the run directory, for a failing test
        text = seen[step].get("stderr") or seen[step].get("terminal", "")
        (out.parent / f"step{step}.log").write_text(text + seen[step].get("stdout", ""))
    print(f"resume story: {seen['seconds']:.0f}s")
    return seen


def test_kill_during_generation_commits_nothing(story):
    step = story["1"]
    assert step["rc"] == -signal.SIGKILL
    assert not [n for n in step["work"] if n.startswith("round-")]  # the slice being written is not committed
    assert step["tmp"] and step["tmp"][0].startswith("_work/.round-0001-00000.parquet.")  # killed mid-write
    assert not step["manifest"]


def test_kill_between_slices_keeps_the_committed_one(story):
    step = story["2"]
    assert step["rc"] == -signal.SIGKILL
    assert list(step["work"]) == ["_work/round-0001-00000.parquet"]
    # attached to a terminal: the live table (rich box drawing), not the plain log lines
    assert "synth progress" in step["terminal"] and "ETA" in step["terminal"] and "│" in step["terminal"]
    for lang in TARGETS:
        assert lang in step["terminal"]
    assert "progress swh_Latn: accepted" not in step["terminal"]


def test_sources_edited_between_kill_and_resume_are_refused(story):
    step = story["2b"]
    assert step["rc"] == 2, step["stderr"][-3000:]
    assert f"input {step['sources']} changed since this run started" in step["stderr"] and "--force-new" in step["stderr"]
    assert "Traceback" not in step["stderr"] and "vLLM replica" not in step["stderr"]  # before any engine
    assert step["work"] == story["2"]["work"]


def test_kill_while_finishing_after_resume(story):
    step = story["3"]
    assert step["rc"] == -signal.SIGKILL, step["stderr"][-3000:]
    assert "resuming" in step["stderr"] and "removed 1 temporary file" in step["stderr"]
    for name, digest in story["2"]["work"].items():  # a committed slice is never rewritten
        assert step["work"][name] == digest
    assert "_work/round-0001-00001.parquet" in step["work"]
    first_lang = next(iter(TARGETS))
    assert list(step["shards"]) == [f"{first_lang}/train-00000-of-00004.parquet"]  # 10 rows in shards of 3
    assert len(step["tmp"]) == 1 and step["tmp"][0].startswith(f"{first_lang}/.train-00001-of-00004.parquet.")
    assert not step["manifest"]
    # not attached to a terminal: plain progress lines with the ETA
    for lang in TARGETS:
        assert f"progress {lang}: accepted " in step["stderr"] and "ETA" in step["stderr"]


def test_resumed_finish_writes_exactly_the_targets(story):
    step, out = story["4"], story["out"]
    assert step["rc"] == 0, step["stderr"][-3000:]
    assert "nothing left to generate" in step["stderr"] and "vLLM replica" not in step["stderr"]
    assert step["tmp"] == []
    for name, digest in {**story["3"]["work"], **story["3"]["shards"]}.items():  # same bytes: not rewritten
        assert step["files"][name] == digest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest["languages"]
    rounds = pl.concat([pl.read_parquet(p) for p in sorted((out / "_work").glob("round-*.parquet"))])
    assert rounds["id"].n_unique() == rounds.height
    # every planned attempt ran exactly once: per cell, the ids of attempts 0..n-1, none missing
    for (lang, method, category), n in Counter(zip(rounds["lang"], rounds["method"], rounds["category"])).items():
        cell = (pl.col("lang") == lang) & (pl.col("method") == method) & (pl.col("category") == category)
        ids = set(rounds.filter(cell)["id"])
        assert ids == {Attempt(lang, method, category, i).id for i in range(n)}
    all_ids = []
    for lang, (rows, categories) in TARGETS.items():
        stats = manifest["languages"][lang]
        shards = sorted((out / lang).glob("train-*.parquet"))
        frames = [pl.read_parquet(s) for s in shards]
        assert [f.height for f in frames][:-1] == [SHARD_ROWS] * (len(frames) - 1) and frames[-1].height <= SHARD_ROWS
        accepted = pl.concat(frames)
        assert accepted.height == stats["accepted"] == rows == stats["target"]
        assert stats["accepted"] + stats["rejected"] == stats["attempts"] == rounds.filter(pl.col("lang") == lang).height
        for cell in stats["cells"].values():
            assert cell["accepted"] == cell["target"]
        all_ids += accepted["id"].to_list()
        rejects = sorted((out / "rejected" / lang).glob("*.parquet"))
        all_ids += pl.concat([pl.read_parquet(r) for r in rejects])["id"].to_list() if rejects else []
    assert len(all_ids) == len(set(all_ids)) == rounds.height


def test_rerun_of_the_finished_run_does_nothing(story):
    step = story["5"]
    assert step["rc"] == 0 and "nothing to do" in step["stderr"]
    assert step["files"] == story["4"]["files"]
    assert json.loads(step["manifest"])["status"] == "complete"


def test_changed_config_is_refused(story, resume_job, ray_address, tmp_path):
    job = yaml.safe_load(resume_job.read_text())
    job["output"]["shard_rows"] = 5
    changed = tmp_path / "job.yaml"
    changed.write_text(yaml.safe_dump(job))
    before = _hashes(story["out"], "**/*")
    result = _run(changed, story["out"], _env(ray_address), timeout=300)
    assert result.returncode == 2
    assert "different config" in result.stderr and "--force-new" in result.stderr
    assert _hashes(story["out"], "**/*") == before


class _Resources(HTMLParser):
    """Collects text and every attribute that could load something from elsewhere."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.external: list[str] = []
        self.tags: Counter = Counter()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value and not value.startswith(("#", "data:")):
                self.external.append(f"{tag} {name}={value}")

    def handle_data(self, data):
        self.text.append(data)
        if "url(" in data or "@import" in data:
            self.external.append(data[:80])


def test_report_is_self_contained_and_names_every_language_and_filter(story):
    out = story["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    parser = _Resources()
    parser.feed((out / "report.html").read_text())
    parser.close()
    text = " ".join(parser.text)
    assert parser.external == []
    assert parser.tags["svg"] >= len(TARGETS)  # histograms are inline SVG
    for lang in TARGETS:
        assert lang in text
    for name in manifest["filters"]["run"]:
        assert name in text
    assert "Acceptance funnel" in text and "Sample accepted rows" in text


def test_manifest_records_the_run(story):
    manifest = json.loads((story["out"] / "manifest.json").read_text())
    for key in ("started_at", "finished_at", "status", "versions", "config_hash", "prompts", "filters", "targets", "model"):
        assert manifest[key], key
    assert set(manifest["prompts"]) == {"translate_turn", "back_translate_turn"}  # the prompts this job used
    assert all(len(p["hash"]) >= 8 for p in manifest["prompts"].values())
    assert manifest["filters"]["preset"] == "permissive" and "empty" in manifest["filters"]["thresholds"]
    assert {"python", "polars", "ray"} <= set(manifest["versions"])
    swh = manifest["languages"]["swh_Latn"]
    assert set(swh["cells"]) == {"translate/open_qa", "translate/reasoning"}
    assert all({"target", "accepted", "rejected", "rejected_by_reason"} <= set(c) for c in swh["cells"].values())
    assert set(swh["accepted_score_quantiles"]["empty"]) == {"p05", "p25", "p50", "p75", "p95"}

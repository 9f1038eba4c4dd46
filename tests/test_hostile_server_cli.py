"""`synth run` (a subprocess, as a user runs it) against tests/fault_server.py: a server that ignores
max_tokens, sends odd fields, carries credentials in its URL's query, or asks to wait (Retry-After) when
SIGTERM arrives. No vLLM or Ray: the OpenAI engine and verification in the driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

from tests.fault_server import FaultServer, error, ok

ROOT = Path(__file__).resolve().parents[1]
KEY = "k3y"  # short: only its registration keeps it out of logs
NOUNS = ["river", "market", "garden", "teacher", "bridge", "kitchen"]
ASYNCIO_NOISE = ("Traceback", "Event loop is closed", "Task was destroyed", "was never awaited", "Exception ignored")


def _job(directory: Path, base_url: str, rows: int = 2, **engine) -> Path:
    lines = [json.dumps({"id": f"{noun}-{i}", "category": "open_qa", "messages": [
        {"role": "user", "content": f"Why is the {noun} so busy today?"},
        {"role": "assistant", "content": f"The {noun} is busy because many people came early."}]})
        for i, noun in enumerate(NOUNS)]
    (directory / "sources.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text with a word character passes", "filters": ["empty"],
        "thresholds": {"empty": 1}}))
    job = {
        "name": "hostile",
        "targets": [{"lang": "swh_Latn", "rows": rows, "methods": {"translate": 1.0}, "categories": ["open_qa"]}],
        "sources": {"path": "sources.jsonl"},
        "engine": {"type": "openai", "base_url": base_url, "model": "scripted", "api_key_env": "SYNTH_TEST_SHORT_KEY",
                   "max_concurrency": 2, "max_retries": 1, "backoff_s": 0.05, "timeout_s": 5, **engine},
        "sampling": {"max_tokens": 64, "temperature": 0.8, "top_p": 1.0, "seed": None},
        "verify": {"preset": "permissive.yaml", "workers": 0},
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 2, "max_attempts_per_row": 2},
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "SYNTH_TEST_SHORT_KEY": KEY, "SYNTH_CACHE": str(tmp_path / "cache"), "SYNTH_PROGRESS_SECONDS": "0"}


def _run(job: Path, out: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _files_text(*roots: Path) -> bytes:
    return b"\n".join(p.read_bytes() for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_server_ignoring_max_tokens_costs_rejects_not_thousands_of_requests(tmp_path):
    with FaultServer([ok("Habari ya leo.")] + [ok("Mto una watu wengi leo. " * 40_000)]) as server:  # ~1 MB answers
        started = time.monotonic()
        result = _run(_job(tmp_path, server.url), tmp_path / "out", _env(tmp_path))
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(noise in result.stderr for noise in ASYNCIO_NOISE), result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rejected = pl.read_parquet(next((tmp_path / "out" / "_work").glob("round-*.parquet")))
    assert set(rejected["reject_reasons"].explode().drop_nulls()) == {"answer_too_long"}
    # 2 rows x 2 attempts x 2 rounds at most: never a request per 1,500 characters of a runaway answer
    assert len(server.seen) <= 1 + 2 * 2 * 2 * 2, len(server.seen)
    assert manifest["totals"]["accepted"] == 0 and elapsed < 60


def test_odd_usage_mid_job_is_retried_then_stops_resumable_without_a_traceback(tmp_path):
    with FaultServer(lambda n, request: ok("Habari ya leo.") if n == 1 else ok("Habari", usage="lots")) as server:
        result = _run(_job(tmp_path, server.url), tmp_path / "out", _env(tmp_path))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the engine keeps failing" in result.stderr and "usage is the string 'lots'" in result.stderr
    assert not any(noise in result.stderr for noise in ASYNCIO_NOISE), result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["engine"]["retries"] >= 1


def test_odd_usage_in_the_preflight_is_exit_2_naming_the_field_not_a_traceback(tmp_path):
    with FaultServer([ok("Habari", usage={"prompt_tokens": 10 ** 30, "completion_tokens": 1})]) as server:
        result = _run(_job(tmp_path, server.url), tmp_path / "out", _env(tmp_path))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "a one-token test request failed" in result.stderr and "usage.prompt_tokens is a number of 31 digits" in result.stderr
    assert not any(noise in result.stderr for noise in ASYNCIO_NOISE), result.stderr[-3000:]
    assert not (tmp_path / "out").exists()  # nothing written before the engine answered sensibly


def test_query_credentials_and_a_short_key_never_reach_stderr_or_files(tmp_path):
    secrets = ("q1v", "t0k")
    with FaultServer([ok("Habari ya leo, rafiki yangu mzuri.")]) as server:
        url = f"{server.url}?api-key={secrets[0]}&token={secrets[1]}"
        job = _job(tmp_path, url)
        result = _run(job, tmp_path / "out", _env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(s["path"].endswith(f"/v1/chat/completions?api-key={secrets[0]}&token={secrets[1]}") for s in server.seen)
    assert all(s["headers"]["authorization"] == f"Bearer {KEY}" for s in server.seen)
    assert "api-key=***&token=***" in result.stderr  # the endpoint is named, its credentials are not
    written = _files_text(tmp_path / "out", tmp_path / "cache")
    for secret in (*secrets, KEY):
        assert secret not in result.stderr and secret not in result.stdout, secret
        assert secret.encode() not in written, secret


def test_sigterm_during_a_retry_after_wait_stops_with_a_clean_message(tmp_path):
    with FaultServer(lambda n, request: ok("Habari ya leo.") if n == 1 else error(429, "slow down", {"Retry-After": "100"})) as server:
        job = _job(tmp_path, server.url, max_retries=3)
        process = subprocess.Popen([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(tmp_path / "out")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=ROOT)
        try:
            assert server.wait_for(3, timeout=60), process.communicate(timeout=30)  # the preflight, then two 429s
            time.sleep(0.5)  # both requests now wait out their Retry-After
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 143, stderr[-3000:]
    assert time.monotonic() - started < 20  # not the 100 s the server asked for
    assert "stopped by SIGTERM" in stderr and "Run the same command to resume" in stderr
    assert not any(noise in stderr for noise in ASYNCIO_NOISE), stderr[-3000:]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["status"] == "interrupted"

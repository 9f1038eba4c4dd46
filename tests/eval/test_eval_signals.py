"""SIGTERM during `synth eval`: the committed slices stay, exit 143 with the resume command and no
traceback; the same command then answers only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import yaml

from tests.eval.eval_server import EvalServer

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 150  # more than one slice (128)


def test_sigterm_keeps_the_committed_slice_and_the_rerun_finishes(tmp_path):
    rows = [{"id": f"q{i}", "lang": "swh_Latn", "category": "open_qa", "level": "language",
             "messages": [{"role": "user", "content": f"Swali {i}"}]} for i in range(ITEMS)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    hold = threading.Event()
    answered = []

    def student(messages):
        answered.append(messages[-1]["content"])
        if len(answered) > 1 + 128:  # the preflight and the first slice, then the server stalls
            hold.wait(60)
        return "Kila mtu anastahili kuwa na haki zote na uhuru wote ambao umeelezwa katika Taarifa hii."

    with EvalServer({"student": student}) as server:
        (tmp_path / "eval.yaml").write_text(yaml.safe_dump({
            "name": "signals", "model": {"type": "openai", "base_url": server.url, "model": "student",
                                         "api_key_env": None}, "prompts": ["prompts.jsonl"]}))
        command = [sys.executable, "-m", "synth.cli", "eval", str(tmp_path / "eval.yaml"), "-o", str(tmp_path / "out")]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        deadline = time.monotonic() + 300
        while not list((tmp_path / "out" / "_work").glob("answers-*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        hold.set()
        assert process.returncode == 143, stderr[-2000:]
        assert "Traceback" not in stderr and "run the same command to resume" in stderr.lower()
        assert [p.name for p in (tmp_path / "out" / "_work").glob("answers-*")] == ["answers-00000.parquet"]
        before = len(answered)
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    asked = answered[before:]
    assert len([q for q in asked if q != "Hi"]) == ITEMS - 128
    results = pl.read_parquet(tmp_path / "out" / "results.parquet")
    assert results.height == ITEMS and results["id"].n_unique() == ITEMS

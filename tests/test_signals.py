"""A clean stop: SIGTERM or Ctrl+C during generation on vLLM replicas (Ray) stops the engines, keeps every
committed slice, says how to resume and exits 143 / 130 without a traceback or a stack dump; the same
command then finishes the job exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import CPU_ENV
from tests.test_resume import _env, _sources

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ROWS = 40


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir) -> Path:
    directory = tmp_path_factory.mktemp("signal_job")
    (directory / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text with a word character passes", "filters": ["empty"],
        "thresholds": {"empty": 1}}))
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump({
        "name": "signals",
        "targets": [{"lang": "swh_Latn", "rows": ROWS, "methods": {"translate": 1.0}, "categories": ["open_qa", "reasoning"]}],
        "sources": {"path": str(_sources(directory / "sources.jsonl"))},
        "engine": {"type": "vllm", "model": tiny_model_dir, "max_model_len": 512, "num_cpus": 1, "batch_size": 4,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "sampling": {"max_tokens": 12, "temperature": 0.8, "top_p": 1.0, "seed": 5},
        "verify": {"preset": "permissive.yaml", "workers": 0},
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 4, "max_attempts_per_row": 4},
    }))
    return path


def _stop_after_first_commit(job: Path, out: Path, env: dict, signum: int) -> tuple[int, str]:
    process = subprocess.Popen([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 600
    while not list((out / "_work").glob("round-*.parquet")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no slice committed in 600 s"
        time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_cleanly_and_the_rerun_finishes(signum, code, job, ray_address, tmp_path):
    out = tmp_path / "out"
    env = _env(ray_address)
    rc, stderr = _stop_after_first_commit(job, out, env, signum)
    assert rc == code, stderr[-3000:]
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in stderr and "Run the same command to resume" in stderr
    for dump in ("Traceback", "Stack trace", "*** SIG", "Aborted", "core dumped"):
        assert dump not in stderr, stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    kept = {p.name: p.read_bytes() for p in (out / "_work").glob("round-*.parquet")}
    assert kept

    rerun = subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for name, data in kept.items():  # committed slices are never rewritten
        assert (out / "_work" / name).read_bytes() == data
    rows = pl.concat([pl.read_parquet(p) for p in sorted((out / "_work").glob("round-*.parquet"))])
    assert rows["id"].n_unique() == rows.height
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["languages"]["swh_Latn"]["accepted"] == ROWS


def test_a_signal_raised_inside_cython_code_is_still_an_interrupt():
    """A signal handler's exception raised while Ray's Cython code runs (ray.wait checks signals) comes
    back as a SystemError caused by it: still an interrupt (exit 128 + signal), never a traceback."""
    from synth.errors import Interrupted, interrupt_in

    try:
        try:
            raise Interrupted(signal.SIGINT)
        except Interrupted as exc:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc
    except SystemError as wrapped:
        assert interrupt_in(wrapped).signum == signal.SIGINT
    assert interrupt_in(SystemError("unrelated")) is None and interrupt_in(ValueError()) is None

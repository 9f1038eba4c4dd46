"""Engine outages never use up a job: a real vLLM server killed mid-job and restarted, and a server that
answers 500 to everything. `synth run` runs as a user runs it (a subprocess); no Ray is needed (the
OpenAI engine, verification in the driver). Planted secrets must not appear in anything written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.plan import Attempt
from tests.fault_server import FaultServer, Reply, completion, error
from tests.ports import free_port
from tests.vllm_server import VllmServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-planted-key-9f8e7d6c5b4a3"
URL_SECRET = "sk-planted-url-1a2b3c4d5e6f"
NOUNS = ["river", "market", "garden", "teacher", "bridge", "kitchen", "forest", "village", "library", "harbour"]


def _job(directory: Path, base_url: str, rows: int = 12) -> Path:
    lines = [json.dumps({"id": f"{noun}-{adj}", "category": "open_qa", "messages": [
        {"role": "user", "content": f"Why is the {noun} so {adj} today?"},
        {"role": "assistant", "content": f"The {noun} is {adj} because many people came early."}]})
        for noun in NOUNS for adj in ("busy", "quiet", "old")]
    (directory / "sources.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "permissive.yaml").write_text(yaml.safe_dump({
        "name": "permissive", "description": "any text with a word character passes", "filters": ["empty"],
        "thresholds": {"empty": 1}}))
    job = {
        "name": "outage",
        "targets": [{"lang": "swh_Latn", "rows": rows, "methods": {"translate": 1.0}, "categories": ["open_qa"]}],
        "sources": {"path": "sources.jsonl"},
        "engine": {"type": "openai", "base_url": base_url, "model": "tiny", "api_key_env": "SYNTH_TEST_PLANTED_KEY",
                   "max_concurrency": 2, "max_retries": 2, "backoff_s": 0.2, "timeout_s": 30},
        "sampling": {"max_tokens": 8, "temperature": 0.8, "top_p": 1.0, "seed": None},
        "verify": {"preset": "permissive.yaml", "workers": 0},
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_rounds": 3, "max_attempts_per_row": 3},
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _run(job: Path, out: Path, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTH_TEST_PLANTED_KEY": KEY, "SYNTH_CACHE": str(cache), "SYNTH_PROGRESS_SECONDS": "0"}
    return subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _reply(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class _Gate:
    """A pass-through HTTP proxy to the vLLM server that can hold requests at a gate, so the test kills
    the server at a known point of the job (after `open_for` chat completions)."""

    def __init__(self, upstream_port: int, open_for: int):
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.open_for = open_for
        self.completions = 0
        self.held = threading.Event()  # set when a request waits at the gate
        self.release = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, body: bytes | None):
                if self.path.endswith("/chat/completions"):
                    with lock:
                        gate.completions += 1
                        wait = gate.completions > gate.open_for
                    if wait:
                        gate.held.set()
                        gate.release.wait(300)
                request = urllib.request.Request(gate.upstream + self.path, data=body, method=self.command,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, data = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                except OSError:  # the server is down: drop the connection, as a dead server would
                    self.close_connection = True
                    return
                _reply(self, status, data)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers["Content-Length"])))

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _scan_for_secrets(out: Path, cache: Path, *texts: str) -> None:
    for root in (out, cache):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert KEY.encode() not in data and URL_SECRET.encode() not in data, path
    for text in texts:
        assert KEY not in text and URL_SECRET not in text


def _rows(out: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((out / "_work").glob("round-*.parquet"))])


def test_server_killed_mid_job_stops_resumable_and_the_rerun_finishes_exactly_once(tiny_model_dir, tmp_path):
    server = VllmServer(tiny_model_dir, free_port(), tmp_path / "server.log")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    gate = _Gate(server.port, open_for=1 + 32)  # preflight, then slice 0: 8 attempts x 2 messages, there and back
    job = _job(tmp_path, f"http://user:{URL_SECRET}@127.0.0.1:{gate.port}/v1")
    out, cache = tmp_path / "out", tmp_path / "cache"
    try:
        process = subprocess.Popen([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                   env={**os.environ, "SYNTH_TEST_PLANTED_KEY": KEY, "SYNTH_CACHE": str(cache)})
        assert gate.held.wait(300), process.communicate(timeout=60)
        server.kill()  # the outage: every request from here on fails at the connection
        gate.release.set()
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, stderr[-3000:]
        assert "the engine keeps failing" in stderr and "run the same command to resume" in stderr
        assert "Traceback" not in stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "interrupted"
        assert manifest["engine"]["attempts_lost_to_outages"] == 0 and manifest["engine"]["outages"] == 1
        first = _rows(out)
        assert first.height == 8  # the slice generated before the outage is kept; nothing else was written
        assert not first.filter(pl.col("reject_reasons").list.len() > 0).height

        server.start()
        gate.open_for = 10 ** 9
        second = _run(job, out, cache)
        assert second.returncode == 0, second.stderr[-3000:]
    finally:
        gate.release.set()
        server.stop()
        gate.server.shutdown()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["engine"]["attempts_lost_to_outages"] == 0
    rows = _rows(out)
    assert rows["id"].n_unique() == rows.height  # nothing generated twice
    for (lang, method, category), n in Counter(zip(rows["lang"], rows["method"], rows["category"])).items():
        cell = rows.filter((pl.col("lang") == lang) & (pl.col("category") == category))
        assert set(cell["id"]) == {Attempt(lang, method, category, i).id for i in range(n)}  # none lost
    assert manifest["languages"]["swh_Latn"]["accepted"] == 12
    _scan_for_secrets(out, cache, stdout, stderr, second.stdout, second.stderr)


def _failing_server(healthy: int, content: str = '"Habari ya leo."') -> FaultServer:
    """Serves the model list and the first `healthy` chat completions (each answering `content`, as raw
    JSON), then 500 for everything."""
    answer = Reply(body=json.dumps(completion("<content>", usage={"prompt_tokens": 5, "completion_tokens": 4,
                                                                  "total_tokens": 9}, model="tiny"))
                   .replace('"<content>"', content), raw=True)
    return FaultServer(lambda n, request: answer if n <= healthy else error(500, "internal error"), models=["tiny"])


def test_a_server_failing_every_request_stops_the_job_after_the_breaker_not_the_budget(tmp_path):
    failing = _failing_server(healthy=1)  # the preflight passes; then the endpoint breaks
    job = _job(tmp_path, failing.url, rows=40)
    out, cache = tmp_path / "out", tmp_path / "cache"
    started = time.monotonic()
    try:
        result = _run(job, out, cache, timeout=300)
    finally:
        failing.close()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "HTTP 500" in result.stderr and "still failing after 2 retries" in result.stderr
    assert time.monotonic() - started < 120
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["totals"] == {"accepted": 0, "rejected": 0}
    assert manifest["engine"]["attempts_lost_to_outages"] == 0 and manifest["engine"]["retries"] >= 2
    assert not list((out / "_work").glob("round-*.parquet"))  # no attempt was used up
    assert len(failing.seen) < 20  # stopped after the breaker tripped, not after 40 x 3 attempts


def test_a_lone_surrogate_from_the_endpoint_becomes_a_replacement_character_not_a_dead_job(tmp_path):
    """A JSON escape such as \\ud800 decodes to a character UTF-8 cannot hold: unchecked, it stopped the job
    where the row is hashed or written. Every answer here carries one; the job finishes, its rejects load, and
    each row is rejected as `encoding` (a replacement character: text lost on the way), never accepted."""
    server = _failing_server(healthy=10**6, content=r'"Habari \ud800 ya leo, rafiki \udfff."')
    job = _job(tmp_path, server.url, rows=3)
    out, cache = tmp_path / "out", tmp_path / "cache"
    try:
        result = _run(job, out, cache, timeout=300)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    # the surrogate is read as U+FFFD, which standardisation rejects as `encoding` (text that lost characters)
    rejected = pl.concat([pl.read_parquet(p) for p in sorted((out / "rejected").rglob("*.parquet"))])
    assert not [p for p in out.glob("*_*/train-*.parquet")]  # no row with a lost character is accepted
    texts = [m["content"] for row in rejected["messages"].to_list() for m in row if m["role"] == "assistant"]
    assert texts and all(t == "Habari \ufffd ya leo, rafiki \ufffd." for t in texts), texts
    assert all("encoding" in reasons for reasons in rejected["reject_reasons"].to_list())

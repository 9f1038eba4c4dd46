"""Real OpenAI-compatible servers on local ports for the client tests: llama.cpp's (llama-cpp-python)
serving the bundled GGUF as is, and a small synth job aimed at any server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


class LlamaCppServer:
    """`python -m llama_cpp.server` in its own process group, serving one GGUF as `alias`."""

    def __init__(self, gguf: Path, port: int, log_path: Path, alias: str = "smollm2", n_ctx: int = 2048):
        self.gguf, self.port, self.log_path, self.alias, self.n_ctx = gguf, port, log_path, alias, n_ctx
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}/v1"

    def start(self, timeout: float = 180) -> str:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", "2"],
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama.cpp server not answering after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.5)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# short plain sources: a small model's translation of them reaches verification, so the judge grades it
SOURCES = [
    {"id": "s1", "category": "open_qa", "messages": [{"role": "user", "content": "What is the capital of Kenya?"},
                                                     {"role": "assistant", "content": "The capital of Kenya is Nairobi."}]},
    {"id": "s2", "category": "open_qa", "messages": [{"role": "user", "content": "Is tea popular in Tanzania?"},
                                                     {"role": "assistant", "content": "Yes, people drink tea every day."}]},
]


def small_job(tmp: Path, url: str, model: str, **overrides) -> Path:
    """A job small enough for a shared CPU: one language, ICL (structured) and translation, the judge on
    (for every verified row, so it runs even when the filters reject them all)."""
    sources = tmp / "sources.jsonl"
    sources.write_text("".join(json.dumps(s) + "\n" for s in SOURCES))
    job = {
        "name": "client", "targets": [{"lang": "swh_Latn", "rows": 3, "methods": {"icl": 0.5, "translate": 0.5},
                                       "categories": ["open_qa"], "seeds": str(ROOT / "examples/seeds/swh_Latn.jsonl")}],
        "sources": {"path": str(sources), "lang": "eng_Latn"},
        # one request at a time, with time to spare: the test servers (and the machine) are small
        "engine": {"type": "openai", "base_url": url, "model": model, "api_key_env": None, "max_concurrency": 2,
                   "timeout_s": 600},
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 96, "seed": 0},
        "icl": {"k": 1, "prompt": "icl_pair_direct", "structured": True},
        "translate": {"max_chars": 300},
        "verify": {"workers": 0},
        "judge": {"enabled": True, "max_tokens": 96, "rows": "all"},  # all: graded even when a filter rejects
        "plan": {"initial_acceptance": 1.0, "oversample": 1.0, "max_attempts_per_row": 1.0, "max_rounds": 1},
    }
    for key, value in overrides.items():
        job[key] = {**job[key], **value} if isinstance(value, dict) else value
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def run_cli(job: Path, out: Path, timeout: float = 900) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`synth run` as a user runs it; the manifest when it wrote one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", "synth.cli", "run", str(job), "--output", str(out)],
                            capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    manifest = out / "manifest.json"
    return result, json.loads(manifest.read_text()) if manifest.exists() else None

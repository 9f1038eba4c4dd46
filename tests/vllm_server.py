"""A real `vllm.entrypoints.openai.api_server` on a local port, in its own process group (tests only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.cpu_env import CPU_ENV


class VllmServer:
    """Start, kill (as a crash would) and restart a vLLM OpenAI-compatible server on `port`."""

    def __init__(self, model_dir: str, port: int, log_path: Path, served_name: str = "tiny", max_model_len: int = 256):
        self.model_dir, self.port, self.log_path, self.served_name = model_dir, port, log_path, served_name
        self.max_model_len = max_model_len
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}/v1"

    def start(self, timeout: float = 240) -> str:
        env = {**os.environ, **CPU_ENV, "VLLM_CPU_KVCACHE_SPACE": "1"}
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_dir,
                 "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", str(self.max_model_len), "--enforce-eager",
                 "--dtype", "float32", "--served-model-name", self.served_name],
                env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vLLM server not healthy after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.5)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL the server and its engine-core child: an outage, not a clean shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

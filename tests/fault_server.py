"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (real sockets, one thread per
connection) for the faults no real server makes on demand: it can trickle a body byte by byte, lie about
usage, ignore max_tokens, send garbage, half bodies, gzip bombs and Retry-After, or answer like a healthy
server. It records every chat request it saw (path with query, headers, JSON body)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


@dataclass
class Reply:
    """One scripted answer. `body`: JSON-encoded unless bytes (raw JSON text with `raw=True`)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # body is a str sent as it is (e.g. JSON with escapes json.dumps would not write)
    trickle_s: float = 0.0  # pause between body bytes, after the headers went out
    cut_at: int | None = None  # send this many body bytes, then drop the connection (Content-Length promised more)
    gzip: bool = False  # gzip the body and say so

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            data = self.body
        elif self.raw:
            data = self.body.encode()
        else:
            data = json.dumps(self.body).encode()
        return gzip.compress(data, compresslevel=9) if self.gzip else data


def completion(text: Any = "Habari ya leo.", *, usage: Any = USAGE, finish_reason: Any = "stop", **fields) -> dict:
    """A chat.completion object; every field can be replaced by something odd."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            "usage": usage, **fields}


def ok(text: Any = "Habari ya leo.", **kwargs) -> Reply:
    return Reply(body=completion(text, **kwargs))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "Error", "code": status}}, headers or {})


Script = Sequence[Reply] | Callable[[int, dict], Reply]


class FaultServer:
    """Answers chat completions from `script`: a list (the n-th request gets the n-th reply, the last
    repeats) or a function of (request number from 1, request record). GET .../models lists `models`."""

    def __init__(self, script: Script = (), models: Sequence[str] = ("scripted",)):
        self.script = script or [ok()]
        self.models = list(models)
        self.seen: list[dict] = []  # chat requests
        self.gets: list[str] = []  # paths of GET requests
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                fault.gets.append(self.path)
                fault._send(self, Reply(body={"object": "list", "data": [{"id": m, "object": "model"} for m in fault.models]}))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": json.loads(self.rfile.read(length) or b"null")}
                with fault._lock:
                    fault.seen.append(record)
                    n = len(fault.seen)
                script = fault.script
                reply = script(n, record) if callable(script) else script[min(n, len(script)) - 1]
                fault._send(self, reply)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a trickling answer must not hold up the test's end
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        data = reply.encoded()
        try:
            handler.send_response(reply.status)
            headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **reply.headers}
            if reply.gzip:
                headers["Content-Encoding"] = "gzip"
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            body = data if reply.cut_at is None else data[:reply.cut_at]
            if reply.trickle_s:
                for i in range(len(body)):
                    if self.stopping.wait(reply.trickle_s):
                        break
                    handler.wfile.write(body[i:i + 1])
                    handler.wfile.flush()
            else:
                handler.wfile.write(body)
            if reply.cut_at is not None:
                handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a deadline, a cap): as it should
            handler.close_connection = True

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, requests: int, timeout: float = 60) -> bool:
        """Whether `requests` chat requests arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < requests:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

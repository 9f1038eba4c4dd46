"""A scripted OpenAI-compatible server on 127.0.0.1 for `synth eval` tests: a model that is good in one
language and answers English in another, a judge that grades by rule, and outages on demand.

Real engines cannot be told to answer English for one language only; the scoring, the intervals and
the allocation run on these answers unchanged."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def completion(text: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


ENGLISH = re.compile(r"\b(the|and|of|is|has)\b", re.IGNORECASE)


def rule_judge(messages: list[dict]) -> str:
    """A judge by rule: an answer with English words gets language 1, else 4 (content and culture 4);
    pairwise: the answer without English wins, else a tie."""
    prompt = messages[-1]["content"]
    if "<answer_a>" in prompt:
        a = prompt.split("<answer_a>", 1)[1].split("</answer_a>", 1)[0]
        b = prompt.split("<answer_b>", 1)[1].split("</answer_b>", 1)[0]
        ea, eb = bool(ENGLISH.search(a)), bool(ENGLISH.search(b))
        winner = "tie" if ea == eb else ("B" if ea else "A")
        return json.dumps({"reason": "by rule", "winner": winner})
    if "<answer>" not in prompt:
        return "ok"  # the engine's preflight
    answer = prompt.split("<answer>", 1)[1].split("</answer>", 1)[0]
    language = 1 if ENGLISH.search(answer) else 4
    return json.dumps({d: {"reason": "by rule", "score": s} for d, s in
                       (("language", language), ("content", 4), ("culture", 4))})


class EvalServer:
    """Serves `models` (name -> answer function of the request's messages). `fail_after`: requests
    answered before every chat request fails with HTTP 503 (an outage), None: never."""

    def __init__(self, models: dict[str, Callable[[list[dict]], str]], fail_after: int | None = None):
        self.models = models
        self.fail_after = fail_after
        self.chat_requests = 0
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.chat_requests += 1
                if server.fail_after is not None and server.chat_requests > server.fail_after:
                    self._send(503, {"error": {"message": "down", "type": "Error", "code": 503}})
                    return
                server.seen.append(body)
                model = server.models.get(body.get("model"))
                if model is None:
                    self._send(404, {"error": {"message": "no such model", "type": "Error", "code": 404}})
                    return
                self._send(200, completion(model(body["messages"])))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "EvalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

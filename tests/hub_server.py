"""A local stand-in for the part of the Hugging Face Hub HTTP API that `synth push` uses, so the real
huggingface_hub client runs end to end (HF_ENDPOINT points at it). Not the Hub: it answers every
preupload with `regular` (files travel base64 in the commit), so the LFS/Xet upload path of large files
is not exercised here. Repos are folders under `root`; every request is recorded with its auth header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml


class HubStandIn:
    def __init__(self, root: Path, token: str):
        self.root, self.token = Path(root), token
        self.requests: list[tuple[str, str, str | None]] = []
        self.cards: list[dict] = []  # front matter of each card validated
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "commits": [message, ...]}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                path = unquote(urlparse(self.path).path)
                auth = self.headers.get("Authorization")
                hub.requests.append((self.command, path, auth))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if auth != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials"})
                if self.command == "POST" and path == "/api/repos/create":
                    spec = json.loads(body)
                    repo = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
                    if repo in hub.repos:
                        return self._reply(409, {"error": "You already created this dataset repo",
                                                 "url": f"{hub.url}/datasets/{repo}"})
                    hub.repos[repo] = {"private": spec.get("private", spec.get("visibility") == "private"),
                                       "commits": []}
                    return self._reply(200, {"url": f"{hub.url}/datasets/{repo}", "name": repo})
                if self.command == "POST" and path == "/api/validate-yaml":  # the card's front matter
                    content = json.loads(body)["content"]
                    try:
                        meta = yaml.safe_load(content.split("---\n")[1]) if content.startswith("---\n") else {}
                        assert isinstance(meta, dict)
                    except Exception as exc:
                        return self._reply(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
                    hub.cards.append(meta)
                    return self._reply(200, {"errors": [], "warnings": []})
                parts = path.split("/")  # /api/datasets/OWNER/NAME/<action>/<revision>[/...]
                if len(parts) < 7 or parts[:3] != ["", "api", "datasets"]:
                    return self._reply(404, {"error": f"not served here: {self.command} {path}"})
                repo, action = f"{parts[3]}/{parts[4]}", parts[5]
                folder = hub.root / repo
                if repo not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"})
                if action == "tree" and self.command == "GET":
                    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
                    return self._reply(200, [{"type": "file", "path": p.relative_to(folder).as_posix(),
                                              "size": p.stat().st_size,
                                              "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in files])
                if action == "preupload" and self.command == "POST":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                if action == "commit" and self.command == "POST":
                    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                    for item in lines:
                        if item["key"] == "header":
                            hub.repos[repo]["commits"].append(item["value"]["summary"])
                        elif item["key"] == "file":
                            target = folder / item["value"]["path"]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(base64.b64decode(item["value"]["content"]))
                        elif item["key"] == "deletedFile":
                            (folder / item["value"]["path"]).unlink()
                        else:
                            return self._reply(400, {"error": f"unsupported operation {item['key']}"})
                    oid = hashlib.sha1(body).hexdigest()
                    return self._reply(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}",
                                             "commitOid": oid})
                return self._reply(404, {"error": f"not served here: {self.command} {path}"})

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

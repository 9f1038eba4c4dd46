"""Hugging Face Hub dataset repos laid out in a local Hub cache, as `huggingface_hub` writes them.

`HF_HUB_CACHE/datasets--OWNER--NAME/` holds `blobs/<sha256>` (file contents), `snapshots/<commit>/<path>`
(symlinks into blobs, one tree per commit) and `refs/<branch>` (the commit a branch points at). With
`HF_HUB_OFFLINE=1` the real library resolves `hf://datasets/OWNER/NAME` to a snapshot from this layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def configs_card(configs: dict[str, dict[str, str]]) -> bytes:
    """README.md whose YAML `configs:` maps config -> {split: file pattern} (the Hub's own syntax)."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {pattern}" for split, pattern in splits.items()]
    return ("\n".join(lines + ["---", "", "# test dataset", ""])).encode()


def cache_repo(cache: Path, repo_id: str, files: dict[str, bytes], commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """Add one commit of a dataset repo to a Hub cache; `refs` point at it. Returns the snapshot folder."""
    root = Path(cache) / ("datasets--" + repo_id.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    for rel, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (root / "refs" / ref).write_text(commit)
    return snapshot


def chat(i: int, prefix: str = "") -> list[dict]:
    return [{"role": "user", "content": f"{prefix}question {i}?"}, {"role": "assistant", "content": f"{prefix}answer {i}."}]

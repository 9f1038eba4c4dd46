"""Output of a run: balanced Parquet shards, rejects, manifest and dataset card (DESIGN.md section 4).

Every file appears whole or not at all, so a reader (or a resumed run) never sees half a file. A
local or shared-filesystem path gets a temporary name in the same directory, then a rename. Other
fsspec URLs (`--output s3://bucket/dir`, `gs://`, `memory://`) go through `RemotePath`: on object
stores one PUT of the whole object is atomic; elsewhere a temporary object is moved into place.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable

import polars as pl

from synth.errors import ConfigError

# object stores: one PUT (or one completed multipart upload) makes the whole object visible at once
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}


class RemotePath:
    """A path on an fsspec filesystem with the part of pathlib's API a run uses (`/`, exists, glob...)."""

    def __init__(self, fs, path: str):
        self.fs = fs
        self.path = path.rstrip("/")

    def __truediv__(self, name: str) -> "RemotePath":
        return RemotePath(self.fs, f"{self.path}/{name}")

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and (self.fs, self.path) == (other.fs, other.path)

    def __lt__(self, other: "RemotePath") -> bool:
        return self.path < other.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "RemotePath":
        return RemotePath(self.fs, self.path.rsplit("/", 1)[0])

    @property
    def atomic_put(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool(OBJECT_STORES & set(protocols))

    def resolve(self) -> "RemotePath":
        return self

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def iterdir(self) -> list["RemotePath"]:
        return [RemotePath(self.fs, p) for p in self.fs.ls(self.path, detail=False)]

    def glob(self, pattern: str) -> list["RemotePath"]:
        return sorted(RemotePath(self.fs, p) for p in self.fs.glob(f"{self.path}/{pattern}"))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.makedirs(self.path, exist_ok=True)  # no-op on object stores: prefixes need no creating

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_whole(self, data: bytes) -> None:
        """The whole object at once: one PUT on object stores, else a temporary object moved into place."""
        if self.atomic_put:
            self.fs.pipe_file(self.path, data)
            return
        tmp = f"{self.parent.path}/.{self.name}.{uuid.uuid4().hex[:8]}"
        self.fs.pipe_file(tmp, data)
        try:
            self.fs.mv(tmp, self.path)
        except BaseException:
            self.fs.rm(tmp)
            raise


OutPath = Path | RemotePath


def output_location(output: str | Path) -> OutPath:
    """`--output` as a path: local paths and file:// URLs stay pathlib Paths (tmp + rename); any other
    fsspec URL becomes a RemotePath. A protocol whose package is missing is a config error."""
    if isinstance(output, (Path, RemotePath)):
        return output
    if "://" not in output:
        return Path(output)
    if output.startswith("file://"):
        return Path(output[len("file://"):])
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(output)
    except (ImportError, ValueError) as exc:
        protocol = output.split("://", 1)[0]
        hint = "install the s3 extra: pip install 'synth[s3]'" if protocol in ("s3", "s3a") else \
            f"install the fsspec implementation for {protocol}://"
        raise ConfigError(f"--output {output}: cannot open this URL ({exc}); {hint}") from exc
    return RemotePath(fs, path)


def remove_tree(path: OutPath) -> None:
    if isinstance(path, RemotePath):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)


def read_parquet(path: OutPath) -> pl.DataFrame:
    if isinstance(path, RemotePath):
        return pl.read_parquet(io.BytesIO(path.read_bytes()))
    return pl.read_parquet(path)


MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
ACCEPTED_COLUMNS = ["id", "lang", "method", "category", "messages", "source_id", "source_lang",
                    "model", "prompt", "scores", "created_at"]
REJECTED_EXTRA = ["reject_reasons", "reject_details", "raw_output", "back_translation", "source_messages"]


WORK = "_work"  # committed round slices of a run, read to resume and to write the final outputs


def read_committed(out: OutPath) -> pl.DataFrame | None:
    """Every row committed so far in the run directory `out`, or None before the first slice."""
    parts = sorted((out / WORK).glob("round-*.parquet"))
    return pl.concat([read_parquet(p) for p in parts]) if parts else None


def atomic_write_bytes(path: OutPath, data: bytes) -> None:
    if isinstance(path, RemotePath):
        path.write_whole(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: OutPath, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n").encode())


def atomic_write_parquet(path: OutPath, frame: pl.DataFrame) -> None:
    if isinstance(path, RemotePath):
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd")
        path.write_whole(buffer.getvalue())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rows_frame(records: Iterable[dict], score_names: list[str]) -> pl.DataFrame:
    """All rows of a run (accepted and rejected) with a fixed schema."""
    schema = {
        "id": pl.String, "lang": pl.String, "method": pl.String, "category": pl.String,
        "messages": MESSAGES, "source_id": pl.String, "source_lang": pl.String, "model": pl.String,
        "prompt": pl.String, "scores": pl.Struct({n: pl.Float64 for n in score_names}),
        "created_at": pl.Datetime("us", "UTC"), "accepted": pl.Boolean,
        "reject_reasons": pl.List(pl.String), "reject_details": pl.List(pl.String),
        "raw_output": pl.String, "back_translation": pl.List(pl.String), "source_messages": MESSAGES,
        "round": pl.Int32,
    }
    return pl.DataFrame(list(records), schema=schema)


def write_language_shards(out: OutPath, lang: str, accepted: pl.DataFrame, shard_rows: int) -> list[str]:
    """Accepted rows of one language, ordered by method, category, id, in shards of `shard_rows`."""
    frame = accepted.sort(["method", "category", "id"]).select(ACCEPTED_COLUMNS)
    count = max(1, -(-frame.height // shard_rows))
    names = []
    for i in range(count):
        name = f"{lang}/train-{i:05d}-of-{count:05d}.parquet"
        atomic_write_parquet(out / name, frame.slice(i * shard_rows, shard_rows))
        names.append(name)
    return names


def write_rejects(out: OutPath, lang: str, rejected: pl.DataFrame) -> list[str]:
    if rejected.is_empty():
        return []
    name = f"rejected/{lang}/part-00000.parquet"
    atomic_write_parquet(out / name, rejected.sort("id").select(ACCEPTED_COLUMNS + REJECTED_EXTRA))
    return [name]


def dataset_card(manifest: dict) -> str:
    """README.md with Hugging Face YAML front matter: one config per language with accepted rows."""
    langs = [lang for lang, s in manifest["languages"].items() if s["accepted"]]
    lines = ["---", f"license: {manifest['license']}", "language:"]
    lines += [f"- {manifest['languages'][l]['iso639_1'] or manifest['languages'][l]['iso639_3']}" for l in langs]
    lines += ["task_categories:", "- text-generation", "tags:", "- synthetic", "- sft", "configs:"]
    for lang in langs:
        lines += [f"- config_name: {lang}", "  data_files:", "  - split: train", f"    path: {lang}/train-*.parquet"]
    lines += ["---", "", f"# {manifest['name']}", "",
              f"Synthetic SFT data generated by synth with `{manifest['model']}` "
              f"(filter preset `{manifest['filters']['preset']}`), status **{manifest['status']}**.", ""]
    if manifest.get("model_note"):
        lines += [f"> {manifest['model_note']}", ""]
    lines += ["| language | target | accepted | rejected | shortfall |", "|---|---|---|---|---|"]
    for lang, s in manifest["languages"].items():
        lines.append(f"| {lang} ({s['name']}) | {s['target']} | {s['accepted']} | {s['rejected']} | {s['shortfall']} |")
    lines += ["", "Every row passed: " + ", ".join(manifest["filters"]["run"]) + ".",
              *(f"Not run: {k} ({v})." for k, v in manifest["filters"]["not_run"].items()),
              "", "Load with `datasets.load_dataset(\"parquet\", data_dir=\"<lang>\")` or `polars.read_parquet(\"<lang>/*.parquet\")`.", ""]
    return "\n".join(lines)

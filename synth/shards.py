"""Output of a run: balanced Parquet shards, rejects, manifest and dataset card (../shared/DESIGN.md, section 4).

Every file appears whole or not at all, so a reader (or a resumed run) never sees half a file. A
local or shared-filesystem path gets a temporary name in the same directory, then a rename. Other
fsspec URLs (`--output s3://bucket/dir`, `gs://`, `memory://`) go through `RemotePath`: on object
stores one PUT of the whole object is atomic; elsewhere a temporary object is moved into place.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import signal
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

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


def read_parquet(path: OutPath, columns: list[str] | None = None) -> pl.DataFrame:
    if isinstance(path, RemotePath):
        return pl.read_parquet(io.BytesIO(path.read_bytes()), columns=columns)
    return pl.read_parquet(path, columns=columns)

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
ACCEPTED_COLUMNS = ["id", "lang", "method", "category", "messages", "source_id", "source_lang",
                    "model", "prompt", "scores", "created_at", "raw_text", "standardise_rules"]
REJECTED_EXTRA = ["reject_reasons", "reject_details", "raw_output", "back_translation", "source_messages"]


WORK = "_work"  # committed round slices of a run, read to resume and to write the final outputs
TMP_SUFFIX = ".tmp"  # a local file being written: `.<name>.<random>.tmp`, renamed into place when whole
KILL_AT_ENV = "SYNTH_TEST_KILL_AT"
_TMP_NAME = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX))  # mkstemp(prefix=".<name>.", suffix)
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's 0600 would hide published shards from others


def _kill_point(path: Path) -> None:
    """Test hook, unset in normal use: with SYNTH_TEST_KILL_AT=<file-name glob> the process SIGKILLs
    itself once the temporary copy of a matching file is written and before it is renamed into place,
    the worst moment for a crash. The resume tests stop `synth run` at named points with it."""
    pattern = os.environ.get(KILL_AT_ENV)
    if pattern and fnmatch.fnmatchcase(path.name, pattern):
        os.kill(os.getpid(), signal.SIGKILL)


def remove_temporaries(out: OutPath, owned=None) -> list[str]:
    """Delete the temporary files a killed run left behind (written, never renamed into place): only
    names `atomic_write_bytes` makes (`.<name>.<8 random>.tmp`) for a file `owned(relative name)` accepts."""
    if isinstance(out, RemotePath) or not out.is_dir():
        return []
    found = []
    for p in out.rglob(f".*{TMP_SUFFIX}"):
        match = _TMP_NAME.fullmatch(p.name)
        final = p.relative_to(out).with_name(match.group(1)).as_posix() if match else None
        if p.is_file() and final and (owned is None or owned(final)):
            found.append(p)
    for p in found:
        p.unlink(missing_ok=True)
    return sorted(str(p.relative_to(out)) for p in found)


def read_committed(out: OutPath, columns: list[str] | None = None) -> pl.DataFrame | None:
    """Every row committed so far in the run directory `out` (only `columns`, when given), or None
    before the first slice."""
    parts = sorted((out / WORK).glob("round-*.parquet"))
    # diagonal_relaxed: slices committed by an older synth lack the cost columns (null there)
    return pl.concat([read_parquet(p, columns) for p in parts], how="diagonal_relaxed") if parts else None


@contextmanager
def atomic_local_file(path: Path) -> Iterator[Path]:
    """A temporary file next to local `path` (`.<name>.<8 random>.tmp`, a name synth owns) for a file
    written in steps: renamed onto `path` when the block ends, deleted if it raises, so `path` is
    either whole or left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        _kill_point(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scan_committed(out: OutPath) -> pl.LazyFrame | None:
    """`read_committed` as a lazy frame: a reader that filters (one language at a time) holds only the
    rows it keeps, not the whole run. Object stores are read whole (polars cannot scan every fsspec URL)."""
    parts = sorted((out / WORK).glob("round-*.parquet"))
    if not parts:
        return None
    if isinstance(out, RemotePath):
        return read_committed(out).lazy()
    return pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")


def language_rows(rows: pl.DataFrame | pl.LazyFrame, lang: str) -> pl.DataFrame:
    """The rows of one language, from committed rows in memory or scanned."""
    mine = rows.filter(pl.col("lang") == lang)
    return mine.collect() if isinstance(mine, pl.LazyFrame) else mine


def atomic_write_bytes(path: OutPath, data: bytes) -> None:
    if isinstance(path, RemotePath):
        path.write_whole(data)
        return
    with atomic_local_file(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: OutPath, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n").encode())


def parquet_bytes(frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> bytes:
    """The frame as a zstd Parquet file (with key-value `metadata`); the same frame always gives the
    same bytes."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", metadata=metadata)
    return buffer.getvalue()


def atomic_write_parquet(path: OutPath, frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> None:
    atomic_write_bytes(path, parquet_bytes(frame, metadata))


def write_unless_same(path: OutPath, data: bytes) -> bool:
    """Write `data` unless `path` already holds exactly these bytes. A resumed run rebuilds the final
    files from the committed slices; the ones a killed finish already wrote are left untouched."""
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def _remove(path: OutPath) -> None:
    if isinstance(path, RemotePath):
        path.fs.rm(path.path)
    else:
        path.unlink(missing_ok=True)


def rows_frame(records: Iterable[dict], score_names: list[str]) -> pl.DataFrame:
    """All rows of a run (accepted and rejected) with a fixed schema."""
    schema = {
        "id": pl.String, "lang": pl.String, "method": pl.String, "category": pl.String,
        "messages": MESSAGES, "source_id": pl.String, "source_lang": pl.String, "model": pl.String,
        "prompt": pl.String, "scores": pl.Struct({n: pl.Float64 for n in score_names}),
        "created_at": pl.Datetime("us", "UTC"), "accepted": pl.Boolean,
        "reject_reasons": pl.List(pl.String), "reject_details": pl.List(pl.String),
        "raw_output": pl.String, "back_translation": pl.List(pl.String), "source_messages": MESSAGES,
        "round": pl.Int32, "prompt_tokens": pl.Int64, "output_tokens": pl.Int64, "engine_s": pl.Float64,
        "raw_text": pl.String, "standardise_rules": pl.List(pl.String),  # synth.standardise
    }
    return pl.DataFrame(list(records), schema=schema)


def balanced_order(accepted: pl.DataFrame) -> pl.DataFrame:
    """Rows of one language interleaved over the method x category cells: the k-th of a cell's n rows
    (by id) sits at (k + 0.5) / n, so any run of consecutive rows, and so every shard, holds each cell
    in its overall proportion (within a row or two). Depends on the ids only: a rebuild is identical."""
    cell = ["method", "category"]
    position = (pl.col("id").rank("ordinal").over(cell) - 0.5) / pl.len().over(cell)
    return accepted.sort("id").with_columns(_position=position).sort(["_position", *cell, "id"]).drop("_position")


def write_language_shards(out: OutPath, lang: str, accepted: pl.DataFrame, shard_rows: int) -> list[str]:
    """Accepted rows of one language in shards of `shard_rows`, cells interleaved (`balanced_order`).

    Same rows in, same bytes out: a resumed finish leaves already written shards untouched, and
    removes shards of this language that are not part of the new set."""
    frame = balanced_order(accepted).select(ACCEPTED_COLUMNS)
    count = max(1, -(-frame.height // shard_rows))
    names = []
    for i in range(count):
        name = f"{lang}/train-{i:05d}-of-{count:05d}.parquet"
        write_unless_same(out / name, parquet_bytes(frame.slice(i * shard_rows, shard_rows)))
        names.append(name)
    for stale in (out / lang).glob("train-*.parquet"):
        if f"{lang}/{stale.name}" not in names:
            _remove(stale)
    return names


def write_rejects(out: OutPath, lang: str, rejected: pl.DataFrame) -> list[str]:
    if rejected.is_empty():
        return []
    name = f"rejected/{lang}/part-00000.parquet"
    write_unless_same(out / name, parquet_bytes(rejected.sort("id").select(ACCEPTED_COLUMNS + REJECTED_EXTRA)))
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

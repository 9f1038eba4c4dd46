"""Output of a run: balanced Parquet shards, rejects, manifest and dataset card (../shared/DESIGN.md, section 4).

Every file appears whole or not at all, so a reader (or a resumed run) never sees half a file. A
local or shared-filesystem path gets a temporary name in the same directory, then a rename, never
through a link below the run directory (synth.runfiles: every local read, write and delete). Other
fsspec URLs (`--output s3://bucket/dir`, `gs://`, `memory://`) go through `RemotePath`: on object
stores one PUT of the whole object is atomic; elsewhere a temporary object is moved into place.
"""

from __future__ import annotations

import fcntl
import fnmatch
import io
import json
import logging

import re
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import polars as pl

from synth import runfiles
from synth.errors import ConfigError

log = logging.getLogger("synth")
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


def read_parquet_schema(path: OutPath) -> dict:
    """Column names and types of a Parquet file (its footer only, for a local file)."""
    return pl.read_parquet_schema(io.BytesIO(path.read_bytes()) if isinstance(path, RemotePath) else path)


def read_parquet(path: OutPath, columns: list[str] | None = None) -> pl.DataFrame:
    if isinstance(path, RemotePath):
        return pl.read_parquet(io.BytesIO(path.read_bytes()), columns=columns)
    return pl.read_parquet(path, columns=columns)

# The one naming rule for shard columns (../shared/DESIGN.md, section 4). TRL picks a dataset's format
# from its column names, for the whole dataset: `messages` (conversational) or `text` (language modelling),
# `prompt` + `completion` (prompt-completion; KTO adds `label`), `prompt` + `chosen` + `rejected`
# (preference), `images`/`image` (vision), `conversations` (ShareGPT, converted), `tools`, and already
# tokenised columns (`input_ids`, `labels`, masks). A shard column with one of these names makes TRL read
# the shards as another format (a `prompt` column: KeyError 'completion'), so no shard column may take one;
# `messages` is the conversation itself, a list of {role, content}, and nothing else.
TRL_FORMAT_FIELDS = frozenset({
    "prompt", "completion", "chosen", "rejected", "text", "label", "labels", "images", "image",
    "conversations", "tools", "input_ids", "attention_mask", "position_ids", "completion_mask",
    "assistant_masks", "prompt_ids", "completion_ids", "chosen_ids", "rejected_ids", "seq_lengths",
})
CONVERSATION = "messages"
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
ACCEPTED_COLUMNS = ["id", "lang", "method", "category", CONVERSATION, "source_id", "source_lang",
                    "model", "prompt_template", "scores", "created_at", "raw_text", "standardise_rules"]
REJECTED_EXTRA = ["reject_reasons", "reject_details", "raw_output", "back_translation", "source_messages"]
# columns of slices an older synth committed, under their current names: a resumed run reads them as new
LEGACY_COLUMNS = {"prompt": "prompt_template"}


def check_shard_columns(schema: dict) -> None:
    """Refuse a shard whose columns break the naming rule above (a bug in synth, not the user's input)."""
    clashes = sorted(TRL_FORMAT_FIELDS & set(schema))
    if clashes:
        raise ValueError(f"shard columns {clashes} are TRL dataset-format fields; rename them (synth/shards.py)")
    if CONVERSATION in schema and schema[CONVERSATION] != MESSAGES:
        raise ValueError(f"shard column {CONVERSATION!r} must be the conversation, {MESSAGES}, not {schema[CONVERSATION]}")


def upgrade_columns(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """A committed slice with its columns under their current names (LEGACY_COLUMNS)."""
    names = frame.collect_schema().names()
    return frame.rename({old: new for old, new in LEGACY_COLUMNS.items() if old in names and new not in names})


def _slice_columns(path: "OutPath", columns: list[str]) -> list[str]:
    """`columns` as a slice names them: the legacy name where an older synth committed it."""
    wanted = {new: old for old, new in LEGACY_COLUMNS.items() if new in columns}
    if not wanted:
        return columns
    names = set(read_parquet_schema(path))
    return [wanted[c] if c in wanted and c not in names and wanted[c] in names else c for c in columns]


WORK = "_work"  # committed round slices of a run, read to resume and to write the final outputs
TMP_SUFFIX = runfiles.TMP_SUFFIX
KILL_AT_ENV = runfiles.KILL_AT_ENV
FILE_MODE = runfiles.FILE_MODE
_TMP_NAME = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX))  # `.<name>.<8 random>.tmp`
SLICE_NAME = re.compile(r"round-(\d{4})-(\d{5})\.parquet")  # a committed slice: round, part


def remove_temporaries(out: OutPath, owned=None) -> list[str]:
    """Delete the temporary files a killed run left behind (written, never renamed into place): only
    regular files named as `atomic_write_bytes` names them (`.<name>.<8 random>.tmp`) for a file
    `owned(relative name)` accepts; never a link, never inside a linked folder."""
    if isinstance(out, RemotePath) or not out.is_dir():
        return []
    found = []
    for p in out.rglob(f".*{TMP_SUFFIX}"):  # rglob does not descend into linked folders
        match = _TMP_NAME.fullmatch(p.name)
        rel = p.relative_to(out).as_posix()
        final = p.relative_to(out).with_name(match.group(1)).as_posix() if match else None
        if final and (owned is None or owned(final)) and runfiles.is_regular(out, rel):
            found.append(rel)
    for rel in found:
        runfiles.unlink(out, rel)
    return sorted(found)


def _relative(path: Path, root: Path | None) -> tuple[Path, str]:
    """(run directory, name inside it) of a local path; without `root`, the file's own folder."""
    if root is None:
        return path.parent, path.name
    return Path(root), path.relative_to(root).as_posix()


def committed_slices(out: OutPath) -> list[OutPath]:
    """The committed slices of the run directory `out`, in commit order (other files ignored)."""
    return sorted(p for p in (out / WORK).glob("round-*.parquet") if SLICE_NAME.fullmatch(p.name))


def _damaged(out: OutPath, path: OutPath, parts: list[OutPath], why: str) -> ConfigError:
    later = [p.name for p in parts if p.name > path.name]
    redo = f"delete it{' and the later slices (' + ', '.join(later) + ')' if later else ''} and run the same " \
           f"command again: synth regenerates those attempts with the same row ids"
    return ConfigError(f"--output {out}: the committed slice {WORK}/{path.name} is damaged ({why}); restore it from "
                       f"a copy, or {redo}; or pass --force-new to delete this run's files and start over")


def read_committed(out: OutPath, columns: list[str] | None = None) -> pl.DataFrame | None:
    """Every row committed so far in the run directory `out` (only `columns`, when given), or None
    before the first slice."""
    parts = committed_slices(out)
    frames = []
    for path in parts:  # one at a time: a damaged slice is named, not a traceback from the reader
        try:
            frame = upgrade_columns(read_parquet(path, columns and _slice_columns(path, columns)))
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise _damaged(out, path, parts, f"not a readable Parquet slice: {str(exc).splitlines()[0][:200]}") from None
        missing = [c for c in columns or ["id"] if c not in frame.columns]
        if missing:
            raise _damaged(out, path, parts, f"no column {missing[0]!r}: not a slice synth wrote")
        frames.append(frame)
    if frames and "id" in frames[0].columns:  # a slice copied or restored twice must not count its rows twice
        ids = pl.concat([f.select("id").with_columns(_slice=pl.lit(i)) for i, f in enumerate(frames)])
        twice = ids.filter(pl.col("id").is_duplicated()).sort("_slice")
        if twice.height:
            first = twice.row(0, named=True)
            where = sorted({parts[i].name for i in twice.filter(pl.col("id") == first["id"])["_slice"]})
            raise ConfigError(f"--output {out}: row {first['id']} is committed twice ({', '.join(f'{WORK}/{n}' for n in where)}): "
                              f"a slice was copied or restored over the run; remove the copy that synth did not commit "
                              f"(or pass --force-new to start over)")
    # diagonal_relaxed: slices committed by an older synth lack the cost columns (null there)
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


@contextmanager
def atomic_local_file(path: Path, root: Path | None = None) -> Iterator[Path]:
    """A temporary file next to local `path` (`.<name>.<8 random>.tmp`, a name synth owns) for a file
    written in steps: renamed onto `path` when the block ends, deleted if it raises, so `path` is
    either whole or left as it was. `root`: the run directory `path` is in (no link below it is
    followed); else only the file itself is checked not to be a link."""
    with runfiles.atomic_file(*_relative(Path(path), root)) as tmp:
        yield tmp


def scan_committed(out: OutPath) -> pl.LazyFrame | None:
    """`read_committed` as a lazy frame: a reader that filters (one language at a time) holds only the
    rows it keeps, not the whole run. Object stores are read whole (polars cannot scan every fsspec URL)."""
    parts = committed_slices(out)
    if not parts:
        return None
    if isinstance(out, RemotePath):
        return read_committed(out).lazy()
    return pl.concat([upgrade_columns(pl.scan_parquet(p)) for p in parts], how="diagonal_relaxed")


def language_rows(rows: pl.DataFrame | pl.LazyFrame, lang: str) -> pl.DataFrame:
    """The rows of one language, from committed rows in memory or scanned."""
    mine = rows.filter(pl.col("lang") == lang)
    return mine.collect() if isinstance(mine, pl.LazyFrame) else mine


def atomic_write_bytes(path: OutPath, data: bytes, root: OutPath | None = None) -> None:
    """`path` holds `data`, whole or not at all. `root`: the run directory `path` is in: no link
    below it is written through (synth.runfiles); without it, only the file itself is checked."""
    if isinstance(path, RemotePath):
        path.write_whole(data)
        return
    runfiles.write_bytes(*_relative(Path(path), root), data)


def atomic_write_json(path: OutPath, payload: dict, root: OutPath | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n").encode(), root)


def parquet_bytes(frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> bytes:
    """The frame as a zstd Parquet file (with key-value `metadata`); the same frame always gives the
    same bytes."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", metadata=metadata)
    return buffer.getvalue()


def atomic_write_parquet(path: OutPath, frame: pl.DataFrame, metadata: dict[str, str] | None = None,
                         root: OutPath | None = None) -> None:
    atomic_write_bytes(path, parquet_bytes(frame, metadata), root)


def write_unless_same(out: OutPath, name: str, data: bytes) -> bool:
    """Write `data` to `out/name` unless it already holds exactly these bytes. A resumed run rebuilds
    the final files from the committed slices; the ones a killed finish already wrote are left untouched."""
    if isinstance(out, RemotePath):
        path = out / name
        if path.exists() and path.read_bytes() == data:
            return False
        path.write_whole(data)
        return True
    try:
        if runfiles.read_bytes(out, name) == data:
            return False
    except FileNotFoundError:
        pass
    runfiles.write_bytes(out, name, data)
    return True


def _stale_shards(out: OutPath, lang: str, keep: list[str]) -> None:
    """Delete this language's shards that are not part of the new set (never through a link)."""
    if isinstance(out, RemotePath):
        for stale in (out / lang).glob("train-*.parquet"):
            if f"{lang}/{stale.name}" not in keep:
                stale.fs.rm(stale.path)
        return
    for name in runfiles.listdir(out, lang):
        if fnmatch.fnmatchcase(name, "train-*.parquet") and f"{lang}/{name}" not in keep:
            runfiles.unlink(out, f"{lang}/{name}")


def rows_frame(records: Iterable[dict], score_names: list[str]) -> pl.DataFrame:
    """All rows of a run (accepted and rejected) with a fixed schema."""
    schema = {
        "id": pl.String, "lang": pl.String, "method": pl.String, "category": pl.String,
        "messages": MESSAGES, "source_id": pl.String, "source_lang": pl.String, "model": pl.String,
        "prompt_template": pl.String, "scores": pl.Struct({n: pl.Float64 for n in score_names}),
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
    check_shard_columns(frame.schema)
    names = shard_names(lang, frame.height, shard_rows)
    for i, name in enumerate(names):
        write_unless_same(out, name, parquet_bytes(frame.slice(i * shard_rows, shard_rows)))
    _stale_shards(out, lang, names)
    return names


def shard_names(lang: str, rows: int, shard_rows: int) -> list[str]:
    """The shard files of `rows` accepted rows of one language (none for none)."""
    if not rows:
        return []
    count = -(-rows // shard_rows)
    return [f"{lang}/train-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


def reject_names(lang: str) -> list[str]:
    return [f"rejected/{lang}/part-00000.parquet"]


def write_rejects(out: OutPath, lang: str, rejected: pl.DataFrame) -> list[str]:
    if rejected.is_empty():
        return []
    name, = reject_names(lang)
    frame = rejected.sort("id").select(ACCEPTED_COLUMNS + REJECTED_EXTRA)
    check_shard_columns(frame.schema)
    write_unless_same(out, name, parquet_bytes(frame))
    return [name]


def check_writable(output_path: Path, flag: str = "--output") -> None:
    """`output_path` can be created: its folder (or the nearest one that exists) accepts a new file. A
    read-only folder, or a path through a file, is exit 2 before any work, not a traceback after it.
    Nothing is left behind."""
    folder = output_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{flag} {output_path}: {folder} is not a folder; give a path in a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".synth-write-check.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {output_path}: cannot write in {folder} ({exc.strerror}); give a folder you "
                          f"can write to") from None


# ---- temporaries of one output file (synth verify, synth verify --judge) ------------------------

def temporaries_of(output_path: Path) -> re.Pattern:
    """Names of the temporary files synth makes for `output_path`: `atomic_local_file`'s
    `.<name>.<8 random>.tmp`, and `synth verify --judge`'s staging copy (the same form) with the
    judge's own rewrite of it (`..<name>.<8>.tmp.<8>.tmp`)."""
    name, rand = re.escape(output_path.name), r"[A-Za-z0-9_]{8}"
    tmp = re.escape(TMP_SUFFIX)
    return re.compile(rf"\.(?:\.{name}\.{rand}{tmp}|{name})\.{rand}{tmp}")


def remove_stale_temporaries(output_path: Path) -> list[str]:
    """Delete what a killed `synth verify -o output_path` left next to it: only temporaries of this
    output's name (`temporaries_of`) that no live run holds (a writer keeps an flock on its temporary;
    the kernel drops it when the process dies, SIGKILL included). Never another file."""
    directory, pattern, removed = output_path.parent, temporaries_of(output_path), []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        if not pattern.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            continue
        try:
            with open(path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a live run is writing it
                path.unlink()
            removed.append(path.name)
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) of an earlier, killed run: %s", len(removed), ", ".join(removed))
    return removed


def hold(path: Path):
    """An open handle holding an flock on `path` (a temporary being written): `remove_stale_temporaries`
    of a later run leaves it alone while this process lives."""
    handle = open(path, "rb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle

"""Pairs in the `synth verify` input schema: read and checked, turned into Candidates, and scored on
every core. `synth verify` (cli_verify) and `synth calibrate` (calibrate) both use it."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from synth.arrays import int64_array
from synth.errors import ConfigError
from synth.languages import load_registry
from synth.loading import check_parquet
from synth.standardise import changed_rows, standardise_batch, with_changes
from synth.verify.base import Candidate
from synth.verify.lid.router import LidRouter, uncovered_message
from synth.verify.pipeline import VerdictColumns, Verifier

REQUIRED = ("id", "lang", "source_lang", "source", "text")
OPTIONAL = ("back_translation", "truncated")
# the types an optional column must have: a "yes"/"no" string is not a truncation flag (a non-empty
# string is true), a float is not a back-translation
OPTIONAL_TYPES = {"back_translation": ((pl.String, pl.Null), "text (the back-translation of `text`), e.g. polars "
                                       ".cast(pl.String)"),
                  "truncated": ((pl.Boolean, pl.Null), "true/false (whether generation stopped at max_tokens), e.g. "
                                "polars .cast(pl.Boolean) or pl.col('truncated') == 'yes'")}
CHECKED = ("id", "lang", "source_lang")  # the columns the whole-input checks read: never the texts


@dataclass
class PairsInput:
    """A checked `synth verify` input: its rows are read later, batch by batch (`batches`)."""

    path: Path
    rows: int
    registry: dict  # the rows' languages (lang and source_lang), by code

    def batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Every column, `batch_rows` rows at a time, in file order. Read in 1 MiB buffers, not a whole
        row group's columns at once (pre_buffer): a writer's row groups can hold a million rows. One
        thread: the scoring workers have the cores, and Arrow's reader threads cost more CPU than they
        save (bench/README.md)."""
        parquet = pq.ParquetFile(self.path, buffer_size=1 << 20, pre_buffer=False)
        if not self.rows:  # iter_batches yields nothing: one empty batch carries the columns to the output
            yield pa.RecordBatch.from_pylist([], schema=parquet.schema_arrow)
            return
        yield from parquet.iter_batches(batch_size=batch_rows, use_threads=False)


def open_pairs(input_path: Path, preset, lid_skip: set[str] = frozenset()) -> PairsInput:
    """Every check that refuses the whole input, before any work: the schema, then the ids and
    languages (CHECKED) and the text column's null count. The texts themselves are not read, so the
    memory these checks take grows with the ids, not with the texts."""
    if not input_path.is_file():
        raise ConfigError(f"{input_path}: input file not found")
    try:
        parquet = check_parquet(input_path, "input")  # also refuses absurdly nested column types
        schema = pl.read_parquet_schema(input_path)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; synth verify reads Parquet with columns {list(REQUIRED)}") from None
    except Exception as exc:  # pyarrow and polars raise several types for a file that is not Parquet
        raise ConfigError(f"{input_path}: not a readable Parquet file ({type(exc).__name__}); synth verify reads "
                          f"Parquet with columns {list(REQUIRED)}") from None
    missing = [c for c in REQUIRED if c not in schema]
    if missing:
        raise ConfigError(f"{input_path}: missing columns {missing}; synth verify needs {list(REQUIRED)}")
    for column in REQUIRED:
        if schema[column] not in (pl.String, pl.Null):
            raise ConfigError(f"{input_path}: column {column!r} is {schema[column]}, not text; "
                              f"cast it to string (e.g. polars .cast(pl.String))")
    for column, (allowed, expected) in OPTIONAL_TYPES.items():
        if column in schema and schema[column] not in allowed:
            raise ConfigError(f"{input_path}: column {column!r} is {schema[column]}; synth verify reads it as "
                              f"{expected}, or drop the column")
    frame = pl.read_parquet(input_path, columns=list(CHECKED))
    check_pairs(input_path, frame, text_nulls=_null_count(parquet, "text"))
    registry = load_registry()
    lang_values = set(frame["lang"].unique().to_list())
    langs = lang_values | set(frame["source_lang"].drop_nulls().unique().to_list())
    unknown = sorted(l for l in langs if l not in registry)
    if unknown:
        raise ConfigError(f"{input_path}: unknown language codes {unknown} in lang/source_lang; "
                          f"add languages/<code>.yaml or fix the rows")
    registry = {l: registry[l] for l in sorted(langs)}  # the rows' languages: what not_run reports on
    if preset is not None and "lid" in preset.filters:  # None: no filter will run (synth standardise)
        router = LidRouter(registry, preset.lid_model, preset.lid_backends)
        uncovered = router.uncovered(lang_values - set(lid_skip))
        if uncovered:
            raise ConfigError(f"{input_path}: rows in {uncovered_message(router, uncovered)} "
                              f"(--lid-skip {' --lid-skip '.join(uncovered)})")
    return PairsInput(input_path, frame.height, registry)


def read_pairs(input_path: Path, preset, lid_skip: set[str] = frozenset()) -> tuple[pl.DataFrame, dict]:
    """The whole input in memory, after every check that refuses it (`synth calibrate`: known-good
    pairs, a small file); `synth verify` streams instead (`open_pairs`, `PairsInput.batches`)."""
    pairs = open_pairs(input_path, preset, lid_skip)
    return pl.read_parquet(input_path), pairs.registry


def _null_count(parquet: pq.ParquetFile, column: str) -> int:
    """Nulls in a top-level column: from the row groups' statistics when every one has them, else
    by reading that column alone, a batch at a time."""
    metadata = parquet.metadata
    index = next((j for j in range(metadata.num_columns) if metadata.schema.column(j).path == column), None)
    counts = []
    for i in range(metadata.num_row_groups) if index is not None else ():
        stats = metadata.row_group(i).column(index).statistics
        if stats is None or not stats.has_null_count:
            break
        counts.append(stats.null_count)
    else:
        if index is not None:
            return sum(counts)
    return sum(batch.column(0).null_count for batch in parquet.iter_batches(batch_size=65_536, columns=[column]))


def check_pairs(input_path: Path, frame: pl.DataFrame, text_nulls: int = 0) -> None:
    """Refuse input that would be verified wrongly: missing ids, languages or texts, and one id on two
    rows (their verdicts could not be told apart). `frame`: the CHECKED columns."""
    for column in ("id", "lang"):
        if nulls := frame[column].null_count():
            raise ConfigError(f"{input_path}: column {column!r} has {nulls} null value(s); every row needs one")
    if text_nulls:
        raise ConfigError(f"{input_path}: column 'text' has {text_nulls} null value(s); every row needs one")
    repeated = frame["id"].filter(frame["id"].is_duplicated()).unique().sort().head(3).to_list()
    if repeated:
        raise ConfigError(f"{input_path}: ids appear on more than one row (e.g. {repeated}); give each pair its own id")


# Key-value metadata of every file `synth verify` writes: the only existing files it may replace
VERIFY_MARK = {"synth": "verify"}


def written_by_verify(path: Path) -> bool:
    """`path` is a Parquet file `synth verify` wrote (it carries VERIFY_MARK)."""
    try:
        metadata = pq.ParquetFile(path).metadata.metadata or {}
    except Exception:  # not Parquet, unreadable: not ours
        return False
    return all(metadata.get(k.encode()) == v.encode() for k, v in VERIFY_MARK.items())


def check_output(input_path: Path, output_path: Path) -> None:
    """The output is a new file, or one an earlier `synth verify` wrote: never the input, never a
    directory, never a user's file."""
    if output_path.is_dir():
        raise ConfigError(f"--output {output_path}: is a directory; give a file path such as verified.parquet")
    if output_path.exists() and input_path.exists() and output_path.resolve() == input_path.resolve():
        raise ConfigError(f"--output {output_path}: is the input file; write the result to another file")
    if output_path.exists() and not written_by_verify(output_path):
        raise ConfigError(f"--output {output_path}: exists and was not written by synth verify; give a new file "
                          f"name (synth never overwrites a user's file)")


def columns_of(rows: pa.RecordBatch | pa.Table) -> dict[str, list]:
    """The input columns Candidates need, as Python lists, from Arrow (what forked workers get: never
    polars, whose thread pool does not survive a fork)."""
    return {c: rows.column(c).to_pylist() for c in (*REQUIRED, *OPTIONAL) if c in rows.schema.names}


def candidates(columns: dict[str, list], start: int = 0, stop: int | None = None) -> list[Candidate]:
    """Rows [start, stop) of the `synth verify` input schema as Candidates."""
    rows = range(len(columns["id"]))[start:stop]
    back, truncated = columns.get("back_translation"), columns.get("truncated")
    ids, langs, texts = columns["id"], columns["lang"], columns["text"]
    sources, source_langs = columns["source"], columns["source_lang"]
    return [Candidate(id=str(ids[i]), lang=langs[i], text=texts[i] or "", source=sources[i],
                      source_lang=source_langs[i], back_translation=back[i] if back else None,
                      truncated=truncated[i] if truncated else None) for i in rows]


class _Langs(Sequence):
    """The rows at `indices` as Candidates holding only their language: what `finish` reads of a row
    when the worker that scored it sent its dedup sketch along (the parent never reads the texts)."""

    def __init__(self, langs: list[str], indices: Sequence[int]):
        self.langs, self.indices = langs, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Candidate:
        row = self.indices[i]
        return Candidate(id=str(row), lang=self.langs[row], text="")


PARALLEL_MIN_ROWS = 4_000  # below this, starting worker processes costs more than it saves
CHUNK_ROWS = 2_000  # rows a worker scores at a time: small enough to keep every core busy to the end
AHEAD = 2  # batches handed to the workers at a time: one being finished here, the next being scored
_FORKED: Verifier | None = None  # inherited by forked workers: no model reload
_FORKED_STANDARDISER = None  # synth.standardise.Standardiser: the workers standardise their chunks too
_STOP = None  # a flag in shared memory (no lock), inherited by the workers: set when the run ends early
SETTLE_SECONDS = 60.0  # after an error, how long the workers may take to finish the chunks they are on


def _worker_start() -> None:
    """A worker leaves signals to the parent (it may have inherited `synth`'s SIGTERM handler): Ctrl-C
    reaches the whole process group, and the pool ends its workers with SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _score_chunk(rows: pa.RecordBatch | pa.Table) -> tuple[VerdictColumns, tuple | None]:
    """In a worker: verdicts of the rows, as columns, and the dedup sketches of those that passed
    (the parent finishes them without reading their texts). Rows come as Arrow (a memory copy to
    send, no Python strings to pickle); only here do they become Python objects. Once the run has
    ended early (`_settle`), a chunk still queued is skipped."""
    if _STOP is not None and _STOP.value:
        return None, None, {}
    columns = columns_of(rows)
    changed = changed_rows(_FORKED_STANDARDISER, columns["text"], columns["lang"]) if _FORKED_STANDARDISER else {}
    for i, result in changed.items():  # scored standardised; the parent writes them (with_changes)
        columns["text"][i] = result.text
    batch = candidates(columns)
    scored = _FORKED.score_filters(batch)
    return VerdictColumns.of(scored, _FORKED.score_names()), _FORKED.dedup_sketches(batch, scored), changed


def _settle(jobs: list, stop) -> None:
    """After an error, before the pool ends its workers: queued chunks are skipped and the chunks the
    workers are on are left to finish. multiprocessing's Pool ends its workers with SIGTERM, and a
    worker killed while it writes a result holds the result queue's lock for ever: the pool's
    shutdown then hangs (seen once in tests/verify/test_plugins.py's broken filter)."""
    stop.value = True
    deadline = time.monotonic() + SETTLE_SECONDS
    for job in jobs:
        job.wait(max(0.0, deadline - time.monotonic()))


def _in_row_order(parts: list[tuple[list[int], VerdictColumns]], rows: int) -> VerdictColumns:
    """One batch's verdict columns from its chunks' (row indices, columns): each chunk's column
    placed by one numpy assignment (every row is in one chunk)."""
    where = [np.asarray(chunk, dtype=np.int64) for chunk, _ in parts]

    def placed(pick) -> list:
        column = np.full(rows, None, dtype=object)
        for at, (_, part) in zip(where, parts):
            values = pick(part)
            column[at] = np.fromiter(values, dtype=object, count=len(values))  # lists stay objects
        return column.tolist()

    names = parts[0][1].scores if parts else {}
    return VerdictColumns({name: placed(lambda part: part.scores[name]) for name in names},
                          placed(lambda part: part.reasons), placed(lambda part: part.details))


def language_chunks(langs: Sequence[str], size: int = CHUNK_ROWS) -> list[list[int]]:
    """Row indices in chunks of at most `size`, each holding whole languages where it can (a language
    of more rows than `size` fills chunks of its own): a worker then loads the dictionaries (fluency)
    of the languages it is sent, not of every language in the input."""
    by_lang: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        by_lang.setdefault(lang, []).append(i)
    chunks: list[list[int]] = []
    current: list[int] = []
    for rows in by_lang.values():
        for start in range(0, len(rows), size):
            piece = rows[start:start + size]
            if len(current) + len(piece) > size:
                chunks.append(current)
                current = []
            current += piece
    if current:
        chunks.append(current)
    return chunks


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def scored_batches(verifier: Verifier, batches: Iterable[pa.RecordBatch | pa.Table], rows: int,
                   batch_rows: int = 20_000, standardiser=None) -> Iterator[tuple[pa.RecordBatch | pa.Table, VerdictColumns]]:
    """(batch, its verdicts in row order) per batch of the input, in order; `rows`: the input's total.

    The stateless filters run in forked worker processes, one per core, on chunks of rows sent to
    them (at most AHEAD batches in flight, so memory holds a few batches, never the input), each chunk
    of a few whole languages (`language_chunks`); dedup (stateful, order-dependent) runs here on each
    chunk as it comes back, in order, from the sketches the worker made. Dedup compares a row only
    with rows of its own language, and a language's rows reach it in row order (chunks keep row order
    within a language, and are finished in the order they were made), so the result is the same as
    one process's in row order, whatever the batch size. Small inputs, one core, or LASER (torch has
    its own threads and does not survive a fork) stay in this process."""
    global _FORKED, _STOP, _FORKED_STANDARDISER
    workers = _workers()
    if rows < PARALLEL_MIN_ROWS or workers < 2 or "laser" in verifier.names \
            or "fork" not in multiprocessing.get_all_start_methods():
        for batch in batches:
            batch = standardise_batch(batch, standardiser) if standardiser else batch
            columns = columns_of(batch)
            yield batch, VerdictColumns.of([v for start in range(0, len(columns["id"]), batch_rows)
                                            for v in verifier.verify(candidates(columns, start, start + batch_rows))],
                                           verifier.score_names())
        return
    context = multiprocessing.get_context("fork")
    _FORKED, _STOP, _FORKED_STANDARDISER = verifier, context.RawValue(ctypes.c_bool, False), standardiser
    try:
        with context.Pool(workers, initializer=_worker_start) as pool:
            source, inflight, jobs = iter(batches), deque(), []

            def submit() -> None:
                for batch in source:
                    langs = batch.column("lang").to_pylist()
                    chunks = language_chunks(langs)
                    needed = batch.select([c for c in (*REQUIRED, *OPTIONAL) if c in batch.schema.names])
                    pending = [pool.apply_async(_score_chunk, (needed.take(int64_array(chunk)),)) for chunk in chunks]
                    inflight.append((batch, langs, chunks, pending))
                    jobs[:] = [job for job in jobs if not job.ready()] + pending
                    return

            try:
                for _ in range(AHEAD):
                    submit()
                while inflight:
                    batch, langs, chunks, pending = inflight.popleft()
                    submit()
                    parts, changed = [], {}
                    for chunk, job in zip(chunks, pending):  # each as it comes, while the workers score the next
                        part, sketched, chunk_changed = job.get()
                        parts.append((chunk, verifier.finish_columns(_Langs(langs, chunk), part, sketched)))
                        for i, result in chunk_changed.items():
                            changed[chunk[i]] = result
                            standardiser.count(langs[chunk[i]], result.rules)
                    yield (with_changes(batch, changed) if standardiser else batch), _in_row_order(parts, len(langs))
            except BaseException:  # a failed chunk, Ctrl-C, or the caller stopped reading
                _settle(jobs, _STOP)
                raise
    finally:
        _FORKED = _STOP = _FORKED_STANDARDISER = None


def verdict_columns(verifier: Verifier, frame: pl.DataFrame, batch_rows: int = 20_000) -> Iterator[VerdictColumns]:
    """The verdicts of a whole frame's rows, batch by batch in row order (`scored_batches` on its slices)."""
    table = frame.to_arrow()
    batches = (table.slice(start, batch_rows) for start in range(0, frame.height, batch_rows))
    for _, scored in scored_batches(verifier, batches, frame.height, batch_rows):
        yield scored

"""Pairs in the `synth verify` input schema: read and checked, turned into Candidates, and scored on
every core. `synth verify` (cli_verify) and `synth calibrate` (calibrate) both use it."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from synth.errors import ConfigError
from synth.languages import load_registry
from synth.verify.base import Candidate
from synth.verify.lid import LidRouter, uncovered_message
from synth.verify.pipeline import Verifier

REQUIRED = ("id", "lang", "source_lang", "source", "text")
OPTIONAL = ("back_translation", "truncated")


def read_pairs(input_path: Path, preset, lid_skip: set[str] = frozenset()) -> tuple[pl.DataFrame, dict]:
    """The input pairs and the language registry, after every check that refuses the whole input."""
    if not input_path.is_file():
        raise ConfigError(f"{input_path}: input file not found")
    try:
        frame = pl.read_parquet(input_path)
    except Exception as exc:  # polars raises several types for a file that is not Parquet
        raise ConfigError(f"{input_path}: not a readable Parquet file ({type(exc).__name__}); synth verify reads "
                          f"Parquet with columns {list(REQUIRED)}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{input_path}: missing columns {missing}; synth verify needs {list(REQUIRED)}")
    check_pairs(input_path, frame)
    registry = load_registry()
    langs = set(frame["lang"].unique().to_list()) | set(frame["source_lang"].drop_nulls().unique().to_list())
    unknown = sorted(l for l in langs if l not in registry)
    if unknown:
        raise ConfigError(f"{input_path}: unknown language codes {unknown} in lang/source_lang; "
                          f"add languages/<code>.yaml or fix the rows")
    registry = {l: registry[l] for l in sorted(langs)}  # the rows' languages: what not_run reports on
    if "lid" in preset.filters:
        router = LidRouter(registry, preset.lid_model, preset.lid_backends)
        uncovered = router.uncovered(set(frame["lang"].unique().to_list()) - set(lid_skip))
        if uncovered:
            raise ConfigError(f"{input_path}: rows in {uncovered_message(router, uncovered)} "
                              f"(--lid-skip {' --lid-skip '.join(uncovered)})")
    return frame, registry


def check_pairs(input_path: Path, frame: pl.DataFrame) -> None:
    """Refuse input that would be verified wrongly: text columns of another type, missing ids or
    languages, and one id on two rows (their verdicts could not be told apart)."""
    for column in REQUIRED:
        if frame[column].dtype not in (pl.String, pl.Null):
            raise ConfigError(f"{input_path}: column {column!r} is {frame[column].dtype}, not text; "
                              f"cast it to string (e.g. polars .cast(pl.String))")
    for column in ("id", "lang", "text"):
        if nulls := frame[column].null_count():
            raise ConfigError(f"{input_path}: column {column!r} has {nulls} null value(s); every row needs one")
    repeated = frame["id"].filter(frame["id"].is_duplicated()).unique().sort().head(3).to_list()
    if repeated:
        raise ConfigError(f"{input_path}: ids appear on more than one row (e.g. {repeated}); give each pair its own id")


def check_output(input_path: Path, output_path: Path) -> None:
    """The output is a new file: never the input, never a directory."""
    if output_path.is_dir():
        raise ConfigError(f"--output {output_path}: is a directory; give a file path such as verified.parquet")
    if output_path.exists() and input_path.exists() and output_path.resolve() == input_path.resolve():
        raise ConfigError(f"--output {output_path}: is the input file; write the result to another file")


def columns_of(frame: pl.DataFrame) -> dict[str, list]:
    """The input columns Candidates need, as Python lists: forked workers read these, never polars
    (polars' thread pool does not survive a fork)."""
    return {c: frame[c].to_list() for c in (*REQUIRED, *OPTIONAL) if c in frame.columns}


def candidates(columns: dict[str, list], start: int = 0, stop: int | None = None) -> list[Candidate]:
    """Rows [start, stop) of the `synth verify` input schema as Candidates."""
    rows = range(len(columns["id"]))[start:stop]
    back, truncated = columns.get("back_translation"), columns.get("truncated")
    ids, langs, texts = columns["id"], columns["lang"], columns["text"]
    sources, source_langs = columns["source"], columns["source_lang"]
    return [Candidate(id=str(ids[i]), lang=langs[i], text=texts[i] or "", source=sources[i],
                      source_lang=source_langs[i], back_translation=back[i] if back else None,
                      truncated=truncated[i] if truncated else None) for i in rows]


class _LazyRows(Sequence):
    """Rows [start, stop) as Candidates made when read: the parent's `finish` reads only the rows
    that passed every filter (dedup), often a small share."""

    def __init__(self, columns: dict[str, list], start: int, stop: int):
        self.columns, self.start, self.stop = columns, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> Candidate:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return candidates(self.columns, self.start + i, self.start + i + 1)[0]


PARALLEL_MIN_ROWS = 4_000  # below this, starting worker processes costs more than it saves
CHUNK_ROWS = 2_000  # rows a worker scores at a time: small enough to keep every core busy to the end
_FORKED: tuple[Verifier, dict[str, list], frozenset[str]] | None = None  # inherited by forked workers: no model
                                                                        # reload, no pickled input


def _score_chunk(start: int) -> list:
    verifier, columns, deferred = _FORKED
    return verifier.score_filters(candidates(columns, start, start + CHUNK_ROWS), skip=deferred)


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def verdicts(verifier: Verifier, frame: pl.DataFrame, batch_rows: int = 20_000):
    """Verdicts in row order. The stateless filters run in forked worker processes, one per core, on
    chunks of rows; dedup (stateful, order-dependent) runs here on each chunk in order, so the result
    is the same as one process's. Small inputs, one core, or LASER (torch has its own threads and does
    not survive a fork) stay in this process."""
    global _FORKED
    workers = _workers()
    columns = columns_of(frame)
    if frame.height < PARALLEL_MIN_ROWS or workers < 2 or "laser" in verifier.names \
            or "fork" not in multiprocessing.get_all_start_methods():
        for start in range(0, frame.height, batch_rows):
            yield from verifier.verify(candidates(columns, start, start + batch_rows))
        return
    deferred = verifier.deferrable()  # e.g. fluency: loaded here while the workers score, not in each worker
    _FORKED = (verifier, columns, deferred)
    starts = range(0, frame.height, CHUNK_ROWS)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for start, scored in zip(starts, pool.imap(_score_chunk, starts)):
                rows = _LazyRows(columns, start, start + len(scored))
                verifier.score_deferred(rows, scored, deferred)
                yield from verifier.finish(rows, scored)
    finally:
        _FORKED = None

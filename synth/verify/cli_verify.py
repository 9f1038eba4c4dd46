"""`synth verify`: the filters of `synth run`, applied to existing pairs in a Parquet file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import ConfigError
from synth.limits import MAX_BATCH_ROWS, MAX_NGRAM
from synth.shards import atomic_local_file, check_writable, hold, remove_stale_temporaries
from synth.standardise import Standardiser
from synth.verify.base import Filter
from synth.verify.pairs import VERIFY_MARK, check_output, open_pairs, scored_batches
from synth.verify.pipeline import VerdictColumns, Verifier, load_preset


def contamination_config(paths: Sequence[Path], ngram: int = 13, where: str = "--contamination"):
    """The contamination filter's config from evaluation set paths (None if none); a missing file is
    a config error naming it."""
    from synth.config import ContaminationConfig

    if not 3 <= ngram <= MAX_NGRAM:
        raise ConfigError(f"--ngram {ngram}: give words per n-gram from 3 to {MAX_NGRAM} (default 13)")
    if not paths:
        return None
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"{where} {path}: evaluation set not found; give a JSONL, Parquet or text file")
    return ContaminationConfig(paths=[Path(p) for p in paths], ngram=ngram)


def string_lists(name: str, lists: list[list[str]]) -> pl.Series:
    """A List(String) column, built from one joined string per row: polars converts a Python list
    of lists row by row, much slower (bench/README.md)."""
    joined = pl.Series(name, ["\x1f".join(items) for items in lists], dtype=pl.String)
    return pl.select(pl.when(joined.str.len_bytes() == 0).then(pl.lit([], dtype=pl.List(pl.String)))
                     .otherwise(joined.str.split("\x1f")).alias(name)).to_series()


def verify_file(input_path: Path, output_path: Path, preset_name: str = "default",
                laser_dir: Path | None = None, lid_skip: set[str] = frozenset(), batch_rows: int = 20_000,
                contamination: Sequence[Path] = (), ngram: int = 13, filters: Sequence[Filter] = ()) -> dict:
    """Score every row, write input columns + score_<filter> + accepted + reject_reasons + reject_details.
    `filters`: filter objects made in code, run after the preset's. Returns counts, and what each
    reason that occurred means (synth.reasons).

    Streams: the whole-input checks read the ids and languages only; then `batch_rows` rows at a time
    are read, scored and appended to a temporary file next to the output, renamed into place at the
    end (an interrupted run leaves no output, never half of one). Any batch size gives the same file."""
    check_output(input_path, output_path)
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or not 1 <= batch_rows <= MAX_BATCH_ROWS:
        raise ConfigError(f"--batch-rows {batch_rows}: give a whole number from 1 to {MAX_BATCH_ROWS:,} (rows read, "
                          f"scored and written at a time)")
    preset = load_preset(preset_name)
    pairs = open_pairs(input_path, preset, lid_skip)
    if laser_dir is not None and not laser_dir.is_dir():
        raise ConfigError(f"--laser-dir {laser_dir}: not a directory")
    verifier = Verifier(preset, pairs.registry, set(lid_skip), laser_dir, meaning_langs=set(pairs.registry),
                        contamination=contamination_config(contamination, ngram), filters=filters)
    names = verifier.score_names()
    standardiser = Standardiser(preset.standardise, pairs.registry)  # before any filter scores a row (in the workers)
    counts: dict[str, int] = {}
    accepted = 0
    check_writable(output_path)
    remove_stale_temporaries(output_path)
    with atomic_local_file(output_path) as tmp, hold(tmp):
        writer = None
        try:
            for batch, scored in scored_batches(verifier, pairs.batches(batch_rows), pairs.rows, batch_rows, standardiser):
                table = _scored_table(batch, scored, names, verifier.not_run)
                table = table.replace_schema_metadata(VERIFY_MARK)
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                accepted += sum(scored.accepted)
                for reasons in scored.reasons:
                    for r in reasons:
                        counts[r] = counts.get(r, 0) + 1
        finally:
            if writer is not None:
                writer.close()
    known = verifier.reasons()
    unregistered = sorted(set(counts) - set(known))
    if unregistered:  # a filter wrote a reason the registry does not hold: a bug, not a user error
        raise RuntimeError(f"reject reasons {unregistered} are not in synth.reasons")
    return {"rows": pairs.rows, "accepted": accepted, "rejected_by_reason": counts, "not_run": verifier.not_run,
            "reasons": {name: known[name].description for name in counts}, "standardised": standardiser.manifest()}


def _scored_table(batch: pa.RecordBatch, scored: VerdictColumns, names: list[str], not_run: dict) -> pa.Table:
    """One input batch with its verdicts' columns, as the output's rows: a score column per filter
    (null where it did not score a row; a filter not run for some languages, such as fluency,
    scored the others), accepted, reasons and details."""
    nulls = [None] * len(scored)
    return pl.from_arrow(batch).with_columns(
        *(pl.Series(f"score_{n}", scored.scores.get(n, nulls), dtype=pl.Float64)
          for n in dict.fromkeys((*names, *not_run))),
        pl.Series("accepted", scored.accepted, dtype=pl.Boolean),
        string_lists("reject_reasons", scored.reasons),
        string_lists("reject_details", scored.details),
    ).to_arrow()

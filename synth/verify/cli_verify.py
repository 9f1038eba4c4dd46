"""`synth verify`: the filters of `synth run`, applied to existing pairs in a Parquet file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from synth.errors import ConfigError
from synth.verify.base import Filter
from synth.verify.pairs import check_output, read_pairs, verdicts
from synth.verify.pipeline import Verifier, load_preset, paused_gc


def contamination_config(paths: Sequence[Path], ngram: int = 13, where: str = "--contamination"):
    """The contamination filter's config from evaluation set paths (None if none); a missing file is
    a config error naming it."""
    from synth.config import ContaminationConfig

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
    reason that occurred means (synth.reasons)."""
    check_output(input_path, output_path)
    preset = load_preset(preset_name)
    frame, registry = read_pairs(input_path, preset, lid_skip)
    if laser_dir is not None and not laser_dir.is_dir():
        raise ConfigError(f"--laser-dir {laser_dir}: not a directory")
    langs = set(frame["lang"].unique().to_list()) | set(frame["source_lang"].drop_nulls().unique().to_list())
    verifier = Verifier(preset, registry, set(lid_skip), laser_dir, meaning_langs=langs,
                        contamination=contamination_config(contamination, ngram), filters=filters)
    names = verifier.score_names()
    with paused_gc():
        scored = list(verdicts(verifier, frame, batch_rows))
        columns = {f"score_{n}": [v.scores.get(n) for v in scored] for n in names}
        columns.update({f"score_{n}": [None] * len(scored) for n in verifier.not_run})
        accepted = [v.accepted for v in scored]
        reasons = [v.reasons for v in scored]
        details = [v.details for v in scored]
    out = frame.with_columns(
        *(pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items()),
        pl.Series("accepted", accepted, dtype=pl.Boolean),
        string_lists("reject_reasons", reasons),
        string_lists("reject_details", details),
    )
    from synth.shards import atomic_write_parquet

    atomic_write_parquet(output_path, out)
    counts: dict[str, int] = {}
    for rs in reasons:
        for r in rs:
            counts[r] = counts.get(r, 0) + 1
    known = verifier.reasons()
    unregistered = sorted(set(counts) - set(known))
    if unregistered:  # a filter wrote a reason the registry does not hold: a bug, not a user error
        raise RuntimeError(f"reject reasons {unregistered} are not in synth.reasons")
    return {"rows": frame.height, "accepted": sum(accepted), "rejected_by_reason": counts, "not_run": verifier.not_run,
            "reasons": {name: known[name].description for name in counts}}

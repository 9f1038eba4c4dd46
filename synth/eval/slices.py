"""The committed slices of an evaluation under DIR/_work: `answers-`, `baseline-`, `judge-` and
`pairwise-NNNNN.parquet`, read back by id."""

from __future__ import annotations

import polars as pl

from synth.shards import WORK, OutPath, read_parquet


def committed_frame(out: OutPath, kind: str) -> pl.DataFrame | None:
    parts = sorted((out / WORK).glob(f"{kind}-*.parquet"))
    return pl.concat([read_parquet(p) for p in parts], how="diagonal_relaxed") if parts else None


def done_slices(out: OutPath, kind: str) -> set[int]:
    return {int(p.name.split("-")[1].split(".")[0]) for p in (out / WORK).glob(f"{kind}-*.parquet")}


def committed(out: OutPath, kind: str) -> dict[str, dict]:
    frame = committed_frame(out, kind)
    return {r["id"]: r for r in frame.to_dicts()} if frame is not None else {}

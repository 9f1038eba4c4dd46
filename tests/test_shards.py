"""Shards as written by synth: the contracted schema under polars and Hugging Face datasets, balanced
over method x category, and rewritten byte for byte (or left alone) when a killed finish is resumed."""

import os
import stat
from collections import Counter
from datetime import datetime, timezone

import datasets
import polars as pl

import pytest

from synth.shards import (ACCEPTED_COLUMNS, FILE_MODE, MESSAGES, TRL_FORMAT_FIELDS, WORK, atomic_write_parquet,
                          balanced_order, check_shard_columns, read_committed, rows_frame, scan_committed,
                          write_language_shards, write_rejects)

SCORES = ["lid", "roundtrip"]
CONTRACT = {  # ../shared/DESIGN.md section 4 (beside the checkout)
    "id": pl.String, "lang": pl.String, "method": pl.String, "category": pl.String,
    "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
    "source_id": pl.String, "source_lang": pl.String, "model": pl.String, "prompt_template": pl.String,
    "scores": pl.Struct({"lid": pl.Float64, "roundtrip": pl.Float64}), "created_at": pl.Datetime("us", "UTC"),
    "raw_text": pl.String, "standardise_rules": pl.List(pl.String),
}


def _record(i: int, method: str = "icl", category: str = "open_qa") -> dict:
    return {
        "id": f"id{i:03d}", "lang": "swh_Latn", "method": method, "category": category,
        "messages": [{"role": "user", "content": f"Swali {i}?"}, {"role": "assistant", "content": f"Jibu {i}."}],
        "source_id": None if method == "icl" else f"en-{i}", "source_lang": None if method == "icl" else "eng_Latn",
        "model": "m", "prompt_template": "icl_pair",
        "scores": {"lid": 0.9, "roundtrip": None}, "created_at": datetime(2026, 1, 2, tzinfo=timezone.utc), "accepted": True,
        "reject_reasons": [], "reject_details": [], "raw_output": "", "back_translation": None,
        "source_messages": None, "round": 1,
    }


def _cells() -> pl.DataFrame:
    """40 rows over three cells in the proportions 2 : 1 : 1 (icl/open_qa, icl/reasoning, translate/open_qa)."""
    spec = [("icl", "open_qa")] * 20 + [("icl", "reasoning")] * 10 + [("translate", "open_qa")] * 10
    return rows_frame([_record(i, m, c) for i, (m, c) in enumerate(spec)], SCORES)


def test_shards_load_with_polars_and_datasets_in_the_contracted_schema(tmp_path):
    frame = rows_frame([_record(i, "icl" if i % 2 else "translate") for i in range(7)], SCORES)
    names = write_language_shards(tmp_path, "swh_Latn", frame, shard_rows=3)
    assert names == [f"swh_Latn/train-0000{i}-of-00003.parquet" for i in range(3)]
    back = pl.read_parquet(tmp_path / "swh_Latn" / "*.parquet")
    assert back.schema == pl.Schema(CONTRACT) and back.columns == ACCEPTED_COLUMNS
    assert back.height == 7 and back["id"].n_unique() == 7
    assert [pl.read_parquet(tmp_path / n).height for n in names] == [3, 3, 1]
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "swh_Latn"), split="train")
    assert len(ds) == 7 and ds.column_names == ACCEPTED_COLUMNS
    features = ds.features
    strings = {"string", "large_string"}  # polars writes Arrow's large types; datasets keeps them
    assert all(features[c].dtype in strings for c in ("id", "lang", "method", "category", "source_id", "model", "prompt_template"))
    assert type(features["messages"]).__name__ in ("List", "LargeList")
    assert set(features["messages"].feature) == {"role", "content"}
    assert all(v.dtype in strings for v in features["messages"].feature.values())
    assert {k: v.dtype for k, v in features["scores"].items()} == {"lid": "float64", "roundtrip": "float64"}
    assert features["created_at"].dtype.startswith("timestamp[us")
    row = next(r for r in ds if r["id"] == "id001")
    assert row["messages"] == [{"role": "user", "content": "Swali 1?"}, {"role": "assistant", "content": "Jibu 1."}]
    assert row["scores"] == {"lid": 0.9, "roundtrip": None} and row["source_id"] is None
    # published files are readable like any other file the user creates (not mkstemp's 0600)
    assert stat.S_IMODE(os.stat(tmp_path / names[0]).st_mode) == FILE_MODE


def test_every_shard_holds_the_cells_in_their_overall_proportion(tmp_path):
    frame = _cells()
    names = write_language_shards(tmp_path, "swh_Latn", frame, shard_rows=8)
    assert len(names) == 5
    share = {cell: n / frame.height for cell, n in Counter(zip(frame["method"], frame["category"])).items()}
    for name in names:
        shard = pl.read_parquet(tmp_path / name)
        counts = Counter(zip(shard["method"], shard["category"]))
        for cell, fraction in share.items():
            assert abs(counts[cell] - fraction * shard.height) <= 1, (name, cell, counts)
    # the order depends on the ids only: any input order gives the same shards
    assert balanced_order(frame.reverse())["id"].to_list() == balanced_order(frame)["id"].to_list()


def test_rewriting_the_same_rows_leaves_shards_untouched_and_drops_stale_ones(tmp_path):
    frame = _cells()
    names = write_language_shards(tmp_path, "swh_Latn", frame, shard_rows=8)
    before = {n: (tmp_path / n).read_bytes() for n in names}
    inodes = {n: os.stat(tmp_path / n).st_ino for n in names}
    stale = tmp_path / "swh_Latn" / "train-00000-of-00009.parquet"
    stale.write_bytes(b"left over")
    again = write_language_shards(tmp_path, "swh_Latn", frame.sample(fraction=1.0, shuffle=True, seed=1), shard_rows=8)
    assert again == names
    assert {n: (tmp_path / n).read_bytes() for n in names} == before
    assert {n: os.stat(tmp_path / n).st_ino for n in names} == inodes  # not rewritten at all
    assert not stale.exists()


def test_committed_slices_scanned_a_language_at_a_time_equal_the_whole_read(tmp_path):
    """finish_run reads the committed slices one language at a time (memory: one language's rows), and
    gets what reading every slice at once gives, an older slice without the cost columns included."""
    from synth.shards import WORK, atomic_write_parquet, language_rows, read_committed, scan_committed

    assert scan_committed(tmp_path) is None
    langs = ["swh_Latn", "fra_Latn", "tgl_Latn"]
    for part in range(3):
        frame = pl.DataFrame({"id": [f"{part}-{i}" for i in range(9)], "lang": langs * 3,
                              "accepted": [i % 2 == 0 for i in range(9)], "round": [1] * 9})
        if part:  # slices committed by a newer synth carry a cost column
            frame = frame.with_columns(output_tokens=pl.lit(part * 10, dtype=pl.Int64))
        atomic_write_parquet(tmp_path / WORK / f"round-0001-{part:05d}.parquet", frame)
    whole, scanned = read_committed(tmp_path), scan_committed(tmp_path)
    for lang in langs:
        mine = language_rows(scanned, lang)
        assert mine.equals(language_rows(whole, lang)) and mine.height == 9
        assert mine["output_tokens"].to_list() == [None] * 3 + [10] * 3 + [20] * 3
    assert read_committed(tmp_path, ["id", "accepted"]).equals(whole.select("id", "accepted"))  # a resume's read


def _run_rows() -> pl.DataFrame:
    """Accepted and rejected rows of both methods, every column a run writes filled in."""
    records = []
    for i in range(6):
        record = _record(i, "icl" if i % 2 else "translate")
        if i >= 3:
            record.update(accepted=False, reject_reasons=["lid", "fluency"], reject_details=["lid 0.1 < 0.5", "f"],
                          raw_output="### Instruction\nx", back_translation=["back"],
                          source_messages=[{"role": "user", "content": "Question?"}])
        records.append(record)
    return rows_frame(records, SCORES)


def test_no_shard_column_accepted_or_rejected_is_a_trl_dataset_format_field(tmp_path):
    """The naming rule over every column the builders write: TRL reads `messages` as the conversation
    and finds no other format field (a `prompt` column made it read prompt/completion: KeyError)."""
    from trl.data_utils import is_conversational

    rows = _run_rows()
    written = write_language_shards(tmp_path, "swh_Latn", rows.filter(pl.col("accepted")), shard_rows=10)
    written += write_rejects(tmp_path, "swh_Latn", rows.filter(~pl.col("accepted")))
    assert [n.split("/")[0] for n in written] == ["swh_Latn", "rejected"]
    for folder in ("swh_Latn", "rejected/swh_Latn"):
        schema = pl.read_parquet_schema(next((tmp_path / folder).glob("*.parquet")))
        assert not TRL_FORMAT_FIELDS & set(schema), folder
        assert schema["messages"] == MESSAGES and "prompt_template" in schema
        ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / folder), split="train")
        assert not TRL_FORMAT_FIELDS & set(ds.column_names) and is_conversational(ds[0])


@pytest.mark.parametrize("column", sorted(TRL_FORMAT_FIELDS))
def test_a_shard_with_a_trl_field_is_refused_before_it_is_written(tmp_path, column):
    frame = _run_rows().filter(pl.col("accepted")).with_columns(pl.col("lang").alias(column))
    with pytest.raises(ValueError, match=column):
        check_shard_columns(frame.schema)
    with pytest.raises(ValueError, match="must be the conversation"):
        check_shard_columns({"messages": pl.String})


def test_slices_of_an_older_synth_with_a_prompt_column_build_shards_with_prompt_template(tmp_path):
    """A run begun by a synth that named the template column `prompt`, resumed by this one: old and new
    slices read alike (whole, by column, scanned) and the shards carry `prompt_template` for every row."""
    rows = _run_rows()
    atomic_write_parquet(tmp_path / WORK / "round-0001-00000.parquet",
                         rows.head(3).rename({"prompt_template": "prompt"}))
    atomic_write_parquet(tmp_path / WORK / "round-0001-00001.parquet",
                         rows.tail(3).with_columns(prompt_template=pl.lit("icl_pair_direct")))
    whole = read_committed(tmp_path)
    assert "prompt" not in whole.columns
    assert whole["prompt_template"].to_list() == ["icl_pair"] * 3 + ["icl_pair_direct"] * 3
    assert read_committed(tmp_path, ["id", "prompt_template"])["prompt_template"].null_count() == 0
    scanned = scan_committed(tmp_path).collect()
    assert scanned.equals(whole)
    write_language_shards(tmp_path, "swh_Latn", scanned.filter(pl.col("accepted")), shard_rows=10)
    write_rejects(tmp_path, "swh_Latn", scanned.filter(~pl.col("accepted")))
    shard = pl.read_parquet(tmp_path / "swh_Latn" / "*.parquet")
    assert shard.columns == ACCEPTED_COLUMNS and shard["prompt_template"].to_list() == ["icl_pair"] * 3
    assert pl.read_parquet(tmp_path / "rejected" / "swh_Latn" / "*.parquet")["prompt_template"].to_list() == \
        ["icl_pair_direct"] * 3

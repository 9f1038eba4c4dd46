"""Shards as written by synth load as they are with polars and Hugging Face datasets."""

from datetime import datetime, timezone

import datasets
import polars as pl

from synth.shards import ACCEPTED_COLUMNS, rows_frame, write_language_shards

SCORES = ["lid", "roundtrip"]


def _record(i: int) -> dict:
    return {
        "id": f"id{i:03d}", "lang": "swh_Latn", "method": "icl" if i % 2 else "translate", "category": "open_qa",
        "messages": [{"role": "user", "content": f"Swali {i}?"}, {"role": "assistant", "content": f"Jibu {i}."}],
        "source_id": None, "source_lang": None, "model": "m", "prompt": "icl_pair",
        "scores": {"lid": 0.9, "roundtrip": None}, "created_at": datetime.now(timezone.utc), "accepted": True,
        "reject_reasons": [], "reject_details": [], "raw_output": "", "back_translation": None,
        "source_messages": None, "round": 1,
    }


def test_shards_load_with_polars_and_datasets(tmp_path):
    frame = rows_frame([_record(i) for i in range(7)], SCORES)
    names = write_language_shards(tmp_path, "swh_Latn", frame, shard_rows=3)
    assert names == [f"swh_Latn/train-0000{i}-of-00003.parquet" for i in range(3)]
    back = pl.read_parquet(tmp_path / "swh_Latn" / "*.parquet")
    assert back.columns == ACCEPTED_COLUMNS and back.height == 7 and back["id"].n_unique() == 7
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "swh_Latn"), split="train")
    assert len(ds) == 7 and ds.column_names == ACCEPTED_COLUMNS
    assert ds[0]["messages"] == [{"role": "user", "content": "Swali 1?"}, {"role": "assistant", "content": "Jibu 1."}]
    assert ds[0]["scores"] == {"lid": 0.9, "roundtrip": None}

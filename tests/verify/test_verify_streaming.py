"""`synth verify` streams its input: any batch size writes the same file (dedup across batch
boundaries included), a failure part-way leaves no output, and the whole-input checks still refuse
bad input before anything is written."""

import polars as pl
import pyarrow.parquet as pq
import pytest

from synth.cli import main
from synth.errors import ConfigError
from synth.verify import Filter
from synth.verify.base import FilterError
from synth.verify.cli_verify import verify_file
from synth.verify.pairs import written_by_verify


def _one_word_changed(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "mpya"
    return " ".join(words)


def _input(udhr, tmp_path):
    """Real Swahili UDHR pairs, with repeats placed batches after their first occurrence."""
    english, swahili = udhr("eng"), udhr("swh")
    base = [(s, t) for s, t in zip(english, swahili) if len(s) > 80][:24]
    rows = list(base)
    rows.append(base[2])  # row 24: an exact copy of row 2
    rows.append((base[2][0], _one_word_changed(base[2][1])))  # row 25: a near copy of row 2
    rows.append((base[5][0], base[5][0]))  # row 26: the English source copied
    rows.append((base[2][0], base[2][1].upper()))  # row 27: row 2 again, case changed (same after normalising)
    frame = pl.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "lang": ["swh_Latn"] * len(rows),
                          "source_lang": ["eng_Latn"] * len(rows), "source": [s for s, _ in rows],
                          "text": [t for _, t in rows], "note": list(range(len(rows)))})  # a user's own column
    path = tmp_path / "in.parquet"
    frame.write_parquet(path)
    return path


def test_any_batch_size_writes_the_same_file_dedup_across_batches_included(udhr, tmp_path):
    src = _input(udhr, tmp_path)
    counts = {}
    for rows in (4, 7, 1_000_000):
        counts[rows] = verify_file(src, tmp_path / f"out{rows}.parquet", batch_rows=rows)
    one = pq.read_table(tmp_path / "out1000000.parquet")
    for rows in (4, 7):
        assert pq.read_table(tmp_path / f"out{rows}.parquet").equals(one), rows
        assert counts[rows] == counts[1_000_000]
    assert pq.ParquetFile(tmp_path / "out4.parquet").metadata.num_row_groups == 7  # written batch by batch
    out = pl.from_arrow(one)
    assert out["note"].to_list() == list(range(28)) and out["id"].to_list() == [f"r{i}" for i in range(28)]
    reasons = out["reject_reasons"].to_list()
    assert out["accepted"][2] and reasons[24] == ["dedup"] and out["score_dedup"][24] == 1.0
    assert reasons[27] == ["dedup"]  # the same text after case-folding, four batches of 4 later
    assert reasons[25] == ["dedup"] and 0.7 < out["score_dedup"][25] < 1.0
    assert "copy" in reasons[26]
    assert counts[4]["rejected_by_reason"]["dedup"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out1000000.parquet", "out4.parquet",
                                                          "out7.parquet"]  # no temporary left


class _FailsOnRow(Filter):
    """Raises on the batch holding one id: a failure after earlier batches were written."""

    name = "fails"
    higher_is_better = True
    default_threshold = 0.0
    description = "raises on one row"

    def __init__(self, bad_id, **kwargs):
        super().__init__(**kwargs)
        self.bad_id = bad_id

    def score(self, batch):
        if any(c.id == self.bad_id for c in batch):
            raise RuntimeError("scorer crashed")
        return [1.0] * len(batch)


def test_a_failure_part_way_leaves_the_output_as_it_was(udhr, tmp_path):
    src = _input(udhr, tmp_path)
    out = tmp_path / "out.parquet"
    verify_file(src, out, batch_rows=4)  # an earlier result, which a new run may replace
    before = out.read_bytes()
    with pytest.raises(FilterError, match="scorer crashed"):
        verify_file(src, out, batch_rows=4, filters=[_FailsOnRow("r21")])  # batches 0-4 were written
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_a_file_synth_verify_did_not_write_is_never_replaced(udhr, tmp_path):
    """--output naming a user's file (Parquet or not) exits 2 before any work; synth verify's own earlier
    output is replaced."""
    src = _input(udhr, tmp_path)
    mine = tmp_path / "mine.parquet"
    for content in (b"years of notes", None):
        if content is None:
            pl.DataFrame({"id": ["x"]}).write_parquet(mine)  # a Parquet file, not synth's
        else:
            mine.write_bytes(content)
        before = mine.read_bytes()
        with pytest.raises(ConfigError, match="was not written by synth verify"):
            verify_file(src, mine)
        assert mine.read_bytes() == before
    out = tmp_path / "out.parquet"
    verify_file(src, out)
    assert written_by_verify(out)
    verify_file(src, out, batch_rows=4)
    assert written_by_verify(out)


def _pairs(path, write_statistics=True, **columns):
    frame = pl.DataFrame({"id": ["a", "b", "c"], "lang": ["swh_Latn"] * 3, "source_lang": ["eng_Latn"] * 3,
                          "source": ["Hello there.", "Good morning.", "Thank you."],
                          "text": ["Habari yako.", "Habari za asubuhi.", "Asante sana."], **columns})
    pq.write_table(frame.to_arrow(), path, write_statistics=write_statistics, row_group_size=2)
    return path


@pytest.mark.parametrize("statistics", [True, False])
def test_null_texts_are_refused_with_or_without_parquet_statistics(tmp_path, statistics):
    src = _pairs(tmp_path / "in.parquet", statistics, text=["Habari yako.", None, None])
    with pytest.raises(ConfigError, match="column 'text' has 2 null value"):
        verify_file(src, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_bad_ids_and_languages_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out.parquet"
    for columns, said in (({"id": ["a", None, "c"]}, "column 'id' has 1 null value"),
                          ({"lang": ["swh_Latn", None, "swh_Latn"]}, "column 'lang' has 1 null value"),
                          ({"id": ["a", "b", "a"]}, "ids appear on more than one row (e.g. ['a'])"),
                          ({"source_lang": ["eng_Latn", "xxx_Latn", None]}, "unknown language codes ['xxx_Latn']")):
        assert main(["verify", str(_pairs(tmp_path / "in.parquet", **columns)), "--output", str(out)]) == 2
        assert said in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_an_empty_input_writes_an_empty_output_with_every_column(tmp_path):
    src = _pairs(tmp_path / "in.parquet")
    pl.read_parquet(src).head(0).write_parquet(src)
    assert verify_file(src, tmp_path / "out.parquet")["rows"] == 0
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.height == 0 and {"id", "text", "score_lid", "accepted", "reject_reasons"} <= set(out.columns)


def test_sigterm_part_way_leaves_no_output_and_no_temporary(udhr, tmp_path):
    """A real `synth verify` process, stopped while it writes: exit 143, nothing under the output's
    name, its temporary file deleted (the forked workers end with it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    english, swahili = udhr("eng"), udhr("swh")
    rows = [(s, f"{t} {i}") for i, (s, t) in enumerate(zip(english * 200, swahili * 200))][:6_000]
    pl.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "lang": ["swh_Latn"] * len(rows),
                  "source_lang": ["eng_Latn"] * len(rows), "source": [s for s, _ in rows],
                  "text": [t for _, t in rows]}).write_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    process = subprocess.Popen([sys.executable, "-m", "synth.cli", "verify", str(tmp_path / "in.parquet"),
                                "--output", str(out), "--batch-rows", "200"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.parquet.") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_worker_chunks_hold_whole_languages_and_every_row_once():
    """Each chunk a worker gets holds whole languages (it loads their dictionaries only); a language
    larger than a chunk fills chunks of its own; every row is in exactly one chunk."""
    from synth.verify.pairs import language_chunks

    langs = ["a"] * 5 + ["b"] * 3 + ["c"] * 9 + ["a"] * 2 + ["d"]
    chunks = language_chunks(langs, size=4)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(langs)))
    assert all(len(chunk) <= 4 for chunk in chunks)
    for lang, rows in (("b", 3), ("d", 1)):  # small languages are never split
        assert sum(any(langs[i] == lang for i in chunk) for chunk in chunks) == 1, lang
    assert [len(c) for c in chunks if all(langs[i] == "c" for i in c)] == [4, 4]  # c: 4 + 4, then 1 shared

"""`synth verify` round trip on a small Parquet file of real UDHR pairs."""

import polars as pl

from synth.cli import main


def _input(udhr, tmp_path, lang="tgl_Latn", code="tgl"):
    english, target = udhr("eng")[:6], udhr(code)[:6]
    rows = {
        "id": [f"r{i}" for i in range(8)],
        "lang": [lang] * 8,
        "source_lang": ["eng_Latn"] * 8,
        "source": english + english[:2],
        "text": target + [english[0], target[1][: len(target[1]) // 5]],  # a copy and a truncation
    }
    path = tmp_path / "in.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


def test_verify_round_trip(udhr, tmp_path, capsys):
    src = _input(udhr, tmp_path)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out)]) == 0
    result = pl.read_parquet(out)
    assert result.columns[:5] == ["id", "lang", "source_lang", "source", "text"]
    assert {"score_lid", "score_copy", "score_length_ratio", "score_laser", "accepted", "reject_reasons"} <= set(result.columns)
    assert result["score_laser"].null_count() == result.height  # not run without weights
    assert result["score_roundtrip"].null_count() == result.height  # no back_translation column
    assert result["accepted"].to_list()[:6] == [True] * 6
    assert "lid" in result["reject_reasons"][6].to_list() and "copy" in result["reject_reasons"][6].to_list()
    assert "length_ratio" in result["reject_reasons"][7].to_list()
    # one detail per reason, in the same order; none for accepted rows
    assert [len(d) for d in result["reject_details"].to_list()] == [len(r) for r in result["reject_reasons"].to_list()]
    assert any(d.startswith("copy: 100% of the text copied") for d in result["reject_details"][6].to_list())
    assert "NOT run: laser" in capsys.readouterr().out


def test_verify_refuses_a_language_lid_does_not_cover(udhr, tmp_path, capsys):
    src = _input(udhr, tmp_path, lang="ewe_Latn", code="ewe")  # no offline LID backend reads Ewe
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ewe_Latn" in err and "--lid-skip" in err
    assert not out.exists()
    assert main(["verify", str(src), "--output", str(out), "--lid-skip", "ewe_Latn"]) == 0
    assert pl.read_parquet(out)["score_lid"].null_count() == 8


def test_verify_missing_columns(tmp_path, capsys):
    path = tmp_path / "bad.parquet"
    pl.DataFrame({"id": ["a"], "text": ["x"]}).write_parquet(path)
    assert main(["verify", str(path), "--output", str(tmp_path / "o.parquet")]) == 2
    assert "missing columns" in capsys.readouterr().err

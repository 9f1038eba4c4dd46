"""`synth calibrate --labels`: the judge's pass marks per language and dimension from native speakers' verdicts."""

from __future__ import annotations

import json

import polars as pl
import yaml

from synth.cli import main
from synth.eval.calibrate import balanced_agreement
from synth.verify.pipeline import load_preset


def test_thresholds_follow_the_speakers_per_language(tmp_path, capsys):
    # Swahili speakers reject grades under 4; Yoruba speakers keep grade 2 and up
    ids, grades, labels = [], [], []
    for lang, cut in (("swh_Latn", 4), ("yor_Latn", 2)):
        for i in range(30):
            grade = 1 + i % 5
            ids.append(f"{lang}-{i}")
            grades.append(float(grade))
            labels.append({"id": f"{lang}-{i}", "lang": lang, "dimension": "language",
                           "verdict": "keep" if grade >= cut else "reject"})
    pl.DataFrame({"id": ids, **{f"score_judge_{d}": grades for d in ("language", "content", "culture")}}).write_parquet(
        tmp_path / "judged.parquet")
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", str(tmp_path / "judged.parquet"), "--labels", str(tmp_path / "labels.jsonl"),
                 "--output", str(out)]) == 0
    preset = load_preset(str(out))
    assert preset.judge.languages["swh_Latn"]["language"] == 4.0
    assert preset.judge.languages["yor_Latn"]["language"] == 2.0
    assert "balanced agreement" in out.read_text() and "swh_Latn language: 30 rows; 3 -> 4" in out.read_text()
    assert yaml.safe_load(out.read_text())["filters"] == load_preset("default").filters  # the rest is the base's


def test_bad_labels_are_exit_2(tmp_path, capsys):
    pl.DataFrame({"id": ["a"], "score_judge_language": [3.0], "score_judge_content": [3.0],
                  "score_judge_culture": [3.0]}).write_parquet(tmp_path / "judged.parquet")
    (tmp_path / "labels.jsonl").write_text(json.dumps({"id": "a", "lang": "swh_Latn", "dimension": "tone",
                                                       "verdict": "keep"}) + "\n")
    assert main(["calibrate", str(tmp_path / "judged.parquet"), "--labels", str(tmp_path / "labels.jsonl"),
                 "--output", str(tmp_path / "o.yaml")]) == 2
    assert "dimension 'tone'" in capsys.readouterr().err and not (tmp_path / "o.yaml").exists()


def test_balanced_agreement():
    assert balanced_agreement([(True, True), (True, False)]) == 0.5
    assert balanced_agreement([(True, True), (False, False)]) == 1.0
    assert balanced_agreement([(True, True)]) is None

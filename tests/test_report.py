"""report.html and the dataset card as a user reads them, and `synth report` on manifests that are not
synth's: every value escaped whatever its type, exit 2 with one message, never a traceback."""

import copy
import json
import re
from datetime import datetime, timezone

import polars as pl
import pytest
import yaml

from synth.cli import main
from synth.outputs import dataset_card
from synth.report import check_manifest, render_html
from synth.shards import rows_frame

SCRIPT = "<script>alert(1)</script>"
SCORES = ["lid", "fluency"]


def _manifest(accepted: int = 2) -> dict:
    """A manifest in the shape finish_run writes (the parts the report and card read, and more)."""
    cost = {"icl": {"attempts": 6, "accepted": accepted, "prompt_tokens": 600, "output_tokens": 300,
                    "engine_seconds": 4.5, "per_accepted_row": {"prompt_tokens": 300.0, "output_tokens": 150.0,
                                                                "engine_seconds": 2.25},
                    "tokens_by_outcome": {"unparseable": {"prompt_tokens": 300, "output_tokens": 200}}},
            "judge": {"prompt_tokens": 40, "output_tokens": 4, "per_accepted_row": {"prompt_tokens": 20.0, "output_tokens": 2.0}}}
    return {
        "name": "demo", "status": "partial", "config_hash": "abc123", "model": "bundled:smollm2",
        "model_note": "a tiny model", "license": "cc-by-4.0", "rounds": 2, "targets": {"fra_Latn": 6},
        "totals": {"accepted": accepted, "rejected": 10},
        "languages": {"fra_Latn": {"name": "French", "iso639_1": "fr", "iso639_3": "fra", "target": 6,
                                   "accepted": accepted, "rejected": 10, "attempts": 10 + accepted,
                                   "rejected_by_reason": {"unparseable": 6, "structure_lost": 3, "roundtrip": 1},
                                   "shortfall": 6 - accepted, "shortfall_reason": "attempt budget used up",
                                   "cells": {}, "cost": cost}},
        "files": {"fra_Latn": []},
        "prompts": {"icl_pair_direct": {"hash": "h1", "custom": False}},
        "filters": {"preset": "default", "run": ["lid", "fluency", "roundtrip"],
                    "not_run": {"laser": "no LASER weights: /root/.cache/synth/laser lacks laser2.pt (URLError: "
                                         "<urlopen error [Errno -2] Name or service not known>); the semantic "
                                         "filter scores meaning instead where the preset lists it",
                                "contamination": "no evaluation sets configured"},
                    "thresholds": {"lid": {"higher_is_better": True, "threshold": 0.5, "per_language": {},
                                           "description": "d"},
                                   "fluency": {"higher_is_better": True, "threshold": 0.5, "per_language": None}},
                    "lid_model": "lid.176.ftz"},
        "judge": {"model": "/home/someone/models/judge-7b", "prompt": "judge_row",
                  "thresholds": {"judge_language": {"threshold": 3.0, "per_language": {}}},
                  "usage": {"requests": 2, "prompt_tokens": 40, "output_tokens": 4, "by_lang": {}}},
        "engine": {"retries": 0, "outages": 0, "attempts_lost_to_outages": 0},
        "versions": {"synth": "0.1.0", "python": "3.11.9"},
    }


def _row(i: int, method: str, accepted: bool, reasons: list[str], text: str) -> dict:
    return {"id": f"r{i:03d}", "lang": "fra_Latn", "method": method, "category": "open_qa",
            "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "Réponse."}],
            "source_id": "en-1" if method == "translate" else None, "source_lang": None, "model": "m",
            "prompt_template": "p", "scores": {"lid": 0.1 * (i % 10), "fluency": 0.9 if accepted else 0.2},
            "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "accepted": accepted,
            "reject_reasons": reasons, "reject_details": [f"{r} detail" for r in reasons], "raw_output": text,
            "back_translation": None, "source_messages": [{"role": "user", "content": "Source text."}]
            if method == "translate" else None, "round": 1}


def _rows() -> pl.DataFrame:
    """What the demo gave: the first rows by id are all ICL walls of repeated lines; the translation
    rejects (structure_lost, roundtrip) come later."""
    wall = "### Response\n" * 80
    rows = [_row(i, "icl", False, ["unparseable"], wall) for i in range(6)]
    rows += [_row(10 + i, "translate", False, ["structure_lost"], f"Traduction {i}.") for i in range(3)]
    rows += [_row(20, "translate", False, ["roundtrip", "fluency"], "Une phrase.")]
    rows += [_row(30 + i, "icl", True, [], f"Une bonne question {i} ?") for i in range(2)]
    return rows_frame(rows, SCORES)


def test_samples_are_stratified_by_method_and_reason_and_long_texts_folded():
    page = render_html(_manifest(), _rows())
    rejected = page[page.index("Sample rejected rows"):]
    for label in ("icl: unparseable, 6 row(s)", "translate: structure_lost, 3 row(s)", "translate: roundtrip, 1 row(s)"):
        assert label in rejected
    assert rejected.count("icl: unparseable") == 1  # one sample per method x reason, not six walls
    assert "Source text." in rejected  # a translation shows its source
    wall = rejected[rejected.index("icl: unparseable"):]
    assert wall.index("<details>") < wall.index("</tr>")  # the 1,040-character wall is folded
    assert "Une bonne question 0 ?" in page and "Une bonne question 1 ?" in page


def test_histograms_have_counts_and_axes_and_there_is_no_raw_manifest_dump():
    page = render_html(_manifest(), _rows())
    svg = re.search(r"<b>fluency</b><br>(<svg.*?</svg>)", page).group(1)
    assert ">rows</text>" in svg and ">score</text>" in svg  # both axes titled
    assert ">10</text>" in svg and ">2</text>" in svg  # 10 rejected rows at 0.2, 2 accepted at 0.9: counts shown
    assert "12 rows scored: 2 accepted, 10 rejected" in page
    assert "<h2>Manifest</h2>" not in page and '"config_hash"' not in page and '"versions"' not in page
    assert "abc123" in page and "icl_pair_direct" in page  # provenance as a table


def _hostile(value):
    """Every leaf of the manifest (and every key of the language map) replaced by `value`."""
    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return value
    manifest = walk(_manifest())
    manifest["languages"] = {SCRIPT: manifest["languages"]["fra_Latn"]}
    return manifest


def test_report_escapes_every_value_whatever_its_type():
    """render_html's one escaping rule holds even on a manifest nobody checked: strings in the numeric
    fields (rounds, targets, counts, costs) reach the page as text."""
    page = render_html(_hostile(SCRIPT), _rows().with_columns(lang=pl.lit(SCRIPT), method=pl.lit(SCRIPT)))
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    numbers = _manifest()
    numbers["rounds"] = numbers["languages"]["fra_Latn"]["target"] = f"{SCRIPT}"
    numbers["languages"]["fra_Latn"]["cost"]["icl"]["engine_seconds"] = SCRIPT
    assert "<script" not in render_html(numbers, None).lower()


HOSTILE = {
    "a string in rounds": lambda m: m.update(rounds=SCRIPT),
    "a string in a target": lambda m: m["languages"]["fra_Latn"].update(target=SCRIPT),
    "a string in a reason count": lambda m: m["languages"]["fra_Latn"]["rejected_by_reason"].update(lid=SCRIPT),
    "a string in a cost": lambda m: m["languages"]["fra_Latn"]["cost"]["icl"].update(attempts=SCRIPT),
    "a bool as a count": lambda m: m["languages"]["fra_Latn"].update(accepted=True),
    "NaN rounds": lambda m: m.update(rounds=float("nan")),
    "a number as the name": lambda m: m.update(name=7),
    "an unknown status": lambda m: m.update(status=SCRIPT),
    "nested garbage as languages": lambda m: m.update(languages=[[[{"x": [SCRIPT]}]]]),
    "a list as a language": lambda m: m["languages"].update(fra_Latn=[1, 2]),
    "garbage filters": lambda m: m.update(filters={"preset": {"a": [1]}, "run": SCRIPT}),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_synth_report_on_a_manifest_that_is_not_synths_exits_2(tmp_path, capsys, case):
    manifest = copy.deepcopy(_manifest())
    HOSTILE[case](manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synth: error: ") and "not a synth manifest" in err and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[1, 2]", "null", "{", "\udcff",
                                  json.dumps({"name": "x"}), json.dumps(_hostile(SCRIPT))])
def test_synth_report_on_malformed_json_exits_2(tmp_path, capsys, text):
    (tmp_path / "manifest.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_synth_report_rewrites_the_report_of_a_real_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    assert check_manifest(_manifest(), "m") == _manifest()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").read_text().rstrip().endswith("</html>")


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_with_no_accepted_row_says_so_and_lists_no_data_files():
    card = dataset_card(_manifest(accepted=0))
    front = _front_matter(card)
    assert "configs" not in front and "language" not in front
    assert "Every" not in card and "No row was accepted" in card
    assert "load_dataset" not in card  # nothing to load


def test_card_names_only_the_checks_run_and_nothing_of_the_machine():
    card = dataset_card(_manifest())
    front = _front_matter(card)
    assert front["configs"] == [{"config_name": "fra_Latn", "data_files": [{"split": "train", "path": "fra_Latn/train-*.parquet"}]}]
    assert "Every accepted row passed these checks: `lid`, `fluency`, `roundtrip`" in card
    assert "semantic" not in card  # the preset does not list it; only the machine's LASER note mentioned it
    for local in ("/root", ".cache", "URLError", "Errno", "Name or service", "/home/someone", "lid.176"):
        assert local not in card, local
    assert "`judge-7b`" in card and "Not run: `laser`" in card
    assert 'load_dataset("parquet", data_dir="fra_Latn")' in card


def test_synth_report_with_a_damaged_slice_exits_2_naming_it(tmp_path, capsys):
    from synth.shards import WORK, atomic_write_parquet

    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    atomic_write_parquet(tmp_path / WORK / "round-0001-00000.parquet", _rows())
    damaged = tmp_path / WORK / "round-0001-00001.parquet"
    damaged.write_bytes((tmp_path / WORK / "round-0001-00000.parquet").read_bytes()[:100])
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "round-0001-00001.parquet" in err and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()
    damaged.unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert "Une bonne question 0 ?" in (tmp_path / "report.html").read_text()

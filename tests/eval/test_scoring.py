"""Scoring pieces: option and number extraction, pairwise parsing and win rates, bootstrap intervals,
and the prompts loader's column mapping."""

from __future__ import annotations

import json

import polars as pl
import pytest

from synth.errors import ConfigError
from synth.eval.config import PromptsEntry
from synth.eval.intervals import bootstrap
from synth.eval.items import Item, load_items
from synth.eval.scoring import chosen_option, chrf, exact, last_number, pairwise_score, parse_pairwise, win_of


def _choice_item(answer_index=1):
    return Item("q", "swh_Latn", "local_culture", "culture", [{"role": "user", "content": "?"}],
                choices=["Dodoma", "Nairobi", "Kampala"], answer_index=answer_index)


@pytest.mark.parametrize("answer, picked", [
    ("B", 1), ("(b)", None), ("B) Nairobi", 1), ("Jibu: B", 1), ("The answer is C.", 2),
    ("Nairobi ndiyo mji mkuu.", 1), ("Dodoma au Nairobi", None), ("", None), ("A. Dodoma", 0),
])
def test_the_chosen_option_is_read_from_a_letter_or_the_one_option_named(answer, picked):
    assert chosen_option(_choice_item(), answer) == picked


def test_exact_match_for_choices_and_numbers():
    assert exact(_choice_item(), "B") == 1.0 and exact(_choice_item(), "A") == 0.0
    number = Item("n", "swh_Latn", "math", "domain", [{"role": "user", "content": "?"}], numeric=1250.0)
    assert exact(number, "Jumla ni 1,250.") == 1.0
    assert exact(number, "Kwanza 3, kisha 1250") == 1.0  # the last number counts
    assert exact(number, "1250 kisha 3") == 0.0
    assert last_number("2,5") == 2.5 and last_number("hakuna") is None


def test_chrf_rewards_the_reference_translation():
    item = Item("t", "swh_Latn", "translation", "domain", [{"role": "user", "content": "?"}],
                reference="Kila mtu ana haki ya kuishi, uhuru na usalama.")
    assert chrf(item, item.reference) == pytest.approx(100.0)
    assert chrf(item, "Everyone has the right to life.") < 30


def test_pairwise_verdicts_and_both_orders():
    assert parse_pairwise('ok {"reason": "A is fluent", "winner": "a"}') == ("A", "A is fluent")
    assert parse_pairwise('{"reason": "same", "winner": "Tie"}')[0] == "tie"
    assert isinstance(parse_pairwise('{"reason": "x", "winner": "both"}'), str)
    assert isinstance(parse_pairwise('{"winner": "A"}'), str)
    assert pairwise_score("A", "B") == 1.0  # the model wins in both orders
    assert pairwise_score("A", "A") == 0.5  # position bias cancels out
    assert pairwise_score("tie", "B") == 0.75 and pairwise_score(None, None) is None
    assert win_of(1.0, 0.0) == 1.0 and win_of(0.5, 0.5) == 0.5 and win_of(None, 1.0) is None


def test_bootstrap_is_seeded_contains_the_mean_and_narrows_with_more_items():
    few = bootstrap([1, 0, 1, 1, 0, 1, 0, 1], "swh/open_qa/language", seed=0)
    again = bootstrap([1, 0, 1, 1, 0, 1, 0, 1], "swh/open_qa/language", seed=0)
    assert (few.ci_low, few.ci_high) == (again.ci_low, again.ci_high)
    assert few.ci_low < few.score == 0.625 < few.ci_high
    many = bootstrap([1, 0, 1, 1, 0, 1, 0, 1] * 20, "swh/open_qa/language", seed=0)
    assert many.ci_high - many.ci_low < (few.ci_high - few.ci_low) / 2
    assert bootstrap([], "x").score is None and bootstrap([0.4], "x").ci_low == 0.4


def test_a_parquet_set_maps_through_columns_and_options_are_listed(tmp_path):
    path = tmp_path / "mmlu.parquet"
    pl.DataFrame({"qid": ["q1", "q2"], "question": ["Mji mkuu wa Tanzania ni upi?", "Sarafu ya Kenya ni ipi?"],
                  "option_a": ["Dodoma", "Shilingi"], "option_b": ["Arusha", "Dola"], "answer": ["A", "A"],
                  "subject": ["geo", "econ"]}).write_parquet(path)
    entry = PromptsEntry.model_validate({"path": str(path), "lang": "swh_Latn", "level": "culture",
                                         "category": "local_culture", "where": {"subject": "geo"},
                                         "columns": {"id": "qid", "prompt": "question",
                                                     "choices": ["option_a", "option_b"], "answer": "answer"}})
    [item] = load_items([entry])
    assert item.id == "q1" and item.answer_index == 0 and item.kind == "choices"
    assert item.question().endswith("A. Dodoma\nB. Arusha")


def test_duplicate_ids_across_files_are_refused(tmp_path):
    row = {"id": "same", "lang": "swh_Latn", "category": "open_qa", "level": "language",
           "messages": [{"role": "user", "content": "Habari?"}]}
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text(json.dumps(row) + "\n")
    with pytest.raises(ConfigError, match="ids must be unique"):
        load_items([PromptsEntry(path=str(tmp_path / "a.jsonl")), PromptsEntry(path=str(tmp_path / "b.jsonl"))])


def test_alpaca_and_sharegpt_sets_map_and_the_entry_s_constants_beat_the_usual_columns(tmp_path):
    (tmp_path / "alpaca.jsonl").write_text(json.dumps({"instruction": "Tafsiri:", "input": "Good morning",
                                                       "output": "Habari za asubuhi", "lang": "sw"}) + "\n")
    entry = PromptsEntry.model_validate({"path": str(tmp_path / "alpaca.jsonl"), "lang": "swh_Latn",
                                         "level": "domain", "category": "translation"})
    [item] = load_items([entry])
    assert item.lang == "swh_Latn" and item.question() == "Tafsiri:\n\nGood morning"
    assert item.reference == "Habari za asubuhi" and item.kind == "translation"
    (tmp_path / "sharegpt.jsonl").write_text(json.dumps({"conversations": [{"from": "human", "value": "Habari?"}],
                                                         "lang": "swh_Latn", "level": "language",
                                                         "category": "open_qa"}) + "\n")
    [item] = load_items([PromptsEntry(path=str(tmp_path / "sharegpt.jsonl"))])
    assert item.messages == [{"role": "user", "content": "Habari?"}]

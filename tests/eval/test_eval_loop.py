"""`synth eval` end to end on a scripted model that writes real Swahili and answers English to
Indonesian prompts: the ranking, the intervals and the next targets must move the budget to Indonesian."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.cli import main
from tests.eval.eval_server import EvalServer, rule_judge

N = 12  # items per cell, above min_items


@pytest.fixture(scope="module")
def texts():
    from bench._udhr_pairs import articles

    def pick(code):
        return [t for _, t in sorted(articles(code).items()) if len(t) > 120][:N]

    return {"swh": pick("swh"), "ind": pick("ind"), "eng": pick("eng")}


def _prompts(path: Path, texts) -> dict[str, str]:
    """Language and math items in Swahili and Indonesian; returns question -> the scripted answer."""
    rows, answers = [], {}
    for lang, native, question in (("swh_Latn", texts["swh"], "Eleza haki za binadamu, sehemu {i}."),
                                   ("ind_Latn", texts["eng"], "Jelaskan hak asasi manusia, bagian {i}.")):
        for i in range(N):
            q = question.format(i=i)
            rows.append({"id": f"{lang}-lang-{i}", "lang": lang, "category": "open_qa", "level": "language",
                         "messages": [{"role": "user", "content": q}]})
            answers[q] = native[i]
            q = f"{lang}: {i} + {i} = ?"
            rows.append({"id": f"{lang}-math-{i}", "lang": lang, "category": "math", "level": "domain",
                         "messages": [{"role": "user", "content": q}], "answer": 2 * i})
            answers[q] = f"{2 * i}"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return answers


def _eval_file(tmp_path: Path, url: str, **extra) -> Path:
    config = {"name": "loop", "model": {"type": "openai", "base_url": url, "model": "student", "api_key_env": None,
                                        "backoff_s": 0.01, "max_retries": 1},
              "prompts": ["prompts.jsonl"], "next_rows": 500, **extra}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_weak_language_ranks_last_with_separated_intervals_and_gets_the_budget(tmp_path, texts):
    answers = _prompts(tmp_path / "prompts.jsonl", texts)
    with EvalServer({"student": lambda m: answers.get(m[-1]["content"], "Habari")}) as server:
        assert main(["eval", str(_eval_file(tmp_path, server.url)), "--output", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "eval.json").read_text())
    cells = {(c["lang"], c["category"], c["level"]): c for c in summary["cells"]}
    swh, ind = cells[("swh_Latn", "open_qa", "language")], cells[("ind_Latn", "open_qa", "language")]
    assert swh["n"] == ind["n"] == N
    assert swh["score"] > 0.9 and ind["score"] < 0.1  # English to an Indonesian prompt: near 0 with no judge
    assert ind["ci_high"] < swh["ci_low"]
    assert swh["ci_low"] <= swh["score"] <= swh["ci_high"]
    for lang in ("swh_Latn", "ind_Latn"):  # both right on the numbers
        assert cells[(lang, "math", "domain")]["score"] == 1.0
    assert summary["languages"]["swh_Latn"]["score"] > summary["languages"]["ind_Latn"]["score"]
    results = pl.read_parquet(out / "results.parquet")
    assert results.height == 4 * N and set(results["score"].drop_nulls().to_list()) <= {0.0, 1.0}
    assert results.filter(pl.col("lang") == "ind_Latn", pl.col("level") == "language")["language_failed"].list.len().min() >= 1

    text = (out / "next_targets.yaml").read_text()
    plan = yaml.safe_load(text)
    rows = {t["lang"]: t for t in plan["targets"]}
    assert sum(t["rows"] for t in plan["targets"]) == 500
    assert rows["ind_Latn"]["rows"] > 3 * rows["swh_Latn"]["rows"]
    assert rows["ind_Latn"]["methods"]["icl"] > rows["ind_Latn"]["methods"].get("translate", 0)  # language fails -> icl
    assert rows["swh_Latn"]["rows"] > 0  # the floor: no cell starved
    assert "language fails" in text and "floor 0.05" in text
    assert "language fails" in (out / "report.html").read_text()
    # deterministic: a second evaluation of the same answers gives the same intervals
    with EvalServer({"student": lambda m: answers.get(m[-1]["content"], "Habari")}) as server:
        assert main(["eval", str(_eval_file(tmp_path, server.url)), "--output", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert [c["ci_low"] for c in again["cells"]] == [c["ci_low"] for c in summary["cells"]]

"""`synth eval` with a judge and a baseline (pairwise in both orders), resume after an outage, secrets,
and refusals before any work."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.cli import main
from tests.eval.eval_server import EvalServer, rule_judge
from tests.eval.test_eval_loop import N, _eval_file, _prompts, texts  # noqa: F401  (fixture)


def _native(texts):
    """A baseline that answers every prompt in its own language."""
    swh, ind = texts["swh"], [
        "Setiap orang berhak atas semua hak dan kebebasan yang tercantum di dalam Pernyataan ini dengan tidak ada "
        "kekecualian apapun, seperti misalnya bangsa, warna kulit, jenis kelamin, bahasa, agama, politik."] * N

    def answer(messages):
        q = messages[-1]["content"]
        if "+" in q:
            i = int(q.split(": ", 1)[1].split(" +")[0])
            return str(2 * i)
        if "bagian" in q:
            return ind[int(q.rsplit(" ", 1)[1].rstrip("."))]
        if "sehemu" in q:
            return swh[int(q.rsplit(" ", 1)[1].rstrip("."))]
        return "Habari"
    return answer


def _cells(out: Path) -> dict:
    return {(c["lang"], c["category"], c["level"]): c for c in json.loads((out / "eval.json").read_text())["cells"]}


def test_judge_grades_and_the_wrong_language_stays_near_zero(tmp_path, texts):
    answers = _prompts(tmp_path / "prompts.jsonl", texts)
    with EvalServer({"student": lambda m: answers.get(m[-1]["content"], "Habari"), "judge": rule_judge}) as server:
        judge = {"type": "openai", "base_url": server.url, "model": "judge", "api_key_env": None}
        assert main(["eval", str(_eval_file(tmp_path, server.url, judge=judge)), "-o", str(tmp_path / "out")]) == 0
        graded = [b["messages"][-1]["content"] for b in server.seen if b["model"] == "judge"]
    assert sum("sehemu" in g for g in graded) == N
    assert not any("bagian" in g for g in graded)  # failed the offline checks: no judge call spent on them
    cells = _cells(tmp_path / "out")
    assert cells[("swh_Latn", "open_qa", "language")]["score"] == pytest.approx(0.75)  # grade 4 -> 0.75
    assert cells[("ind_Latn", "open_qa", "language")]["score"] == 0.0
    results = pl.read_parquet(tmp_path / "out" / "results.parquet")
    assert results.filter(pl.col("lang") == "swh_Latn", pl.col("level") == "language")["scores"].struct.field("judge_language").to_list() == [4.0] * N


@pytest.mark.parametrize("judge_rule", ["by_content", "always_a"])
def test_baseline_is_compared_in_both_orders_and_ties_are_halved(tmp_path, texts, judge_rule):
    answers = _prompts(tmp_path / "prompts.jsonl", texts)
    always_a = lambda m: json.dumps({"reason": "first is better", "winner": "A"})  # noqa: E731  (position bias)
    models = {"student": lambda m: answers.get(m[-1]["content"], "Habari"), "teacher": _native(texts),
              "judge": rule_judge if judge_rule == "by_content" else always_a}
    with EvalServer(models) as server:
        engine = {"type": "openai", "base_url": server.url, "api_key_env": None}
        path = _eval_file(tmp_path, server.url, judge={**engine, "model": "judge"},
                          baseline={**engine, "model": "teacher"})
        assert main(["eval", str(path), "-o", str(tmp_path / "out")]) == 0
        pairs = [b for b in server.seen if b["model"] == "judge" and "<answer_a>" in b["messages"][-1]["content"]]
    cells = _cells(tmp_path / "out")
    # Swahili: both answer natively: the judge decides; a judge that always picks A is cancelled out
    assert cells[("swh_Latn", "open_qa", "language")]["score"] == 0.5
    assert cells[("ind_Latn", "open_qa", "language")]["score"] == 0.0  # English loses to Indonesian
    assert cells[("swh_Latn", "math", "domain")]["score"] == 0.5  # both right: a tie
    swh_pairs = [p for p in pairs if "sehemu" in p["messages"][-1]["content"]]
    assert len(swh_pairs) == 2 * N  # each item in both orders
    summary = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert summary["goal"] == 0.5 and "win rate" in summary["score"]
    plan = {t["lang"]: t["rows"] for t in yaml.safe_load((tmp_path / "out" / "next_targets.yaml").read_text())["targets"]}
    assert plan["ind_Latn"] > plan["swh_Latn"]


def test_an_outage_stops_resumable_and_the_rerun_answers_only_what_is_missing(tmp_path, texts, monkeypatch):
    from synth.eval import run

    monkeypatch.setattr(run, "SLICE", 10)
    monkeypatch.setenv("EVAL_KEY", "sk-evalsecret0123456789abcdef")
    answers = _prompts(tmp_path / "prompts.jsonl", texts)
    student = {"student": lambda m: answers.get(m[-1]["content"], "Habari")}
    out = tmp_path / "out"

    def config(url):
        path = _eval_file(tmp_path, url.replace("http://", "http://user:pw-secret-9@"))
        raw = yaml.safe_load(path.read_text())
        raw["model"]["api_key_env"] = "EVAL_KEY"
        path.write_text(yaml.safe_dump(raw))
        return path

    with EvalServer(student, fail_after=1 + 20) as server:  # the preflight, then two slices
        assert main(["eval", str(config(server.url)), "-o", str(out)]) == 1
    assert sorted(p.name for p in (out / "_work").glob("answers-*")) == ["answers-00000.parquet", "answers-00001.parquet"]
    assert not (out / "eval.json").exists()
    with EvalServer(student) as server:
        assert main(["eval", str(config(server.url)), "-o", str(out)]) == 0
        asked = [b["messages"][-1]["content"] for b in server.seen if b["messages"][-1]["content"] != "Hi"]
    assert len(asked) == 4 * N - 20 and len(set(asked)) == len(asked)
    results = pl.read_parquet(out / "results.parquet")
    assert results.height == 4 * N and results["id"].n_unique() == 4 * N
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"evalsecret" not in data and b"pw-secret-9" not in data, path
    # a finished evaluation is not redone; --force-new starts over
    assert main(["eval", str(config("http://127.0.0.1:9/v1")), "-o", str(out)]) == 0


@pytest.mark.parametrize("row, message", [
    ({"id": "a", "lang": "swh_Latn", "category": "open_qa", "level": "fluency",
      "messages": [{"role": "user", "content": "Habari?"}]}, "level 'fluency'"),
    ({"id": "a", "lang": "xxx_Latn", "category": "open_qa", "level": "language",
      "messages": [{"role": "user", "content": "Habari?"}]}, "unknown language"),
    ({"id": "a", "lang": "swh_Latn", "category": "open_qa", "level": "language",
      "messages": [{"role": "user", "content": "Habari?"}, {"role": "assistant", "content": "Nzuri"}]}, "last message"),
    ({"id": "a", "lang": "swh_Latn", "category": "open_qa", "level": "domain",
      "messages": [{"role": "user", "content": "Habari?"}]}, "add `judge:`"),
    ({"id": "a", "lang": "swh_Latn", "category": "math", "level": "domain", "answer": "four",
      "messages": [{"role": "user", "content": "2+2?"}]}, "not a number"),
    ({"id": "a", "lang": "swh_Latn", "category": "math", "level": "domain", "choices": ["3", "4"], "answer": "C",
      "messages": [{"role": "user", "content": "2+2?"}]}, "names none of the 2 choices"),
])
def test_bad_prompts_are_refused_before_any_work(tmp_path, capsys, row, message):
    (tmp_path / "prompts.jsonl").write_text(json.dumps(row) + "\n")
    path = _eval_file(tmp_path, "http://127.0.0.1:9/v1")
    assert main(["eval", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "prompts.jsonl row 1" in err
    assert not (tmp_path / "out").exists()


def test_bad_config_keys_and_an_unreachable_model_are_exit_2_with_nothing_written(tmp_path, capsys):
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"id": "a", "lang": "swh_Latn", "category": "open_qa",
                                                        "level": "language",
                                                        "messages": [{"role": "user", "content": "Habari?"}]}) + "\n")
    path = _eval_file(tmp_path, "http://127.0.0.1:9/v1", next_row=5)
    assert main(["eval", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "next_row: unknown key" in capsys.readouterr().err
    path = _eval_file(tmp_path, "http://127.0.0.1:9/v1", baseline={"type": "openai", "base_url": "http://x/v1", "model": "b"})
    assert main(["eval", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "needs a `judge:`" in capsys.readouterr().err
    path = _eval_file(tmp_path, "http://127.0.0.1:9/v1")
    assert main(["eval", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "model.base_url" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_force_new_deletes_only_synth_s_files_and_a_foreign_directory_is_refused(tmp_path, texts, capsys):
    answers = _prompts(tmp_path / "prompts.jsonl", texts)
    out = tmp_path / "out"
    with EvalServer({"student": lambda m: answers.get(m[-1]["content"], "Habari")}) as server:
        path = _eval_file(tmp_path, server.url)
        assert main(["eval", str(path), "-o", str(out)]) == 0
        asked = len(server.seen)
        assert main(["eval", str(path), "-o", str(out)]) == 0 and len(server.seen) == asked  # finished: not redone
        (out / "notes.txt").write_text("mine")
        assert main(["eval", str(path), "-o", str(out), "--force-new"]) == 2
        assert "notes.txt" in capsys.readouterr().err and (out / "results.parquet").exists()
        (out / "notes.txt").unlink()
        assert main(["eval", str(path), "-o", str(out), "--force-new"]) == 0 and len(server.seen) == 2 * asked
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        (foreign / "data.csv").write_text("x")
        assert main(["eval", str(path), "-o", str(foreign)]) == 2
    assert "synth never deletes files it did not write" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["data.csv"]

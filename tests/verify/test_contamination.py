"""Contamination: overlap with evaluation sets (JSONL, Parquet, text) on real UDHR text."""

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.cli import main
from synth.config import ContaminationConfig
from synth.errors import ConfigError
from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.sets.contamination import ContaminationFilter, ngram_hashes, read_eval_texts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def texts(udhr):
    return {code: udhr(code) for code in ("eng", "swh", "khm", "hin")}


@pytest.fixture(scope="module")
def eval_sets(texts, tmp_path_factory):
    """Articles 1-10 as evaluation items, in the three formats: English and Khmer in JSONL records
    (nested like chat benchmarks), Swahili in Parquet (a list-of-struct column), Hindi as plain text."""
    root = tmp_path_factory.mktemp("evals")
    jsonl = root / "mmlu_like.jsonl"
    with jsonl.open("w", encoding="utf-8") as handle:
        for n in range(10):
            handle.write(json.dumps({"id": n, "question": texts["eng"][n], "choices": ["A", "B"],
                                     "messages": [{"role": "user", "content": texts["khm"][n]}]},
                                    ensure_ascii=False) + "\n")
    parquet = root / "swahili_eval.parquet"
    pl.DataFrame({"id": list(range(10)),
                  "messages": [[{"role": "user", "content": t}] for t in texts["swh"][:10]]}).write_parquet(parquet)
    text = root / "hindi_eval.txt"
    text.write_text("\n".join(texts["hin"][:10]) + "\n", encoding="utf-8")
    return jsonl, parquet, text


def _long(articles, start=0):
    """Indexes of articles with at least 30 words (or 150 characters for unspaced text)."""
    return [i for i, t in enumerate(articles) if i >= start and (len(t.split()) >= 30 or len(t) >= 150)]


def test_readers_extract_every_string(eval_sets, texts):
    jsonl, parquet, text = eval_sets
    from_jsonl = list(read_eval_texts(jsonl))
    assert texts["eng"][0] in from_jsonl and texts["khm"][0] in from_jsonl and "A" in from_jsonl
    assert texts["swh"][3] in list(read_eval_texts(parquet))
    assert len(list(read_eval_texts(text))) == 10



def test_a_lone_surrogate_escape_in_an_eval_set_is_read_and_hashed_not_fatal(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "What is \\ud800 the capital of Kenya?", "answer": "Nairobi"}\n'
                      '{"question": "\\udc00' + "ก" * 60 + '"}\n')
    texts = list(read_eval_texts(broken))
    assert texts[:2] == ["What is \ud800 the capital of Kenya?", "Nairobi"]
    assert ngram_hashes(texts[0], 3, 50).size and ngram_hashes(texts[2], 3, 50).size  # the Thai one raised before


def test_eval_items_are_caught_and_the_reason_names_the_file(eval_sets, texts):
    f = ContaminationFilter(eval_sets)
    cases = []  # (candidate, expected file or None)
    for code, name in (("eng", "mmlu_like.jsonl"), ("khm", "mmlu_like.jsonl"), ("swh", "swahili_eval.parquet"),
                       ("hin", "hindi_eval.txt")):
        articles = texts[code]
        for i in _long(articles)[:3]:
            if i < 10:
                cases.append((articles[i], name))
        for i in _long(articles, start=10)[:5]:
            cases.append((articles[i], None))
    batch = [Candidate(id=str(k), lang="x", text=t) for k, (t, _) in enumerate(cases)]
    scores = f.score(batch)
    for c, score, (_, name) in zip(batch, scores, cases):
        if name is None:
            assert score == 0.0 and f.accept(score, "x"), c.text[:60]
        else:
            assert score == 1.0 and not f.accept(score, "x")
            assert name in f.explain_candidate(c, score)


def test_a_quoted_passage_inside_a_longer_answer_is_caught(eval_sets, texts):
    f = ContaminationFilter(eval_sets)
    english = texts["eng"]
    item = next(t for t in english[:10] if len(t.split()) >= 30)
    passage = " ".join(item.split()[5:20])  # 15 words of an evaluation item
    answer = f"{english[20]} As the text says: {passage}. {english[22]}"
    score = f.score([Candidate(id="q", lang="eng_Latn", text=answer)])[0]
    assert 0 < score < 0.2 and not f.accept(score, "eng_Latn")
    # twelve words are not a 13-gram: short common phrases never trigger it
    short = " ".join(item.split()[5:17])
    assert f.score([Candidate(id="s", lang="eng_Latn", text=f"{english[20]} {short} {english[22]}")]) == [0.0]


def test_character_ngrams_for_unspaced_scripts(texts):
    khmer = texts["khm"][1]
    assert ngram_hashes(khmer, 13, 50).size > 0  # far fewer than 13 space-separated chunks
    assert ngram_hashes(khmer[:40], 13, 50).size == 0


def test_not_configured_is_not_run_never_passed(udhr, tmp_path, capsys):
    verifier = Verifier(load_preset("default"), load_registry())
    assert "contamination" in verifier.not_run and "contamination" not in verifier.score_names()
    english, swahili = udhr("eng")[:4], udhr("swh")[:4]
    src = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a", "b", "c", "d"], "lang": ["swh_Latn"] * 4, "source_lang": ["eng_Latn"] * 4,
                  "source": english, "text": swahili}).write_parquet(src)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out)]) == 0
    assert pl.read_parquet(out)["score_contamination"].null_count() == 4
    assert "NOT run: contamination" in capsys.readouterr().out


def test_synth_verify_with_eval_sets(udhr, eval_sets, tmp_path):
    english, swahili = udhr("eng"), udhr("swh")
    rows = [n for n in range(len(swahili)) if len(swahili[n].split()) >= 20][:8]
    src = tmp_path / "in.parquet"
    pl.DataFrame({"id": [f"r{n}" for n in rows], "lang": ["swh_Latn"] * len(rows),
                  "source_lang": ["eng_Latn"] * len(rows), "source": [english[n] for n in rows],
                  "text": [swahili[n] for n in rows]}).write_parquet(src)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out), "--contamination", str(eval_sets[1])]) == 0
    result = pl.read_parquet(out)
    for row in result.iter_rows(named=True):
        in_eval = int(row["id"][1:]) < 10
        assert (row["score_contamination"] == 1.0) if in_eval else (row["score_contamination"] == 0.0)
        assert ("contamination" in row["reject_reasons"]) == in_eval


def test_missing_eval_file_is_a_config_error(udhr, tmp_path, capsys):
    src = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a"], "lang": ["swh_Latn"], "source_lang": ["eng_Latn"], "source": [udhr("eng")[0]],
                  "text": [udhr("swh")[0]]}).write_parquet(src)
    out = tmp_path / "out.parquet"
    assert main(["verify", str(src), "--output", str(out), "--contamination", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err and not out.exists()


def _job(tmp_path: Path, contamination) -> Path:
    job = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    for target in job["targets"]:
        target["seeds"] = str(ROOT / "examples" / target["seeds"])
    job["sources"]["path"] = str(ROOT / "examples" / job["sources"]["path"])
    job["verify"]["contamination"] = contamination
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_job_config(eval_sets, tmp_path, capsys):
    from synth.config import parse_job
    from synth.prepare import prepare

    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "mine.jsonl").write_text(eval_sets[0].read_text())
    job = parse_job(_job(tmp_path, {"paths": ["evals/mine.jsonl"], "ngram": 10}))  # relative to the job file
    assert job.verify.contamination == ContaminationConfig(paths=[tmp_path / "evals" / "mine.jsonl"], ngram=10)
    prepare(job)
    with pytest.raises(ConfigError, match=r"verify\.contamination\.paths\[1\]: .*missing\.jsonl not found"):
        prepare(parse_job(_job(tmp_path, {"paths": ["evals/mine.jsonl", "missing.jsonl"]})))
    out = tmp_path / "out"
    assert main(["run", str(_job(tmp_path, {"paths": ["evals/mine.jsonl"], "n": 13})), "--output", str(out)]) == 2
    assert "verify.contamination.n: unknown key" in capsys.readouterr().err and not out.exists()

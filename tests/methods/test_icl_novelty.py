"""ICL novelty: a pair whose instruction is a near-copy of a seed's is rejected before verification,
even when a new answer dilutes the whole-pair `copy` score below its threshold."""

from pathlib import Path

from synth.conversations import load_conversations
from synth.engines.base import Completion
from synth.languages import get_language
from synth.methods.icl import IclMethod, novelty_problem
from synth.plan import Attempt
from synth.prompts import load_prompts
from synth.verify.base import Candidate
from synth.verify.rules.form import CopyFilter

ROOT = Path(__file__).resolve().parents[2]
SEEDS = load_conversations(ROOT / "examples" / "seeds" / "swh_Latn.jsonl", "seeds")


def test_distinct_seeds_are_novel_to_each_other_and_near_copies_are_not():
    for seed in SEEDS:
        others = [s for s in SEEDS if s is not seed]
        assert novelty_problem(seed.first("user"), others) is None
        words = seed.first("user").split()
        if len(words) >= 6:  # in a shorter one a word is a large part of the task
            near = " ".join(words[1:])  # the seed's task with its first word dropped
            reason, detail = novelty_problem(near, SEEDS)
            assert reason == "novelty" and seed.id in detail


def test_a_copied_instruction_with_a_new_answer_passes_copy_but_fails_novelty():
    seed = SEEDS[0]
    new_answer = ("Jibu jipya kabisa: kila familia hupanga mambo yake kwa njia tofauti, kulingana na "
                  "mahali wanapoishi, kazi zao na idadi ya watoto nyumbani. Hakuna njia moja tu iliyo sahihi.")
    text = seed.first("user") + "\n\n" + new_answer
    reference = seed.first("user") + "\n\n" + seed.first("assistant")
    copy = CopyFilter().score([Candidate(id="x", lang="swh_Latn", text=text, references=[reference])])[0]
    assert CopyFilter().accept(copy, "swh_Latn")  # the whole-pair copy score misses it ...
    assert novelty_problem(seed.first("user"), SEEDS)[0] == "novelty"  # ... the instruction check does not


def test_icl_rows_reject_a_seed_copy_with_reason_novelty():
    languages = {code: get_language(code) for code in ("swh_Latn", "eng_Latn")}  # a target and its pivot
    category = SEEDS[0].category
    method = IclMethod(load_prompts()["icl_pair"], languages, {"swh_Latn": SEEDS}, k=2, seed=0, model="recorded")
    attempts = [Attempt("swh_Latn", "icl", category, i) for i in range(2)]
    copied = f"### Instruction\n{SEEDS[0].first('user')}\n### Response\nHili ni jibu jipya kabisa kwa swali hili."
    fresh = ("### Instruction\nEleza jinsi ya kupanda mbegu za mahindi shambani wakati wa mvua za masika.\n"
             "### Response\nLima shamba, chimba mashimo madogo, weka mbegu mbili kila shimo kisha funika kwa udongo.")
    rows = method.rows(attempts, [Completion(attempts[0].id, text=copied, finish_reason="stop"),
                                  Completion(attempts[1].id, text=fresh, finish_reason="stop")])
    assert rows[0].error == "novelty" and SEEDS[0].id in rows[0].error_detail
    assert rows[1].error is None and rows[1].messages[0]["content"].startswith("Eleza jinsi")

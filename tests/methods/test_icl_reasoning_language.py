"""Reasoning-language policy in ICL: a pivot-policy language gets `### Notes` in its pivot for reasoning
and math tasks only, and the notes never reach the row; a native-policy language writes the pair directly."""

from pathlib import Path

from synth.conversations import load_conversations
from synth.engines.base import Completion
from synth.languages import load_registry
from synth.methods.base import Attempt
from synth.methods.icl import IclMethod
from synth.prompts import PromptTemplate, load_prompts

ROOT = Path(__file__).resolve().parents[2]
SEEDS = {lang: load_conversations(ROOT / "examples" / "seeds" / f"{lang}.jsonl", "seeds")
         for lang in ("swh_Latn", "fra_Latn")}


def _method(template: PromptTemplate | None = None, seeds=None) -> IclMethod:
    registry = load_registry()
    return IclMethod(template or load_prompts()["icl_pair"], dict(registry), seeds or SEEDS, k=2, seed=0, model="m")


def test_pivot_notes_only_for_reasoning_and_math_of_pivot_languages():
    method = _method(seeds={**SEEDS, "wol_Latn": SEEDS["fra_Latn"], "hin_Deva": SEEDS["swh_Latn"]})
    cases = {("swh_Latn", "reasoning"): "English", ("swh_Latn", "math"): "English", ("wol_Latn", "math"): "French",
             ("swh_Latn", "open_qa"): None, ("swh_Latn", "writing"): None, ("hin_Deva", "reasoning"): None}
    for (lang, category), pivot in cases.items():
        request = method.requests([Attempt(lang, "icl", category, 0)])[0]
        prompt = request.messages[-1]["content"]
        if pivot:
            assert request.prefix == "### Notes\n" and "\n### Notes" in request.stop, (lang, category)
            assert f'First plan it in {pivot} under "### Notes"' in prompt
            assert f"every step of the reasoning in {load_registry()[lang].name}" in prompt
        else:
            assert request.prefix == "### Instruction\n" and "### Notes" not in prompt, (lang, category)


def test_templates_without_notes_language_keep_the_plain_format():
    """icl_pair_direct (for small teachers) and custom templates that do not declare `notes_language`."""
    custom = PromptTemplate(name="plain_icl", method="icl", variables=["language", "category_description", "examples"],
                            user="{{ language.name }}: {{ category_description }} {{ examples | length }}")
    for template in (load_prompts()["icl_pair_direct"], custom):
        request = _method(template).requests([Attempt("swh_Latn", "icl", "reasoning", 0)])[0]
        assert request.prefix == "### Instruction\n" and "### Notes" not in request.messages[-1]["content"]


def test_rows_drop_the_notes_and_reject_notes_without_a_pair():
    method = _method()
    attempts = [Attempt("swh_Latn", "icl", "math", i) for i in range(2)]
    good = ("### Notes\nHassani is 8, Juma is 4 years older: 8 + 4 = 12.\n### Instruction\n"
            "Hassani ana miaka 8. Juma ni mkubwa kuliko Hassani kwa miaka 4. Juma ana miaka mingapi?\n### Response\n"
            "Tunajumlisha umri wa Hassani na tofauti yao: 8 + 4 = 12. Kwa hiyo jibu ni kumi na mbili.")
    notes_only = "### Notes\nThe task could be about the price of ugali in Kariakoo, step by step in English"
    rows = method.rows(attempts, [Completion(attempts[0].id, text=good, finish_reason="stop"),
                                  Completion(attempts[1].id, text=notes_only, finish_reason="length")])
    assert rows[0].error is None, rows[0].error_detail
    assert rows[0].messages[0]["content"].startswith("Hassani ana miaka 8.")
    assert "older" not in rows[0].text and "Notes" not in rows[0].text
    assert rows[0].raw_output == good  # the rejects and the report still show what the teacher wrote
    assert rows[1].error == "unparseable" and "Notes" in rows[1].error_detail

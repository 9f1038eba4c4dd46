"""In-context learning: k native seed examples of a category, then ask for a new, different pair."""

from __future__ import annotations

import random
import re
from typing import Sequence

from sacrebleu.metrics import CHRF

from synth.config import CATEGORIES
from synth.conversations import Conversation
from synth.engines.base import Completion, GenerationRequest
from synth.languages import LanguageSpec
from synth.loading import DATA_LINE, json_value
from synth.methods.base import Row
from synth.plan import Attempt
from synth.prompts import PromptTemplate
from synth.reasons import split_error
from synth.text import well_formed

_PAIR = re.compile(
    r"(?:#+\s*|\*\*)?\s*(?:instructions?|instruksi)\s*[:：]?\s*(?:\*\*)?\s*\n?(?P<instruction>.+?)"
    r"\n\s*(?:#+\s*|\*\*)?\s*(?:response|answer|jibu|sagot|réponse)\s*[:：]?\s*(?:\*\*)?\s*\n?(?P<response>.+)",
    re.IGNORECASE | re.DOTALL,
)


# A leading scratch section the teacher writes in its pivot language (reasoning-language policy), and
# the header that ends it: a marked `### Instruction` / `**Instruction**`, or a bare `Instruction:`.
_NOTES = re.compile(r"\A\s*(?:#+\s*|\*\*)?\s*notes?\s*[:：]?\s*(?:\*\*)?\s*\n", re.IGNORECASE)
_INSTRUCTION_HEADER = re.compile(
    r"^[ \t]*(?:(?:#+|\*\*)[ \t]*(?:instructions?|instruksi)\b|(?:instructions?|instruksi)[ \t]*[:：])",
    re.IGNORECASE | re.MULTILINE,
)
# Categories where the teacher may think in its pivot language before writing the pair.
PIVOT_CATEGORIES = frozenset({"reasoning", "math"})

_WORDS = re.compile(r"\w+", re.UNICODE)
# the format's own markup or its placeholder text ("(the new instruction)"), in any bracket the model
# chose to copy it in: "[the new instruction]" is the same placeholder
_PLACEHOLDER = re.compile(r"###|[(\[{<](the|your|a)( new)? (instruction|response|answer|task)[^)\]}>]*[)\]}>]",
                          re.IGNORECASE)
_CHRF = CHRF()


def strip_notes(text: str) -> str | None:
    """Drop a leading `### Notes` section (scratch thinking, possibly in a pivot language): it never
    reaches the data. None when notes are all there is; text without notes is returned unchanged."""
    if not _NOTES.match(text):
        return text
    header = _INSTRUCTION_HEADER.search(text)
    return text[header.start():] if header else None


def parse_pair(text: str) -> tuple[str, str] | None:
    """Tolerant parse of `### Instruction ... ### Response ...`; None when the shape is not there."""
    match = _PAIR.search(text)
    if not match:
        return None
    instruction = match["instruction"].strip().strip("*").strip()
    response = re.split(r"\n\s*#+\s*instruction", match["response"], flags=re.IGNORECASE)[0].strip()
    if not instruction or not response:
        return None
    return instruction, response


def pair_problem(instruction: str, response: str) -> tuple[str, str] | None:
    """(reason, detail) when a parsed pair is not a usable example, else None."""
    for part, name in ((instruction, "instruction"), (response, "response")):
        if _PLACEHOLDER.search(part):
            return "unparseable", f"template markup left in the {name}"
        if len(_WORDS.findall(part)) < 3:
            return "unparseable", f"the {name} has fewer than 3 words"
    if _CHRF.sentence_score(response, [instruction]).score > 60:
        return "echo", "the response repeats the instruction"
    return None


# chrF of a new instruction against a seed instruction above which it is the seed's task again.
# Measured on the demo seeds (examples/seeds, 9 per language): distinct seed instructions score at
# most 37 against each other, a seed with one word dropped or swapped 50-100 (median 81-90).
NOVELTY_MAX_CHRF = 60.0


def novelty_problem(instruction: str, seeds: Sequence[Conversation],
                    limit: float = NOVELTY_MAX_CHRF) -> tuple[str, str] | None:
    """('novelty', detail) when the instruction is a near-copy of a seed's instruction, else None.

    The `copy` filter measures how much of the whole pair is copied from the k seeds shown in the
    prompt: a seed's instruction copied verbatim with a new answer is a small share of the pair and
    passes it. The task is what makes an example new, so the instruction alone is compared with every
    seed of the category.
    """
    best, closest = 0.0, None
    for seed in seeds:
        score = _CHRF.sentence_score(instruction, [seed.first("user")]).score
        if score > best:
            best, closest = score, seed
    if closest is None or best <= limit:
        return None
    return "novelty", (f"the instruction is a near-copy of seed {closest.id} (chrF {best:.0f} > {limit:.0f}): "
                       f"{closest.first('user')[:80]!r}")


def pair_schema(notes: bool) -> dict:
    """JSON schema of one pair (notes first when the teacher thinks in a pivot language)."""
    keys = (["notes"] if notes else []) + ["instruction", "response"]
    return {"type": "object", "properties": {k: {"type": "string", "minLength": 1} for k in keys},
            "required": keys, "additionalProperties": False}


def as_structured(request: GenerationRequest, language: str, notes: bool) -> GenerationRequest:
    """The same request answered as JSON through the engine's structured outputs (no text prefix)."""
    keys = '"notes", "instruction" and "response"' if notes else '"instruction" and "response"'
    messages = [dict(m) for m in request.messages]
    messages[-1]["content"] += (f"\n\nReply with one JSON object with the keys {keys} instead of the ### format; "
                                f"write the instruction and the response in {language}.")
    return GenerationRequest(id=request.id, messages=messages, max_tokens=request.max_tokens,
                             json_schema=pair_schema(notes))


def pair_from_json(completion: Completion) -> tuple[str, str] | str:
    """(instruction, response) read straight from a structured answer, or the `unparseable: ...` detail.

    The fields are taken as they are: re-running the ### text parser on them would split an
    instruction that has a line like "Answer in Swahili: ..." or cut a response at a `### Instruction`
    line. The notes, if any, are scratch and are dropped.
    """
    try:
        data = json_value(completion.text, DATA_LINE)  # a hostile server's 100,000-deep answer too
    except ValueError:
        why = "cut at max_tokens" if completion.finish_reason == "length" else "not valid JSON"
        return f"unparseable: structured output {why}"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("instruction", "response")):
        return "unparseable: structured output lacks string instruction and response"
    return well_formed(data["instruction"]).strip(), well_formed(data["response"]).strip()


def pair_from_text(text: str) -> tuple[str, str] | str:
    """(instruction, response) parsed from the ### format (notes dropped), or why it is unparseable."""
    if (body := strip_notes(text)) is None:
        return "only '### Notes', no '### Instruction' after them"
    return parse_pair(body) or "no '### Instruction' / '### Response' pair in the output"


class IclMethod:
    name = "icl"

    def __init__(self, template: PromptTemplate, languages: dict[str, LanguageSpec],
                 seeds: dict[str, list[Conversation]], k: int, seed: int, model: str, structured: bool = False):
        self.template = template
        self.languages = languages  # the targets and their reasoning-language pivots
        self.seeds = seeds
        self.k = k
        self.seed = seed
        self.model = model
        self.structured = structured  # JSON through the engine's structured outputs, not the ### format

    def _pool(self, attempt: Attempt) -> list[Conversation]:
        """The seeds examples are drawn from (and a new pair must not copy): the category's, else all."""
        pool = self.seeds[attempt.lang]
        return [s for s in pool if s.category == attempt.category] or pool

    def _examples(self, attempt: Attempt) -> list[Conversation]:
        same = self._pool(attempt)
        rng = random.Random(f"{self.seed}:{attempt.id}")
        return rng.sample(same, min(self.k, len(same)))

    def _notes_language(self, attempt: Attempt) -> LanguageSpec | None:
        """The pivot the teacher takes notes in, or None (it writes the pair directly).

        Only for reasoning-like categories of a language whose policy names a pivot, and only with a
        template that declares `notes_language` (custom templates without it keep the plain format).
        """
        spec = self.languages[attempt.lang]
        if (attempt.category not in PIVOT_CATEGORIES or spec.reasons_natively
                or "notes_language" not in self.template.variables):
            return None
        return self.languages[spec.reasoning_language]  # prepare() adds every target's pivot

    def requests(self, attempts: Sequence[Attempt]) -> list[GenerationRequest]:
        out = []
        for a in attempts:
            examples = [{"instruction": s.first("user"), "response": s.first("assistant")} for s in self._examples(a)]
            notes = self._notes_language(a)
            messages = self.template.render(
                language=self.languages[a.lang].model_dump(),
                category_description=CATEGORIES[a.category], examples=examples,
                notes_language=notes.model_dump() if notes else None,
            )
            # one pair per request: stop where the model starts a second one
            if notes:
                request = GenerationRequest(id=a.id, messages=messages, prefix="### Notes\n",
                                            stop=["\n### Notes", "\n###Notes"])
            else:
                request = GenerationRequest(id=a.id, messages=messages, prefix="### Instruction\n",
                                            stop=["\n### Instruction", "\n###Instruction"])
            if self.structured:
                request = as_structured(request, self.languages[a.lang].name, notes=notes is not None)
            out.append(request)
        return out

    def rows(self, attempts: Sequence[Attempt], completions: Sequence[Completion]) -> list[Row]:
        """One row per attempt; its completion is the one whose id is the attempt's (order does not matter)."""
        by_id = {c.id: c for c in completions}
        rows = []
        for a in attempts:
            c = by_id.get(a.id) or Completion(a.id, error="engine_error: no completion for this request")
            references = [s.first("user") + "\n\n" + s.first("assistant") for s in self._examples(a)]
            row = Row(id=a.id, lang=a.lang, method=self.name, category=a.category, prompt=self.template.name,
                      model=self.model, raw_output=c.text, truncated=c.finish_reason == "length",
                      references=references, output_tokens=c.output_tokens,
                      prompt_tokens=c.prompt_tokens)
            if c.error:
                row.error, row.error_detail = split_error(c.error)
            elif isinstance(pair := pair_from_json(c) if self.structured else pair_from_text(c.text), str):
                row.error, row.error_detail = "unparseable", pair
            elif problem := pair_problem(*pair) or novelty_problem(pair[0], self._pool(a)):
                row.error, row.error_detail = problem
            else:
                row.messages = [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
            rows.append(row)
        return rows

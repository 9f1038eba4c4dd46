"""Translation distillation: translate high-resource conversations turn by turn, then back-translate.

Each message is cut by `structure.split_message`: code blocks, list markers, table pipes and other
markup never reach the model, inline code, URLs and placeholders travel as sentinels, and long
messages go out as several requests under a character budget. A translation that loses, duplicates
or invents a sentinel, or changes a number, is rejected as `structure_lost`; nothing is silently
mended. The back-translation (same cutting) feeds the round-trip (chrF++) check.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

from synth.conversations import Conversation
from synth.engines.base import Completion, GenerationRequest
from synth.languages import LanguageSpec
from synth.methods.base import Row
from synth.methods.structure import Layout, join_translation, number_problem, split_message, strip_sentinels
from synth.plan import Attempt
from synth.prompts import PromptTemplate
from synth.reasons import split_error

_PREAMBLE = re.compile(r"^\s*(here is|here's|translation)[^\n]*:\s*\n", re.IGNORECASE)


def clean_translation(text: str) -> str:
    """Drop a chatty 'Here is the translation:' line and wrapping quotes; keep everything else."""
    text = _PREAMBLE.sub("", text).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text


class TranslateMethod:
    name = "translate"

    def __init__(self, forward: PromptTemplate, backward: PromptTemplate, languages: dict[str, LanguageSpec],
                 sources: list[Conversation], source_lang: str, seed: int, model: str, max_chars: int = 1500,
                 max_source_chars: int = 20000):
        self.forward = forward
        self.backward = backward
        self.languages = languages
        self.source_lang = source_lang
        self.model = model
        self.max_chars = max_chars
        self.max_source_chars = max_source_chars
        self.by_category: dict[str, list[Conversation]] = {}
        for conversation in sources:
            self.by_category.setdefault(conversation.category or "open_qa", []).append(conversation)
        for category, items in self.by_category.items():  # a fixed order per category, shuffled once
            random.Random(f"{seed}:{category}").shuffle(items)
        # keyed by the source's place, not its id: ids come from the user's records and may repeat
        self._layouts: dict[tuple[str, int], list[Layout]] = {}

    def capacity(self, category: str) -> int:
        """Distinct sources of a category: each is translated at most once per language."""
        return len(self.by_category.get(category, []))

    def source(self, attempt: Attempt) -> Conversation:
        return self.by_category[attempt.category][attempt.index]

    def layouts(self, attempt: Attempt) -> list[Layout]:
        """One layout per message of the attempt's source (cached: sources repeat across languages)."""
        key = (attempt.category, attempt.index)
        if key not in self._layouts:
            messages = self.source(attempt).messages
            self._layouts[key] = [split_message(content, self.max_chars) for _, content in messages]
        return self._layouts[key]

    def _render(self, template: PromptTemplate, lang: str, text: str, protected: bool) -> list[dict[str, str]]:
        return template.render(source_language=self.languages[self.source_lang].model_dump(),
                               language=self.languages[lang].model_dump(), text=text, protected=protected)

    def _unit_requests(self, template: PromptTemplate, request_id: str, lang: str,
                       layout: Layout) -> list[GenerationRequest]:
        return [
            GenerationRequest(id=uid, messages=self._render(template, lang, unit.text, bool(unit.spans)),
                              max_tokens=self.token_budget(unit.text), stop=self.stops(unit.text))
            for uid, unit in zip(self._unit_ids(request_id, layout), layout.units)
        ]

    @staticmethod
    def _unit_ids(request_id: str, layout: Layout) -> list[str]:
        """The request ids of a message's units: completions are joined to units by them."""
        return [f"{request_id}.{u}" for u in range(len(layout.units))]

    @staticmethod
    def token_budget(text: str) -> int:
        """max_tokens for translating `text`: room for a translation twice as long in tokens.

        A model that runs on past that is looping or chatting; it is cut and rejected as truncated
        instead of burning the whole max_tokens.
        """
        return 48 + len(text) // 2

    @staticmethod
    def stops(text: str) -> list[str]:
        """A one-paragraph text translates to one paragraph: stop at a blank line (models add notes)."""
        return [] if "\n\n" in text.strip() else ["\n\n"]

    def too_long(self, attempt: Attempt) -> str | None:
        """Why the attempt's source is not translated at all (a reject before any request), or None."""
        longest = max((len(content) for _, content in self.source(attempt).messages), default=0)
        if longest > self.max_source_chars:
            return (f"a source message of {longest} characters; translate.max_source_chars is "
                    f"{self.max_source_chars}")
        return None

    def requests(self, attempts: Sequence[Attempt]) -> list[GenerationRequest]:
        """One request per prose unit of every message; a code-only message needs none."""
        return [
            request
            for a in attempts if not self.too_long(a)
            for t, layout in enumerate(self.layouts(a))
            for request in self._unit_requests(self.forward, f"{a.id}/t{t}", a.lang, layout)
        ]

    def rows(self, attempts: Sequence[Attempt], completions: Sequence[Completion]) -> list[Row]:
        """Assemble translated conversations; each unit's completion is found by its request id."""
        by_id = {c.id: c for c in completions}
        rows = []
        for a in attempts:
            source = self.source(a)
            if problem := self.too_long(a):
                rows.append(Row(id=a.id, lang=a.lang, method=self.name, category=a.category,
                                prompt=self.forward.name, model=self.model, source_id=source.id,
                                source_lang=self.source_lang, source_messages=source.as_messages(),
                                error="source_too_long", error_detail=problem))
                continue
            layouts = self.layouts(a)
            units = [by_id.get(uid) or Completion(uid, error="engine_error: no completion for this request")
                     for t, layout in enumerate(layouts) for uid in self._unit_ids(f"{a.id}/t{t}", layout)]
            row = Row(id=a.id, lang=a.lang, method=self.name, category=a.category, prompt=self.forward.name,
                      model=self.model, source_id=source.id, source_lang=self.source_lang,
                      source_messages=source.as_messages(),
                      truncated=any(c.finish_reason == "length" for c in units),
                      raw_output="\n\n".join(c.text for c in units),
                      output_tokens=sum(c.output_tokens for c in units),
                      prompt_tokens=sum(c.prompt_tokens for c in units),
                      source_prose="\n\n".join(layout.prose() for layout in layouts))
            failed = next((c for c in units if c.error), None)
            if failed:
                row.error, row.error_detail = split_error(failed.error)
                rows.append(row)
                continue
            messages, problems, prose, start = [], [], [], 0
            for t, ((role, _), layout) in enumerate(zip(source.messages, layouts)):
                outputs = [clean_translation(c.text) for c in units[start:start + len(layout.units)]]
                start += len(layout.units)
                content, lost = join_translation(layout, outputs)
                changed = number_problem(layout, outputs)
                problems += [f"message {t + 1}: {p}" for p in lost + ([changed] if changed else [])]
                messages.append({"role": role, "content": content})
                prose.append("\n\n".join(strip_sentinels(o) for o in outputs))
            row.messages = messages  # kept on a structure_lost reject too, to show what broke
            row.prose = "\n\n".join(prose)
            if problems:  # a translation cut at max_tokens loses its tail: say so, it is the likelier cause
                cut = "output cut at max_tokens; " if row.truncated else ""
                row.error, row.error_detail = "structure_lost", cut + "; ".join(problems)
            elif runaway := self.runaway(layouts, messages):
                row.error, row.error_detail = "translation_too_long", runaway
            rows.append(row)
        return rows

    # back-translation requests a translated message may need per request of its source: a translation
    # runs longer than its source (scripts and languages differ), never several times as many units
    MAX_BACK_UNITS_PER_UNIT = 3

    def runaway(self, layouts: Sequence[Layout], messages: Sequence[dict[str, str]]) -> str | None:
        """Why a translation would fan out into too many back-translation requests, or None. The work of
        one row stays bounded by its source, whatever a server sends back."""
        for t, (layout, message) in enumerate(zip(layouts, messages)):
            allowed = self.MAX_BACK_UNITS_PER_UNIT * max(1, len(layout.units))
            chars = len(message["content"])
            # each unit holds up to max_chars: far more text cannot fit, so it is not even cut
            units = allowed + 1 if chars > 2 * allowed * self.max_chars else len(split_message(message["content"], self.max_chars).units)
            if units > allowed:
                return (f"message {t + 1}: its translation has {chars} characters, about {units} back-translation "
                        f"requests for a source of {len(layout.units)}; at most {allowed}")
        return None

    def back_requests(self, rows: Sequence[Row]) -> list[GenerationRequest]:
        """Back-translate every translated message, cut the same way (code stays out)."""
        return [
            request
            for r in rows if r.error is None and r.messages is not None
            for i, layout in enumerate(self._back_layouts(r))
            for request in self._unit_requests(self.backward, f"{r.id}/b{i}", r.lang, layout)
        ]

    def _back_layouts(self, row: Row) -> list[Layout]:
        return [split_message(m["content"], self.max_chars) for m in row.messages or []]

    def add_back_translations(self, rows: Sequence[Row], completions: Sequence[Completion]) -> None:
        """Back-translations per message; a lost sentinel only drops its span (the round trip judges)."""
        by_id = {c.id: c for c in completions}
        for r in rows:
            if r.error is not None or r.messages is None:
                continue
            back, prose = [], []
            for i, layout in enumerate(self._back_layouts(r)):
                units = [by_id.get(uid) or Completion(uid, error="engine_error: no completion for this request")
                         for uid in self._unit_ids(f"{r.id}/b{i}", layout)]
                r.output_tokens += sum(c.output_tokens for c in units)
                r.prompt_tokens += sum(c.prompt_tokens for c in units)
                # a failed unit counts as empty, so the round trip fails instead of being skipped
                outputs = ["" if c.error else clean_translation(c.text) for c in units]
                back.append(join_translation(layout, outputs)[0])
                prose.append("\n\n".join(strip_sentinels(o) for o in outputs))
            r.back_translation = back
            r.back_prose = "\n\n".join(prose)

"""Translation distillation: translate high-resource conversations turn by turn, then back-translate.

The back-translation feeds the round-trip (chrF++) check; both use the same engine.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

from synth.conversations import Conversation
from synth.engines.base import Completion, GenerationRequest
from synth.languages import LanguageSpec
from synth.methods.base import Attempt, Row
from synth.prompts import PromptTemplate

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
                 sources: list[Conversation], source_lang: str, seed: int, model: str):
        self.forward = forward
        self.backward = backward
        self.languages = languages
        self.source_lang = source_lang
        self.model = model
        self.by_category: dict[str, list[Conversation]] = {}
        for conversation in sources:
            self.by_category.setdefault(conversation.category or "open_qa", []).append(conversation)
        for category, items in self.by_category.items():  # a fixed order per category, shuffled once
            random.Random(f"{seed}:{category}").shuffle(items)

    def capacity(self, category: str) -> int:
        """Distinct sources of a category: each is translated at most once per language."""
        return len(self.by_category.get(category, []))

    def source(self, attempt: Attempt) -> Conversation:
        return self.by_category[attempt.category][attempt.index]

    def _render(self, template: PromptTemplate, lang: str, text: str) -> list[dict[str, str]]:
        return template.render(source_language=self.languages[self.source_lang].model_dump(),
                               language=self.languages[lang].model_dump(), text=text)

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

    def requests(self, attempts: Sequence[Attempt]) -> list[GenerationRequest]:
        return [
            GenerationRequest(id=f"{a.id}/t{i}", messages=self._render(self.forward, a.lang, content),
                              max_tokens=self.token_budget(content), stop=self.stops(content))
            for a in attempts
            for i, (_, content) in enumerate(self.source(a).messages)
        ]

    def rows(self, attempts: Sequence[Attempt], completions: Sequence[Completion]) -> list[Row]:
        """Assemble translated conversations; completions are in the order of `requests`."""
        rows, position = [], 0
        for a in attempts:
            source = self.source(a)
            turns = completions[position:position + len(source.messages)]
            position += len(source.messages)
            row = Row(id=a.id, lang=a.lang, method=self.name, category=a.category, prompt=self.forward.name,
                      model=self.model, source_id=source.id, source_lang=self.source_lang,
                      source_messages=source.as_messages(),
                      truncated=any(t.finish_reason == "length" for t in turns),
                      raw_output="\n\n".join(t.text for t in turns),
                      output_tokens=sum(t.output_tokens for t in turns))
            failed = next((t for t in turns if t.error), None)
            if failed:
                row.error, row.error_detail = failed.error.split(":")[0], failed.error
            else:
                row.messages = [{"role": role, "content": clean_translation(t.text)}
                                for (role, _), t in zip(source.messages, turns)]
            rows.append(row)
        return rows

    def back_requests(self, rows: Sequence[Row]) -> list[GenerationRequest]:
        return [
            GenerationRequest(id=f"{r.id}/b{i}", messages=self._render(self.backward, r.lang, m["content"]),
                              max_tokens=self.token_budget(m["content"]), stop=self.stops(m["content"]))
            for r in rows if r.messages is not None
            for i, m in enumerate(r.messages)
        ]

    def add_back_translations(self, rows: Sequence[Row], completions: Sequence[Completion]) -> None:
        position = 0
        for r in rows:
            if r.messages is None:
                continue
            turns = completions[position:position + len(r.messages)]
            position += len(r.messages)
            # a failed back-translation turn counts as empty, so the round trip fails instead of being skipped
            r.back_translation = ["" if t.error else clean_translation(t.text) for t in turns]

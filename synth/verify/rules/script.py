"""Share of letters in the language's expected script (ISO 15924), from Unicode's script properties.

Cheap and model-free, so it catches what LID can miss on short or unusual text: an Amharic answer
written in Latin transliteration, a Tatar answer in Latin instead of Cyrillic, a Khmer answer that
drifted into English. Only letters (and the vowel signs of their scripts) count: digits, punctuation,
whitespace and Latin accents are ignored, and so are URLs, e-mail addresses and code (fenced blocks
and `inline` spans), whose Latin letters are not a failure to write the language. What counts and
which script a character is in: synth.text.
"""

from __future__ import annotations

from typing import Sequence

from synth.text import known_script, prepare_script, script_shares
from synth.verify.base import Candidate, Filter


class ScriptFilter(Filter):
    """Share of the candidate's letters in its language's script (LanguageSpec.script).

    The threshold is the least share of prose letters in the language's script: 0.7 by default
    (names, acronyms and loanwords in Latin inside a Khmer or Amharic answer are normal; an answer
    of which a third is English is code-switched). A language whose script Unicode does not know
    scores None (not applicable), as do texts without letters.
    """

    name = "script"
    default_threshold = 0.7
    description = "share of prose letters (code and URLs excluded) in the language's ISO 15924 script"

    def __init__(self, scripts: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.scripts = {lang: s for lang, s in scripts.items() if known_script(s)}
        for script in set(self.scripts.values()):
            prepare_script(script)  # built once per process, before `synth verify` forks its workers

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        """`script_shares` of the rows of each script."""
        out: list[float | None] = [None] * len(batch)
        by_script: dict[str, list[int]] = {}
        for i, c in enumerate(batch):
            if c.lang in self.scripts:
                by_script.setdefault(self.scripts[c.lang], []).append(i)
        for script, rows in by_script.items():
            for i, share in zip(rows, script_shares([batch[i].text for i in rows], script)):
                out[i] = share
        return out

    def explain(self, score: float, lang: str) -> str:
        return (f"script: {score:.0%} of letters in {self.scripts.get(lang, '?')} "
                f"< {self.threshold_for(lang):.0%}")

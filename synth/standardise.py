"""Standardisation: one language-aware cleaning stage before any filter scores a row.

Real text arrives broken in ways every filter then misreads (mojibake, decomposed accents, zero-width
spaces, Arabic presentation forms, Persian typed with Arabic yeh/kaf, Burmese in Zawgyi, CRLF, space
runs): a mojibake paragraph fails language ID and is thrown away instead of repaired, and a corrupted
copy of a row is not seen as a duplicate. Each rule below is a small named function with a version;
they run in a fixed order (RULES), only on prose (code blocks, inline code, URLs and placeholders are
never touched: `protected_pieces`), and the whole is repeated until nothing changes (idempotent).

What the rules never do, and why: no NFKC by default (it rewrites Thai SARA AM, superscripts,
ligature words), no uncurling of quotes, no folding of a native mark into an English one (« » „ “ ’ ‐
। ॥ ። ፡ ။ ، ؟ ۔ stay), no flattening of newlines or Markdown. Only confusable variants of one mark in
one language are folded (an ASCII `|` typed for a danda, a Latin `?` in Arabic-script text).

Libraries: ftfy (mojibake, explicit configuration below), unicodedata2 (NFC at a pinned Unicode
version, not the Python build's), myanmartools (Google's Zawgyi detector) and python-myanmar (its
Zawgyi->Unicode converter). Where no maintained library is fit (indic-nlp-library pulls Sphinx in at
run time and decomposes nukta letters against NFC; pythainlp's normalize joins lines), the table here
follows the documents named at each rule. Imports nothing of the verifier: it runs before it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from functools import cache
from typing import Callable, Iterable, Literal, Mapping, NamedTuple

import regex
import unicodedata2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.methods.structure import TABLE_RULE, inline_spans
from synth.text import FENCED_CODE, UNSPACED

# --- configuration ------------------------------------------------------------------------------------


class LanguageRules(BaseModel):
    """`standardise:` in a languages/<code>.yaml file: what this language adds to its script's rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    letters: dict[str, str] = Field(
        default_factory=dict, description="characters typed for this language's own (e.g. Arabic yeh U+064A for "
                                          "Persian yeh U+06CC), folded to it (rule `letter_variants`)")
    nfkc: bool = Field(False, description="NFKC instead of NFC (compatibility forms folded too); off by default: "
                                          "NFKC rewrites Thai SARA AM, superscripts and ligature words")
    no_break_spaces: bool = Field(False, description="the language writes no-break and narrow no-break spaces "
                                                     "(French before ; : ! ? and inside « »): kept; elsewhere they "
                                                     "become spaces, except between digits (1 000)")
    tone_marks: Literal["keep", "old", "new"] = Field(
        "keep", description="Vietnamese tone-mark placement in open oa/oe/uy: `old` hòa thủy, `new` hoà thuỷ, `keep` "
                            "either (a mark no convention allows is moved in every mode; rule `vietnamese_tones`)")
    skip: list[str] = Field(default_factory=list, description="rule names not applied to this language")

    @field_validator("letters")
    @classmethod
    def _single(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if len(key) != 1:
                raise ValueError(f"letters: {key!r} is not one character; map one character to its replacement")
        return value

    @field_validator("skip")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _check_rule_names(value, "skip")


class StandardiseConfig(BaseModel):
    """`standardise:` in a filter preset: the stage that cleans text before any filter scores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="standardise seeds, sources and outputs before verification")
    skip: list[str] = Field(default_factory=list, description="rule names not applied to any language (see "
                                                              "docs/verification.md#standardisation)")
    zawgyi_threshold: float = Field(0.95, ge=0.5, le=1.0, description="Zawgyi probability (myanmartools) above which "
                                                                      "Burmese text is converted to Unicode")

    @field_validator("skip")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _check_rule_names(value, "skip")


def _check_rule_names(names: list[str], where: str) -> list[str]:
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise ValueError(f"{where}: unknown rules {unknown}; known: {', '.join(RULES)}")
    return names


# --- protected spans ----------------------------------------------------------------------------------

_FENCED = re.compile(FENCED_CODE, re.S)
# a character without which no protected span can be in a text (a cheap test before the regexes)
_SPAN_MARK = re.compile(r"[`~/@{%<\[\]⟦$]|www\.")


def protected_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` as (piece, protected) in order: fenced code blocks and the inline spans translation keeps
    (synth.methods.structure.inline_spans) are protected; the rest is prose."""
    if not _SPAN_MARK.search(text):
        return [(text, False)]
    pieces: list[tuple[str, bool]] = []
    position = 0
    for block in _FENCED.finditer(text):
        pieces += _inline_pieces(text[position:block.start()])
        pieces.append((block.group(0), True))
        position = block.end()
    pieces += _inline_pieces(text[position:])
    return [p for p in pieces if p[0]]


def _inline_pieces(text: str) -> list[tuple[str, bool]]:
    pieces, position = [], 0
    for start, end in inline_spans(text) if _SPAN_MARK.search(text) else ():
        pieces += [(text[position:start], False), (text[start:end], True)]
        position = end
    pieces.append((text[position:], False))
    return pieces


# --- the rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a rule knows of the text it cleans: the language, its script and its own rules."""

    lang: str | None
    script: str | None
    rules: LanguageRules
    rtl: bool  # the whole text holds right-to-left letters (bidi marks may be meant)
    zawgyi: bool = False  # the whole text's prose is Burmese in the Zawgyi encoding


# ftfy's configuration, each switch chosen: repair mojibake (UTF-8 decoded as cp1252/latin-1/..., lossy
# or mixed), C1 controls that are cp1252 in disguise and surrogate pairs; never touch what is not an
# encoding error (HTML entities in code, terminal escapes, ligatures, full-width forms such as Chinese
# "，", curly quotes, line breaks and normalisation are other rules' business, or nobody's).
FTFY_CONFIG = dict(
    unescape_html=False, remove_terminal_escapes=False, fix_encoding=True, restore_byte_a0=True,
    replace_lossy_sequences=True, decode_inconsistent_utf8=True, fix_c1_controls=True, fix_latin_ligatures=False,
    fix_character_width=False, uncurl_quotes=False, fix_line_breaks=False, fix_surrogates=True,
    remove_control_chars=False, normalization=None, explain=False,
)


@cache
def _ftfy():
    import ftfy

    return ftfy, ftfy.TextFixerConfig(**FTFY_CONFIG)


# What UTF-8 read as Latin-1 or Windows-1252 always shows: a lead byte (Â-ô) followed by a continuation
# byte (U+0080-00BF, or the Windows-1252 characters of 0x80-0x9F); read as Windows-1251: Р-У followed
# by one of that code page's 0x80-0xBF characters (а-п by two); read as cp437: box drawing; and C1 controls, U+FFFD and
# lone surrogates. Text with none of these holds no mojibake ftfy would fix, and skips it.
_CP1252_HIGH = "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022" \
               "\u2026\u2030\u2039\u203a\u20ac\u2122"
_CP1251_HIGH = "\u0401-\u040f\u0451-\u045f\u0490\u0491\u00a0-\u00bf\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026" \
               "\u2030\u2039\u203a\u20ac\u2116\u2122"
_MOJIBAKE_PAIRS = [f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]",  # a 2-byte character read as cp1252
                   f"[\u0420-\u0423][{_CP1251_HIGH}]", f"[\u0430-\u043f][{_CP1251_HIGH}][{_CP1251_HIGH}]"]  # as cp1251
_MOJIBAKE_CHARS = "\u0080-\u009f\u2500-\u257f\ufffd\ud800-\udfff"
_MOJIBAKE_HINT = re.compile("|".join(_MOJIBAKE_PAIRS + [f"[{_MOJIBAKE_CHARS}]"]))


def mojibake(text: str, ctx: Context) -> str:
    """Encoding repair with ftfy (FTFY_CONFIG), on text that may hold mojibake (_MOJIBAKE_HINT)."""
    if text.isascii() or not _MOJIBAKE_HINT.search(text):
        return text
    ftfy, config = _ftfy()
    return ftfy.fix_text(text, config)


_MYANMAR = re.compile("[\u1000-\u109f]")
# What Zawgyi text shows and Unicode Burmese never does: a vowel sign E or medial (Zawgyi RA) typed before
# its consonant, so after no letter or medial, or a code point of the Zawgyi-only glyph range. The
# detector runs where this matches, or on short text (a word or two may show neither)
ZAWGYI_HINT = ("(?:^|[^\u1000-\u102a\u103b-\u103f\u104e\u1050-\u1055\u105a-\u105d\u1061\u1065\u1066\u106e-\u1070"
               "\u1075-\u1081\u108e])[\u1031\u103b]|[\u1060-\u1097]")
_ZAWGYI_HINT = re.compile(ZAWGYI_HINT)
ZAWGYI_SHORT = 64  # characters: below this, the detector reads any Burmese text


@cache
def _zawgyi():
    from myanmar import converter
    from myanmartools import ZawgyiDetector

    return ZawgyiDetector(), converter


def zawgyi_probability(text: str) -> float:
    """Google's detector (myanmartools): the probability that Burmese text is in Zawgyi (0 without any)."""
    return _zawgyi()[0].get_zawgyi_probability(text) if _MYANMAR.search(text) else 0.0


def zawgyi(text: str, ctx: Context) -> str:
    """Burmese typed in the Zawgyi font encoding (Myanmar code points used for glyphs): converted to
    Unicode (python-myanmar) when the detector is sure of the whole text; Unicode Burmese scores near 0."""
    if not ctx.zawgyi or not _MYANMAR.search(text):
        return text
    return _zawgyi()[1].convert(text, "zawgyi", "unicode")


_LINE_ENDS = re.compile("\r\n?|[\x85\u2028]")


def line_ends(text: str, ctx: Context) -> str:
    """CRLF, CR, NEL and LINE SEPARATOR -> LF (PARAGRAPH SEPARATOR -> a blank line)."""
    return _LINE_ENDS.sub("\n", text).replace("\u2029", "\n\n") if ("\r" in text or not text.isascii()) else text


_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def controls(text: str, ctx: Context) -> str:
    """C0 controls (but tab and newline) and DEL removed: no script writes them."""
    return _CONTROLS.sub("", text)


# Scripts whose orthography needs ZWNJ/ZWJ (Unicode Standard ch. 9 Arabic, 12 South Asia, 13, 16): Persian
# and Urdu half-spaces, Indic and Sinhala conjunct control, Khmer and Burmese ligature control, Mongolian
JOINER_SCRIPTS = ("Arab", "Syrc", "Mong", "Nkoo", "Deva", "Beng", "Guru", "Gujr", "Orya", "Taml", "Telu", "Knda",
                  "Mlym", "Sinh", "Mymr", "Khmr", "Tibt", "Thaa")
_JOINER_NEIGHBOUR = "".join(rf"\p{{scx={s}}}" for s in JOINER_SCRIPTS)
# ZWJ between emoji (family, profession sequences) and before a variation selector stays in every language
_EMOJI = r"\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F\u20E3"
_JOINER_OK = regex.compile(rf"[{_JOINER_NEIGHBOUR}{_EMOJI}]", regex.V1)
_JOINERS = re.compile("[\u200c\u200d]+")


def stray_joiners(text: str) -> list[tuple[int, int]]:
    """(start, end) of each run of ZWNJ/ZWJ with neither neighbour a letter of a JOINER_SCRIPTS script
    or part of an emoji sequence (a few single-character matches per run, not a regex over the text)."""
    if "\u200c" not in text and "\u200d" not in text:
        return []
    return [m.span() for m in _JOINERS.finditer(text)
            if not (m.start() and _JOINER_OK.match(text, m.start() - 1))
            and not (m.end() < len(text) and _JOINER_OK.match(text, m.end()))]
_UNSPACED_NEIGHBOUR = "".join(rf"\p{{scx={s}}}" for s in UNSPACED if s != "Jpan") + r"\p{scx=Hira}\p{scx=Kana}"
# ZWSP marks word boundaries in the scripts written without spaces (Thai, Lao, Khmer, Burmese, Tibetan,
# Japanese): kept between two of their characters, once; elsewhere removed
_ZWSP = regex.compile(rf"(?<=[{_UNSPACED_NEIGHBOUR}]\p{{M}}*)\u200b+(?=[{_UNSPACED_NEIGHBOUR}])|(\u200b+)", regex.V1)
# always removed: byte order mark / ZWNBSP, soft hyphen, deprecated format characters, interlinear annotation
_ALWAYS = re.compile("[\ufeff\u00ad\u206a-\u206f\ufff9-\ufffb]")
_BIDI = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_RTL = regex.compile(r"[\p{bc=R}\p{bc=AL}]")


def invisibles(text: str, ctx: Context) -> str:
    """Zero-width space, BOM, soft hyphen and stray bidi controls removed; ZWNJ/ZWJ kept next to a
    letter of a script that needs them (JOINER_SCRIPTS) or inside an emoji sequence."""
    if text.isascii():
        return text
    text = _ALWAYS.sub("", text)
    if "\u200b" in text:
        text = _ZWSP.sub(lambda m: "" if m.group(1) else "\u200b", text)
    if "\u200c" in text or "\u200d" in text:
        for start, end in reversed(stray_joiners(text)):
            text = text[:start] + text[end:]
    if _BIDI.search(text):
        text = _bidi(text, ctx.rtl)
    return text


_OPENERS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c",
            "\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"}


def _bidi(text: str, rtl: bool) -> str:
    """Bidi controls in text without right-to-left letters removed; in RTL text, the marks (LRM, RLM,
    ALM) and balanced embeddings/isolates kept, and an opener without its closer (or a closer without
    an opener) removed."""
    if not rtl:
        return _BIDI.sub("", text)
    keep = [True] * len(text)
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch in _OPENERS:
            stack.append(i)
        elif ch in ("\u202c", "\u2069"):
            if stack and _OPENERS[text[stack[-1]]] == ch:
                stack.pop()
            else:
                keep[i] = False
        elif ch == "\n":  # embeddings end at a paragraph end (UAX #9)
            for j in stack:
                keep[j] = False
            stack.clear()
    for j in stack:
        keep[j] = False
    return "".join(ch for ch, k in zip(text, keep) if k)


def nfc(text: str, ctx: Context) -> str:
    """NFC at unicodedata2's Unicode version (composed accents, nukta letters and two-part vowels in
    their canonical form); NFKC where the language opts in."""
    if text.isascii():
        return text
    return unicodedata2.normalize("NFKC" if ctx.rules.nfkc else "NFC", text)


_PRESENTATION = re.compile("[\ufb50-\ufd3d\ufd50-\ufdc7\ufe70-\ufefc]")


@cache
def _presentation(ch: str) -> str:
    folded = unicodedata2.normalize("NFKC", ch)
    return ch if folded.startswith(" ") or folded == ch else folded


def presentation_forms(text: str, ctx: Context) -> str:
    """Arabic presentation forms (positional glyphs a PDF or an old renderer left in the text) -> the
    letters they show. Not the word ligatures U+FD40-FD4F, U+FDF0-FDFF (ﷺ ﷲ, written as such) nor the isolated
    harakat forms that decompose to a space and a mark."""
    if not _PRESENTATION.search(text):
        return text
    return _PRESENTATION.sub(lambda m: _presentation(m.group(0)), text)


def letter_variants(text: str, ctx: Context) -> str:
    """The language's own letters for look-alikes typed on another layout (languages/*.yaml `letters`:
    Arabic yeh/kaf in Persian, Dari, Urdu, Sorani; Arabic-Indic digits where extended ones are written)."""
    letters = ctx.rules.letters
    if not letters or text.isascii():
        return text
    return text.translate(_table(tuple(sorted(letters.items()))))


@cache
def _table(items: tuple[tuple[str, str], ...]) -> dict[int, str]:
    return {ord(k): v for k, v in items}


_TATWEEL_SCRIPTS = ("Arab", "Syrc")


def tatweel(text: str, ctx: Context) -> str:
    """The Arabic tatweel U+0640 (a stretch for justification, not a letter) removed in Arabic-script
    languages, except where it carries a mark (ـَ written alone)."""
    if ctx.script not in _TATWEEL_SCRIPTS or "\u0640" not in text:
        return text
    return re.sub("\u0640+(?![\u064b-\u065f\u0670])", "", text)


# Independent vowels typed as a vowel letter + a vowel sign: the sequences the Unicode Standard marks
# "do not use" (ch. 12, Tables 12-1 Devanagari, 12-6 Gurmukhi, 12-11 Gujarati, and the Bengali and Oriya
# vowel letter AA); NFC does not join them (they are not canonical equivalents)
INDIC_VOWELS = {
    "\u0905\u093e": "\u0906", "\u0905\u0949": "\u0911", "\u0905\u094a": "\u0912", "\u0905\u094b": "\u0913",
    "\u0905\u094c": "\u0914", "\u0905\u0945": "\u0972", "\u0905\u0946": "\u0904", "\u090f\u0945": "\u090d",
    "\u090f\u0946": "\u090e", "\u090f\u0947": "\u0910",
    "\u0985\u09be": "\u0986",
    "\u0a05\u0a3e": "\u0a06", "\u0a05\u0a48": "\u0a10", "\u0a05\u0a4c": "\u0a14", "\u0a72\u0a3f": "\u0a07",
    "\u0a72\u0a40": "\u0a08", "\u0a72\u0a47": "\u0a0f", "\u0a73\u0a41": "\u0a09", "\u0a73\u0a42": "\u0a0a",
    "\u0a73\u0a4b": "\u0a13",
    "\u0a85\u0abe": "\u0a86", "\u0a85\u0ac5": "\u0a8d", "\u0a85\u0ac7": "\u0a8f", "\u0a85\u0ac8": "\u0a90",
    "\u0a85\u0ac9": "\u0a91", "\u0a85\u0acb": "\u0a93", "\u0a85\u0acc": "\u0a94",
    "\u0b05\u0b3e": "\u0b06",
}
_INDIC_VOWELS = re.compile("|".join(INDIC_VOWELS))


def indic_vowels(text: str, ctx: Context) -> str:
    """Independent vowels typed as two parts (INDIC_VOWELS) -> the one letter."""
    if text.isascii():
        return text
    return _INDIC_VOWELS.sub(lambda m: INDIC_VOWELS[m.group(0)], text)


DANDA_SCRIPTS = ("Deva", "Beng", "Guru", "Orya")  # scripts whose sentences end with । (Gujarati, Tamil... use .)


@cache
def _danda(script: str) -> re.Pattern:
    return regex.compile(rf"(?<=[\p{{scx={script}}}][\p{{M}}]*[ \t]?)(\|\|?)(?=[\s\"'”’)\]]|$)", regex.V1)


def danda(text: str, ctx: Context) -> str:
    """An ASCII `|` (`||`) typed after a word of a danda script -> । (॥). Lines of a Markdown table are
    left alone (their pipes are cell borders)."""
    if ctx.script not in DANDA_SCRIPTS or "|" not in text:
        return text
    pattern = _danda(ctx.script)
    fold = lambda m: "\u0965" if len(m.group(1)) == 2 else "\u0964"  # noqa: E731
    if not any(TABLE_RULE.match(line) and "-" in line for line in text.split("\n")):
        return pattern.sub(fold, text)
    return "\n".join(line if "|" in line else pattern.sub(fold, line) for line in text.split("\n"))


_ARABIC_PUNCTUATION = regex.compile(r"(?<=[\p{scx=Arab}][\p{M}]*[ \t]?)([?,;])(?=\s|$|[\"'»”)\]])", regex.V1)
_ARABIC_MARKS = {"?": "\u061f", ",": "\u060c", ";": "\u061b"}


def arabic_punctuation(text: str, ctx: Context) -> str:
    """A Latin ? , ; typed after an Arabic-script word -> ؟ ، ؛ (in Arabic-script languages)."""
    if ctx.script != "Arab" or not any(c in text for c in "?,;"):
        return text
    return _ARABIC_PUNCTUATION.sub(lambda m: _ARABIC_MARKS[m.group(1)], text)


_ETHIOPIC_STOP = regex.compile(r"(?<=[\p{scx=Ethi}][ \t]?)::(?!:)", regex.V1)


def ethiopic_punctuation(text: str, ctx: Context) -> str:
    """`::` typed after an Ethiopic word for the full stop ። (Amharic keyboards without it). The old
    two-wordspace stop ፡፡ is native and stays."""
    if ctx.script != "Ethi" or "::" not in text:
        return text
    return _ETHIOPIC_STOP.sub("\u1362", text)


_TONES = "\u0e48\u0e49\u0e4a\u0e4b"
_THAI = [(re.compile(f"\u0e4d([{_TONES}]?)\u0e32"), "\\1\u0e33"),  # NIKHAHIT + SARA AA -> SARA AM
         (re.compile(f"\u0e33([{_TONES}])"), "\\1\u0e33"),  # a tone mark after SARA AM: before it
         (re.compile("\u0e40\u0e40"), "\u0e41"),  # two SARA E -> SARA AE
         (re.compile("([\u0e31\u0e34-\u0e3a\u0e47-\u0e4e])\\1+"), "\\1")]  # a doubled vowel or tone mark
_LAO_TONES = "\u0ec8\u0ec9\u0eca\u0ecb"
_LAO = [(re.compile(f"\u0ecd([{_LAO_TONES}]?)\u0eb2"), "\\1\u0eb3"), (re.compile(f"\u0eb3([{_LAO_TONES}])"), "\\1\u0eb3"),
        (re.compile("\u0ec0\u0ec0"), "\u0ec1"), (re.compile("([\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd])\\1+"), "\\1")]


_THAI_BLOCK, _LAO_BLOCK, _KHMER_BLOCK = (re.compile("[\u0e00-\u0e7f]"), re.compile("[\u0e80-\u0eff]"),
                                        re.compile("[\u1780-\u17ff]"))


def thai_vowels(text: str, ctx: Context) -> str:
    """Thai typed as it looks, not as it is spelled (the sequences pythainlp's normalize documents):
    NIKHAHIT + SARA AA -> SARA AM, a tone mark after SARA AM moved before it, SARA E twice -> SARA
    AE, a doubled mark once."""
    if not _THAI_BLOCK.search(text):
        return text
    for pattern, replacement in _THAI:
        text = pattern.sub(replacement, text)
    return text


def lao_vowels(text: str, ctx: Context) -> str:
    """The Lao counterparts of thai_vowels (NIGGAHITA + AA -> AM, ...)."""
    if not _LAO_BLOCK.search(text):
        return text
    for pattern, replacement in _LAO:
        text = pattern.sub(replacement, text)
    return text


# The Unicode Standard ch. 16 (Khmer): deprecated independent vowels, vowel signs typed in two parts,
# and COENG RO written before another subscript (it is spelled last)
_KHMER = [(re.compile("\u17a3"), "\u17a2"), (re.compile("\u17a4"), "\u17a2\u17b6"),
          (re.compile("\u17c1\u17b8"), "\u17be"), (re.compile("\u17c1\u17b6"), "\u17c4"),
          (re.compile("(\u17d2\u179a)(\u17d2[\u1780-\u17a2])"), "\\2\\1")]


def khmer_vowels(text: str, ctx: Context) -> str:
    """Khmer spelling sequences (_KHMER): deprecated letters, two-part vowels, COENG RO order."""
    if not _KHMER_BLOCK.search(text):
        return text
    for pattern, replacement in _KHMER:
        text = pattern.sub(replacement, text)
    return text


_VI_TONE = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng
_VI_WORD = regex.compile(r"[\p{Latin}\p{M}]{2,}", regex.V1)
_VI_VOWELS = set("aeiouy")


def vietnamese_tones(text: str, ctx: Context) -> str:
    """A Vietnamese tone mark on the vowel the orthography puts it on: on the modified vowel (â ê ô ơ
    ư ă; ơ in ươ), the middle of three, the second of two before a final consonant, the first of other
    open pairs; open oa/oe/uy take it on either (old hòa, new hoà) as `tone_marks` says."""
    if ctx.lang is None or not ctx.lang.startswith("vie_") or text.isascii():
        return text
    return _VI_WORD.sub(lambda m: _vi_word(m.group(0), ctx.rules.tone_marks), text)


def _vi_word(word: str, style: str) -> str:
    letters: list[list[str]] = []  # [base, modifiers..., tone?] per letter
    for ch in unicodedata2.normalize("NFD", word):
        if unicodedata.combining(ch) and letters:
            letters[-1].append(ch)
        else:
            letters.append([ch])
    toned = [i for i, l in enumerate(letters) if any(c in _VI_TONE for c in l[1:])]
    if len(toned) != 1:
        return word
    bases = [l[0].lower() for l in letters]
    start = 0
    if bases[:2] == ["q", "u"] or (bases[:2] == ["g", "i"] and len(bases) > 2 and bases[2] in _VI_VOWELS):
        start = 2
    while start < len(bases) and bases[start] not in _VI_VOWELS:
        start += 1
    end = start
    while end < len(bases) and bases[end] in _VI_VOWELS:
        end += 1
    if end == start or end - start > 3 or any(b in _VI_VOWELS for b in bases[end:]):
        return word
    nucleus = list(range(start, end))
    modified = [i for i in nucleus if any(c in "\u0302\u0306\u031b" for c in letters[i][1:])]
    if len(nucleus) == 1:  # the tone of "qu", "gi" + vowel belongs on that vowel
        allowed = nucleus
    elif modified:
        allowed = [modified[-1]]
    elif len(nucleus) == 3:
        allowed = [nucleus[1]]
    elif end < len(bases):  # a final consonant
        allowed = [nucleus[-1]]
    elif "".join(bases[start:end]) in ("oa", "oe", "uy"):
        allowed = {"old": [nucleus[0]], "new": [nucleus[1]], "keep": [nucleus[1], nucleus[0]]}[style]
    else:
        allowed = [nucleus[0]]
    if toned[0] in allowed:
        return word
    tone = next(c for c in letters[toned[0]][1:] if c in _VI_TONE)
    letters[toned[0]].remove(tone)
    letters[allowed[0]].append(tone)
    return unicodedata2.normalize("NFC", "".join("".join(l) for l in letters))


_SPACE_RUN = re.compile(r"(?<=\S)[ \u2000-\u200a\u205f]{2,}(?=\S)|[\u2000-\u200a\u205f]")
_NBSP = re.compile("[\u00a0\u202f]")
_NBSP_DIGITS = regex.compile(r"(?<=\d)[\u00a0\u202f](?=\d)", regex.V1)


def spaces(text: str, ctx: Context) -> str:
    """A run of spaces inside a line -> one space (indentation, the two spaces of a Markdown line break
    and newlines stay); typographic spaces (en, em, thin...) -> a space; no-break spaces kept where the
    language writes them (`no_break_spaces`) or between digits, else a space."""
    if "  " not in text and text.isascii():
        return text
    if not ctx.rules.no_break_spaces and _NBSP.search(text):
        kept = {m.start() for m in _NBSP_DIGITS.finditer(text)}
        text = "".join(" " if ch in "\u00a0\u202f" and i not in kept else ch for i, ch in enumerate(text))
    return _SPACE_RUN.sub(" ", text)


Rule = Callable[[str, Context], str]
# name -> (version, rule), in the order they run: a rule's version changes whenever what it does changes
RULES: dict[str, tuple[int, Rule]] = {
    "mojibake": (1, mojibake),
    "zawgyi": (1, zawgyi),
    "line_ends": (1, line_ends),
    "controls": (1, controls),
    "invisibles": (1, invisibles),
    "nfc": (1, nfc),
    "presentation_forms": (1, presentation_forms),
    "letter_variants": (1, letter_variants),
    "tatweel": (1, tatweel),
    "indic_vowels": (1, indic_vowels),
    "danda": (1, danda),
    "arabic_punctuation": (1, arabic_punctuation),
    "ethiopic_punctuation": (1, ethiopic_punctuation),
    "thai_vowels": (1, thai_vowels),
    "lao_vowels": (1, lao_vowels),
    "khmer_vowels": (1, khmer_vowels),
    "vietnamese_tones": (1, vietnamese_tones),
    "spaces": (1, spaces),
}
ZAWGYI_SAMPLE = 400  # prose characters the Zawgyi detector reads (it is made for SMS-length text)
MAX_PASSES = 4  # passes until nothing changes (one for clean text, two for most broken text)

# A character of nothing but ASCII text that some rule changes: CR, C0 controls, DEL, two spaces
_ASCII_WORK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|  ")


class Standardised(NamedTuple):  # a tuple: made once per row, on the hot path of verification
    text: str
    rules: tuple[str, ...]  # names of the rules that changed it, in RULES order

    @property
    def broken(self) -> bool:
        """Still holds U+FFFD after repair: bytes were lost before the text reached synth (reason `encoding`)."""
        return broken_text(self.text)


def broken_text(text: str) -> bool:
    """The text holds U+FFFD (a character lost to a bad decode): rejected with reason `encoding`."""
    return "\ufffd" in text


def encoding_verdicts(texts: Iterable[str]) -> list[tuple[list[str], list[str]]]:
    """(reasons, details) per text, reason `encoding` where it still holds U+FFFD: what the verifier
    starts each row's verdict from (every filter still scores the row, so its scores stay comparable)."""
    out = []
    for text in texts:
        at = text.find("\ufffd")
        out.append(([], []) if at < 0 else
                   (["encoding"], [f"U+FFFD (a lost character) at {at}: ...{text[max(0, at - 20):at + 20]!r}..."]))
    return out


def library_versions() -> dict[str, str]:
    """The libraries whose behaviour the rules depend on (they enter the config hash)."""
    from importlib.metadata import version

    return {"ftfy": version("ftfy"), "unicodedata2": unicodedata2.unidata_version,
            "myanmartools": version("myanmartools"), "python-myanmar": version("python-myanmar")}


def _doubled(marks: str, patterns: list[str]) -> str:
    """`patterns`, and each Thai/Lao mark of the class body `marks` twice as a literal: a gate whose
    every branch starts with a literal or a class (`re` then skips ahead by the first characters)."""
    chars = [chr(c) for c in range(0x0E00, 0x0F00) if re.fullmatch(f"[{marks}]", chr(c))]
    return "|".join(patterns + [c + c for c in chars])


# Per rule, what it can act on: characters (a class body) and sequences (regexes). A text holding none of
# its language's active rules' triggers, already in NFC, is returned as it is without running any rule
# (most clean text): one class search and a few literal-led searches, fast on long texts.
def _triggers(rules: LanguageRules, script: str | None, lang: str | None) -> dict[str, tuple[str, list[str]]]:
    out = {
        "mojibake": (_MOJIBAKE_CHARS, _MOJIBAKE_PAIRS),  # zawgyi: Standardiser._may_be_zawgyi
        "line_ends": ("\r\x85\u2028\u2029", []), "controls": ("\x00-\x08\x0b\x0c\x0e-\x1f\x7f", []),
        # ZWNJ/ZWJ: Standardiser.apply asks stray_joiners (they are most Persian, Bengali, Sinhala texts)
        "invisibles": ("\ufeff\u00ad\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\u206a-\u206f\ufff9-\ufffb", []),
        "presentation_forms": ("\ufb50-\ufd3d\ufd50-\ufdc7\ufe70-\ufefc", []),
        "indic_vowels": ("", [_INDIC_VOWELS.pattern]),
        "thai_vowels": ("", [_doubled("\u0e31\u0e34-\u0e3a\u0e47-\u0e4e", [p.pattern for p, _ in _THAI[:3]])]),
        "lao_vowels": ("", [_doubled("\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd", [p.pattern for p, _ in _LAO[:3]])]),
        "khmer_vowels": ("\u17a3\u17a4", ["\u17c1[\u17b6\u17b8]|\u17d2\u179a\u17d2"]),
        "spaces": ("\u00a0\u202f\u2000-\u200a\u205f", ["  "]),
    }
    if rules.letters:
        out["letter_variants"] = ("".join(re.escape(k) for k in rules.letters), [])
    if script in _TATWEEL_SCRIPTS:
        out["tatweel"] = ("\u0640", [])
    if script in DANDA_SCRIPTS:
        out["danda"] = ("|", [])
    if script == "Arab":
        out["arabic_punctuation"] = ("?,;", [])
    if script == "Ethi":
        out["ethiopic_punctuation"] = ("", ["::"])
    if lang and lang.startswith("vie_"):
        out["vietnamese_tones"] = ("\u0080-\U0010ffff", [])
    return out


def _gates(triggers: list[tuple[str, list[str]]]) -> tuple[re.Pattern, ...]:
    """One search for every trigger character, one for the sequences that start with a literal (a
    branch of literals lets `re` skip ahead by their first characters), one per other sequence."""
    chars = "".join(c for c, _ in triggers)
    sequences = [q for _, seqs in triggers for q in seqs]
    literal = [q for q in sequences if not q.startswith("[")]
    patterns = ([f"[{chars}]"] if chars else []) + [q for q in sequences if q.startswith("[")] + \
        (["|".join(literal)] if literal else [])
    return tuple(re.compile(p) for p in patterns)




class Standardiser:
    """The stage for a set of languages: `apply(text, lang)`; counts the changes per language and rule."""

    def __init__(self, config: StandardiseConfig | None = None, languages: Mapping[str, object] | None = None):
        self.config = config or StandardiseConfig()
        self.languages = dict(languages or {})  # code -> LanguageSpec (script, standardise)
        self.counts: Counter[tuple[str, str]] = Counter()  # (lang, rule) -> rows changed
        self._contexts: dict[str | None, tuple[LanguageRules, str | None, tuple]] = {}

    def _setup(self, lang: str | None):
        if lang not in self._contexts:
            spec = self.languages.get(lang) if lang else None
            rules = getattr(spec, "standardise", None) or LanguageRules()
            script = getattr(spec, "script", None) or (lang.split("_")[-1] if lang and "_" in lang else None)
            skip = set(self.config.skip) | set(rules.skip)
            active = tuple((name, rule) for name, (_, rule) in RULES.items() if name not in skip)
            gates = _gates([t for name, t in _triggers(rules, script, lang).items() if name not in skip])
            form = None if "nfc" in skip else ("NFKC" if rules.nfkc else "NFC")
            self._contexts[lang] = (rules, script, active, gates, form, "zawgyi" not in skip, "invisibles" not in skip)
        return self._contexts[lang]

    def apply(self, text: str, lang: str | None = None) -> Standardised:
        """`text` standardised for `lang` (a registry code; None or unknown: the rules of no script)."""
        if not self.config.enabled or not text:
            return Standardised(text, ())
        if text.isascii() and "\r" not in text and not _ASCII_WORK.search(text):
            return Standardised(text, ())
        rules, script, active, gates, form, zawgyi_on, invisibles_on = self._setup(lang)
        if not any(g.search(text) for g in gates) and (form is None or unicodedata2.normalize(form, text) == text) \
                and not (zawgyi_on and _MYANMAR.search(text) and (len(text) < ZAWGYI_SHORT or _ZAWGYI_HINT.search(text))) \
                and not (invisibles_on and stray_joiners(text)):
            return Standardised(text, ())
        changed: set[str] = set()
        for _ in range(MAX_PASSES):  # each pass reads its own text only: then the result is a fixed point
            after = self._pass(text, Context(lang, script, rules, bool(_RTL.search(text))), active, changed)
            if after == text:
                break
            text = after
        names = tuple(name for name in RULES if name in changed)
        for name in names:
            self.counts[(lang or "", name)] += 1
        return Standardised(text, names)

    def _pass(self, text: str, ctx: Context, active: tuple, changed: set[str]) -> str:
        pieces = protected_pieces(text)
        if _MYANMAR.search(text) and any(name == "zawgyi" for name, _ in active):
            prose = "".join(p for p, protected in pieces if not protected)
            if (len(prose) < ZAWGYI_SHORT or _ZAWGYI_HINT.search(prose)) and self._zawgyi(prose[:ZAWGYI_SAMPLE]):
                ctx = replace(ctx, zawgyi=True)
        for name, rule in active:
            for i, (piece, protected) in enumerate(pieces):
                if protected:
                    continue
                if name == "spaces" and len(pieces) > 1:  # a space run reaching a span: read with the span's edge
                    left = pieces[i - 1][0][-1] if i else ""
                    right = pieces[i + 1][0][0] if i + 1 < len(pieces) else ""
                    after = rule(left + piece + right, ctx)
                    after = after[len(left):len(after) - len(right)]
                else:
                    after = rule(piece, ctx)
                if after != piece:
                    pieces[i] = (after, False)
                    changed.add(name)
        return "".join(p for p, _ in pieces)

    def _zawgyi(self, sample: str) -> bool:
        """Zawgyi, and Unicode once converted (a converted text the detector still calls Zawgyi is not
        Burmese in either encoding: left as it is, so standardising again changes nothing)."""
        threshold = self.config.zawgyi_threshold
        return zawgyi_probability(sample) >= threshold and \
            zawgyi_probability(_zawgyi()[1].convert(sample, "zawgyi", "unicode")) < threshold

    def count(self, lang: str | None, rules: Iterable[str]) -> None:
        """Count a change made by a copy of this stage in another process (a verify worker)."""
        for name in rules:
            self.counts[(lang or "", name)] += 1

    def texts(self, texts: Iterable[str], langs: Iterable[str | None]) -> list[Standardised]:
        return [self.apply(t, l) for t, l in zip(texts, langs)]

    def manifest(self) -> dict[str, dict[str, int]]:
        """Rows changed per language and rule: {lang: {rule: n}}."""
        out: dict[str, dict[str, int]] = {}
        for (lang, rule), n in sorted(self.counts.items()):
            out.setdefault(lang, {})[rule] = n
        return out

    def fingerprint(self) -> dict:
        """What the stage's output depends on: for the config hash (rule versions, libraries, the
        preset's section, each language's own rules)."""
        return {"rules": {name: version for name, (version, _) in RULES.items()}, "libraries": library_versions(),
                "config": self.config.model_dump(mode="json"),
                "languages": {code: getattr(spec, "standardise", LanguageRules()).model_dump(mode="json")
                              for code, spec in sorted(self.languages.items())
                              if getattr(spec, "standardise", None) is not None}}


# --- tables -------------------------------------------------------------------------------------------

RAW_COLUMN, RULES_COLUMN = "raw_text", "standardise_rules"


def standardise_batch(batch, standardiser: Standardiser, column: str = "text"):
    """An Arrow batch (or table) of the `synth verify` schema with `column` standardised for each
    row's `lang`, plus `raw_text` (the original where it changed, else null) and `standardise_rules`.
    A batch that already holds them (the output of an earlier pass) keeps its first original and
    the union of the rules: standardising again changes nothing."""
    texts, langs = batch.column(column).to_pylist(), batch.column("lang").to_pylist()
    return with_changes(batch, changed_rows(standardiser, texts, langs), column)


def changed_rows(standardiser: Standardiser, texts: list, langs: list) -> dict[int, Standardised]:
    """Row index -> its standardised text, for the rows the stage changes (the rest stay as they are)."""
    apply = standardiser.apply
    return {i: r for i, (t, lang) in enumerate(zip(texts, langs)) if (r := apply(t or "", lang)).rules}


def with_changes(batch, changed: Mapping[int, Standardised], column: str = "text"):
    """`batch` with the standardised text of the rows in `changed` (made here or by a verify worker),
    `raw_text` and `standardise_rules` (see standardise_batch)."""
    import pyarrow as pa

    n, names = batch.num_rows, batch.schema.names
    texts = batch.column(column).to_pylist() if changed or RAW_COLUMN in names else []
    raw: list = [None] * n
    rules: list[list[str]] = [[] for _ in range(n)] if changed or RULES_COLUMN in names else []
    new_texts = list(texts)
    for i, result in changed.items():
        raw[i], rules[i], new_texts[i] = texts[i], list(result.rules), result.text
    if RAW_COLUMN in names:
        raw = [old if old is not None else new for old, new in zip(batch.column(RAW_COLUMN).to_pylist(), raw)]
    if RULES_COLUMN in names:
        rules = [[name for name in RULES if name in set(old or ()) | set(new)]
                 for old, new in zip(batch.column(RULES_COLUMN).to_pylist(), rules)]
    text_column = pa.array(new_texts, pa.string()) if changed else batch.column(column)
    if rules:
        rules_column = pa.array(rules, pa.list_(pa.string()))
    else:  # no row changed: every list empty, built from offsets alone
        rules_column = pa.ListArray.from_arrays(pa.array([0] * (n + 1), pa.int32()), pa.array([], pa.string()))
    columns = {column: text_column, RAW_COLUMN: pa.array(raw, pa.string()), RULES_COLUMN: rules_column}
    arrays = [columns.get(name, batch.column(name)) for name in names]
    out_names = list(names) + [name for name in (RAW_COLUMN, RULES_COLUMN) if name not in names]
    arrays += [columns[name] for name in out_names[len(names):]]
    make = pa.RecordBatch.from_arrays if isinstance(batch, pa.RecordBatch) else pa.Table.from_arrays
    return make(arrays, names=out_names)

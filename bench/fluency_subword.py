"""Measures, per language, the two references of fluency's subword backend and writes
synth/verify/fluency/fluency_subword.json (not a benchmark: a maintenance script, run when the model or the
registry changes).

The references come from text independent of every benchmark: Django's translation catalogs (as
bench/fluency_dictionaries.py reads them: msgstr only, placeholders and markup removed), written by
native translators. Per registry language XLM-R was trained on and Django translates into:
  real    the letter-weighted mean log-probability per character (fluency_subword.logprob_per_char)
          of the catalog's words of 4+ letters in the language's script, as they occur
  pseudo  the same for pseudo-words drawn from a character trigram model of those words
          (fluency._pseudo_words) that are not themselves words of the catalog

Tried and not written (bench/README.md): Burmese, whose Django catalog is under MIN_CHARS;
its other independent texts (Debian's firefox-esr-l10n-my, GNOME's gtk30/gedit/gnome-control-center
catalogs, iso-codes' country names, tessdata's word list, burmesenlp's idioms) all give references under
MIN_GAP apart, and on the odd UDHR articles each lets pseudo-words over the bar. Lao, which has no Django
catalog nor other independent running text in Debian or on PyPI (word lists only: their single words read
far below running text, so every UDHR row, pseudo-words too, scores 1).

    .venv/bin/python bench/fluency_subword.py    # downloads the Django wheel once with pip
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fluency_dictionaries import DJANGO, catalogs  # noqa: E402

from synth.languages import load_registry  # noqa: E402
from synth.text import script_shares  # noqa: E402
from synth.verify.fluency.scorer import MIN_LETTERS, _pseudo_words, words  # noqa: E402
from synth.verify.fluency.subword import MIN_GAP, REFERENCES, logprob_per_char, trained_on, vocabulary  # noqa: E402

MIN_CHARS = 2000  # letters of catalog words of 4+ letters in the script, below which no reference is written
PSEUDO = 6000


def level(items: list[str], vocab: dict[str, float], longest: int) -> float:
    total = sum(len(w) for w in items)
    return sum(len(w) * logprob_per_char(w, vocab, longest) for w in items) / total


def references(strings: list[str], script: str, rng: random.Random) -> dict | None:
    found = [w for s in strings for w in words(s) if len(w) >= MIN_LETTERS]
    shares = script_shares(found, script)
    real = [w for w, share in zip(found, shares) if share == 1.0]
    if sum(map(len, real)) < MIN_CHARS:
        return None
    known = {w.lower() for w in real}
    pseudo = [w for w in _pseudo_words(real, PSEUDO, rng) if len(w) >= MIN_LETTERS and w not in known]
    vocab = vocabulary(script)
    longest = max(map(len, vocab))
    return {"words": len(real), "letters": sum(map(len, real)), "pseudo_words": len(pseudo),
            "real": round(level(real, vocab, longest), 4), "pseudo": round(level(pseudo, vocab, longest), 4)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, f"django=={DJANGO}"],
                       check=True)
        texts = catalogs(next(Path(tmp).glob("*.whl")))
    out = {}
    for code, spec in sorted(load_registry().items()):
        strings = texts.get(spec.iso639_1 or "", []) or texts.get(spec.iso639_3, [])
        if not trained_on(spec) or not strings:
            continue
        ref = references(strings, spec.script, random.Random(0))
        if ref is None:
            continue
        out[code] = ref
        gap = ref["real"] - ref["pseudo"]
        print(f"{code}: {ref['words']} words, real {ref['real']:.2f}, pseudo {ref['pseudo']:.2f}, gap {gap:.2f}"
              + ("  TOO CLOSE" if gap < MIN_GAP else ""))
    REFERENCES.write_text(json.dumps({"source": f"Django {DJANGO} translation catalogs (msgstr)",
                                      "languages": out}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCES}")


if __name__ == "__main__":
    main()

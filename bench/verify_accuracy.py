"""Accuracy of synth's offline verification vs OpusFilter on held-out UDHR pairs with injected defects.

Test set (bench/_udhr_pairs.py, fixed seed): English UDHR article -> the same article in one of 30
languages that lid.176 covers, every article longer than 80 characters; per (language, article) one
good pair and one of each defect made from real text: wrong_language, copy, truncation (20-40%),
repetition loop, code_switch (second half in English), and misaligned (another article's text).

synth: `Verifier` with the `default` preset, as `synth verify` runs it offline (no LASER weights, no
back-translation, so laser and round trip do not run). A fresh Verifier per defect kind, so exact
dedup never fires between a good pair and a defect built from the same text.
OpusFilter 3.3.1 (its own venv, see bench/_opusfilter.py): LanguageIDFilter with fastText lid.176 on
both sides, LengthRatioFilter (unit char, threshold 2), RepetitionFilter (defaults).

On the good + non-semantic-defect pairs it prints precision of accepted (share of accepted pairs that
are good), recall of good pairs, F1, the share of code-switched pairs accepted and each defect's catch
rate; misaligned pairs are reported apart (semantic: needs LASER or a round trip). Last line:
`ratio <synth F1 / OpusFilter F1>`.

    .venv/bin/python bench/verify_accuracy.py                # ~1-2 min; creates the OpusFilter venv once
    .venv/bin/python bench/verify_accuracy.py --examples 5   # more examples of misses
"""

from __future__ import annotations

import argparse
import collections
import time

import _opusfilter
from _udhr_pairs import LANGUAGES, NON_SEMANTIC, SEED, Pair, build_pairs, language_specs


def run_synth(pairs: list[Pair]) -> dict[str, dict]:
    from synth.verify import Candidate, Verifier, load_preset

    preset, specs = load_preset("default"), language_specs()
    out = {}
    for kind in dict.fromkeys(p.kind for p in pairs):
        verifier = Verifier(preset, specs)
        group = [p for p in pairs if p.kind == kind]
        batch = [Candidate(id=p.id, lang=p.lang, text=p.text, source=p.source, source_lang="eng_Latn") for p in group]
        for p, verdict in zip(group, verifier.verify(batch)):
            out[p.id] = {"accepted": verdict.accepted, "reasons": verdict.reasons, "scores": verdict.scores}
    print(f"synth filters run: {', '.join(verifier.names)}; not run: {verifier.not_run}")
    return out


def run_opusfilter(pairs: list[Pair]) -> dict[str, dict]:
    groups: dict[str, list[Pair]] = collections.defaultdict(list)
    for p in pairs:
        groups[p.lid_label].append(p)
    result = _opusfilter.decisions({label: [(p.source, p.text) for p in ps] for label, ps in groups.items()})
    out = {}
    for label, ps in groups.items():
        for p, row in zip(ps, result[label]):
            reasons = [name for name, ok in row["accepted"].items() if not ok]
            out[p.id] = {"accepted": not reasons, "reasons": reasons, "scores": row["scores"]}
    return out


def metrics(pairs: list[Pair], decided: dict[str, dict]) -> dict:
    by_kind: dict[str, list[bool]] = collections.defaultdict(list)
    for p in pairs:
        by_kind[p.kind].append(decided[p.id]["accepted"])
    good_accepted = sum(by_kind["good"])
    defects_accepted = sum(sum(by_kind[k]) for k in NON_SEMANTIC)
    precision = good_accepted / max(good_accepted + defects_accepted, 1)
    recall = good_accepted / len(by_kind["good"])
    catch = {k: 1 - sum(v) / len(v) for k, v in by_kind.items() if k != "good"}
    # the same rates if good and (non-semantic) defective pairs came 1:1 instead of 1:5
    missed = sum(1 - catch[k] for k in NON_SEMANTIC) / len(NON_SEMANTIC)
    return {
        "precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "precision_1to1": recall / max(recall + missed, 1e-9), "catch": catch,
        "code_switch_accepted": 1 - catch["code_switch"],
        "good": len(by_kind["good"]), "defects": sum(len(by_kind[k]) for k in NON_SEMANTIC),
    }


def print_metrics(name: str, m: dict) -> None:
    print(f"\n== {name}: {m['good']} good + {m['defects']} non-semantic defects")
    print(f"precision of accepted {m['precision']:.3f}  (at 1 good : 1 defect {m['precision_1to1']:.3f})")
    print(f"recall of good pairs  {m['recall']:.3f}")
    print(f"F1                    {m['f1']:.3f}")
    print(f"code-switched pairs accepted {m['code_switch_accepted']:.1%}")
    print("catch rate: " + ", ".join(f"{k} {m['catch'][k]:.1%}" for k in NON_SEMANTIC))
    print(f"misaligned (semantic, reported apart): caught {m['catch']['misaligned']:.1%}")


def _fmt_scores(scores: dict) -> str:
    return " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items() if v is not None)


def print_diagnostics(name: str, pairs: list[Pair], decided: dict[str, dict], examples: int) -> None:
    good = [p for p in pairs if p.kind == "good"]
    rejected = [p for p in good if not decided[p.id]["accepted"]]
    reasons = collections.Counter(r for p in rejected for r in decided[p.id]["reasons"])
    langs = collections.Counter(p.lang for p in rejected)
    print(f"\n{name}: good pairs rejected {len(rejected)}/{len(good)}; by filter {dict(reasons)}; "
          f"by language {dict(langs.most_common(8))}")
    for kind in (*NON_SEMANTIC, "misaligned"):
        missed = [p for p in pairs if p.kind == kind and decided[p.id]["accepted"]]
        if not missed:
            continue
        print(f"{name} missed {kind}: {len(missed)}; by language {dict(collections.Counter(p.lang for p in missed).most_common(6))}")
        for p in missed[:examples]:
            note = f" (text in {p.note})" if p.note else ""
            print(f"   {p.id}{note}: {_fmt_scores(decided[p.id]['scores'])}\n      {p.text[:160]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--examples", type=int, default=2, help="examples printed per missed defect kind")
    args = parser.parse_args()

    pairs = build_pairs(seed=args.seed)
    print(f"{len(pairs)} pairs: {len(LANGUAGES)} languages, {sum(p.kind == 'good' for p in pairs)} articles x "
          f"{len({p.kind for p in pairs})} kinds (seed {args.seed})")
    start = time.perf_counter()
    synth = run_synth(pairs)
    synth_time = time.perf_counter() - start
    start = time.perf_counter()
    opus = run_opusfilter(pairs)
    opus_time = time.perf_counter() - start

    print_diagnostics("synth", pairs, synth, args.examples)
    print_diagnostics("opusfilter", pairs, opus, 0)
    ms, mo = metrics(pairs, synth), metrics(pairs, opus)
    print_metrics(f"synth verify, preset default, offline ({synth_time:.0f}s)", ms)
    print_metrics(f"OpusFilter 3.3.1: LanguageIDFilter(fasttext lid.176) + LengthRatioFilter(char, 2) + "
                  f"RepetitionFilter ({opus_time:.0f}s)", mo)
    print(f"\nsynth targets: precision >= 0.98, recall >= 0.90, code-switched accepted <= 5%")
    print(f"precision synth {ms['precision']:.3f} / opusfilter {mo['precision']:.3f} = {ms['precision'] / mo['precision']:.2f}")
    print(f"recall    synth {ms['recall']:.3f} / opusfilter {mo['recall']:.3f} = {ms['recall'] / mo['recall']:.2f}")
    print(f"ratio {ms['f1'] / mo['f1']:.2f}")


if __name__ == "__main__":
    main()

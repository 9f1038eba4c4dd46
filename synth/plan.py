"""Targets -> attempts, round after round, sized by the acceptance rate observed so far (with a
measured rate, just enough to meet each need with high probability: rows beyond a target are surplus,
generated and paid for, then not used).

Each language's target is split over method x category cells in the requested proportions; a cell
that accepts less gets more attempts, so no category is starved. A per-language budget of attempts
(`rows x max_attempts_per_row`) bounds the work: a language that cannot reach its target ends with a
shortfall instead of looping forever.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass

from synth.config import JobConfig, TargetConfig

Cell = tuple[str, str, str]  # (lang, method, category)
Z_95 = 1.645  # one-sided 95%: how surely a round sized from a measured rate meets its cell's need


@dataclass(frozen=True, slots=True)
class Attempt:
    """One planned try at a row. `index` counts attempts per (lang, method, category), so ids are stable.
    Slots: a round holds one per attempt (docs/scaling.md, "What grows with a job")."""

    lang: str
    method: str
    category: str
    index: int

    @property
    def id(self) -> str:
        key = f"{self.lang}|{self.method}|{self.category}|{self.index}"
        return hashlib.sha256(key.encode()).hexdigest()[:20]



def apportion(total: int, weights: dict[tuple[str, str], float]) -> dict[tuple[str, str], int]:
    """Largest-remainder split of `total` over weighted keys (sums exactly to total)."""
    norm = sum(weights.values())
    exact = {k: total * w / norm for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def attempt_budget(job: JobConfig, target: TargetConfig) -> int:
    """Most attempts a target's language may make; also bounds the seeds and sources a job can use."""
    return math.ceil(target.rows * job.plan.max_attempts_per_row)


def seeds_needed(job: JobConfig, target: TargetConfig) -> int:
    """Seeds an ICL target can show: k per attempt, at most its attempt budget of attempts."""
    return attempt_budget(job, target) * job.icl.k


def sources_needed(job: JobConfig) -> dict[str, int]:
    """Most sources per category the translate targets can use: each source is translated at most once
    per language, and no language makes more attempts than its budget."""
    quotas: dict[str, int] = {}
    for target in job.targets:
        if "translate" in target.methods:
            for category in target.categories:
                quotas[category] = max(quotas.get(category, 0), attempt_budget(job, target))
    return quotas


def cell_targets(target: TargetConfig) -> dict[Cell, int]:
    share = target.category_weights or {c: 1.0 for c in target.categories}
    total = sum(share[c] for c in target.categories)
    weights = {(m, c): w * share[c] / total for m, w in target.methods.items() for c in target.categories}
    return {(target.lang, m, c): n for (m, c), n in apportion(target.rows, weights).items()}


@dataclass
class Planner:
    job: JobConfig
    capacity: dict[Cell, int]  # most attempts a cell can ever have (e.g. distinct sources); absent: unlimited

    def __post_init__(self) -> None:
        self.targets: dict[Cell, int] = {}
        for target in self.job.targets:
            self.targets.update(cell_targets(target))
        self.accepted: Counter[Cell] = Counter()
        self.attempted: Counter[Cell] = Counter()
        self.rounds = 0
        self.budget = {t.lang: attempt_budget(self.job, t) for t in self.job.targets}

    def restore(self, attempted: Counter[Cell], accepted: Counter[Cell], rounds: int) -> None:
        """Continue from counts recorded by an earlier, interrupted run."""
        self.attempted, self.accepted, self.rounds = Counter(attempted), Counter(accepted), rounds

    def rate(self, cell: Cell) -> float:
        """Acceptance rate of the cell if it has enough history, else of its language, else the guess."""
        return self.observed(cell)[0]

    def observed(self, cell: Cell) -> tuple[float, int]:
        """`rate` and the attempts it was measured on (0: the configured guess)."""
        if self.attempted[cell] >= 10:
            return self.accepted[cell] / self.attempted[cell], self.attempted[cell]
        lang = cell[0]
        tried = sum(n for c, n in self.attempted.items() if c[0] == lang)
        if tried >= 5:
            return sum(n for c, n in self.accepted.items() if c[0] == lang) / tried, tried
        return self.job.plan.initial_acceptance, 0

    def size(self, need: int, rate: float, seen: int, last_round: bool) -> int:
        """Attempts for a cell that needs `need` more rows: `need / rate` times `oversample` while the rate
        is a guess and in the last round; with a measured rate, the fewest attempts that meet the need
        with ~95% probability (binomial spread of the round plus the rate's own uncertainty from `seen`
        attempts), never more than that. A large round so overshoots by a few percent, not by `oversample`."""
        floor = 1.0 / self.job.plan.max_attempts_per_row
        p = max(rate, floor)
        cap = math.ceil(need / p * self.job.plan.oversample)
        if not seen or last_round or p >= 1.0:
            return cap

        def enough(n: int) -> bool:
            return n * p - Z_95 * math.sqrt(n * p * (1 - p) * (1 + n / seen)) >= need

        lo, hi = math.ceil(need / p), cap
        if not enough(hi):
            return cap
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
        return lo

    def deficit(self, cell: Cell) -> int:
        return max(0, self.targets[cell] - self.accepted[cell])

    def room(self, cell: Cell) -> int:
        return self.capacity.get(cell, 1 << 62) - self.attempted[cell]

    def spent(self, lang: str) -> int:
        return sum(n for c, n in self.attempted.items() if c[0] == lang)

    def next_round(self) -> list[Attempt]:
        """Attempts for the next round; empty when every target is met or nothing more can be tried."""
        if self.rounds >= self.job.plan.max_rounds:
            return []
        attempts: list[Attempt] = []
        left = {lang: self.budget[lang] - self.spent(lang) for lang in self.budget}
        # rates from judged attempts only: attempts planned below for one cell are not failures of
        # its language when the next cell is sized
        rates = {cell: self.observed(cell) for cell in self.targets}
        last_round = self.rounds + 1 >= self.job.plan.max_rounds
        wanted: dict[Cell, int] = {}
        for cell in sorted(self.targets):
            need = self.deficit(cell)
            if need:
                wanted[cell] = max(0, min(self.size(need, *rates[cell], last_round), self.room(cell)))
        for lang, budget in left.items():
            mine = {c: n for c, n in wanted.items() if c[0] == lang and n}
            if sum(mine.values()) > budget:
                # the budget cannot pay for every cell: share it in proportion to what each cell needs,
                # so a cell late in the sort order is not starved by a costly one before it
                share = apportion(max(budget, 0), {c: float(n) for c, n in mine.items()})
                wanted.update({c: min(n, share[c]) for c, n in mine.items()})
        for cell, n in sorted(wanted.items()):
            start = self.attempted[cell]
            attempts.extend(Attempt(*cell, index=start + i) for i in range(n))
            self.attempted[cell] += n
        if attempts:
            self.rounds += 1
        return attempts

    def record_accepted(self, cell: Cell, count: int = 1) -> None:
        self.accepted[cell] += count

    def shortfall(self) -> dict[str, dict]:
        """Per language: rows missing, and why the planner stopped."""
        out = {}
        for lang in self.budget:
            cells = [c for c in self.targets if c[0] == lang]
            missing = sum(self.deficit(c) for c in cells)
            if not missing:
                continue
            if self.spent(lang) >= self.budget[lang]:
                why = f"attempt budget used up ({self.budget[lang]} attempts)"
            elif all(self.room(c) <= 0 for c in cells if self.deficit(c)):
                why = "no unused sources left for the missing cells"
            else:
                why = f"stopped after {self.rounds} rounds (plan.max_rounds)"
            out[lang] = {"missing": missing, "reason": why,
                         "missing_by_cell": {f"{m}/{c}": self.deficit((l, m, c)) for (l, m, c) in cells if self.deficit((l, m, c))}}
        return out

"""The next round's rows per (language, category) from the evaluation's gaps.

gap g = max(0, goal - score); weight w = floor + (1 - floor) * g^a / sum(g^a); rows = next_rows * w / sum(w),
rounded by largest remainder so they sum exactly to next_rows; with a previous round known, at most
`max_growth` times its rows per cell (what a capped cell gives up goes to the uncapped cells by weight).
A cell measured on fewer than `min_items` items gets only the floor (its gap is not trusted).

The method follows the failing level (the level with the largest gap in the cell): language failures
go to ICL from native seeds (translation invites translationese); culture failures move half the cell's
rows to `local_culture` (the ICL and translate prompts carry the language's cultural context); domain
failures keep the job's method mix, and in reasoning and math the pivot-language policy of
languages/*.yaml (`reasoning_language`) keeps applying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from synth.plan import apportion

CULTURE_CATEGORY = "local_culture"
REASONING = ("reasoning", "math")
DEFAULT_METHODS = {"icl": 0.5, "translate": 0.5}  # TargetConfig's default mix


@dataclass
class Cell:
    lang: str
    category: str
    score: float | None
    n: int
    level_gaps: dict[str, float] = field(default_factory=dict)  # level -> its gap, for the method choice
    few_items: bool = False
    gap: float = 0.0
    weight: float = 0.0
    rows: int = 0
    cap: int | None = None
    failing: str | None = None  # the level with the largest gap
    notes: list[str] = field(default_factory=list)


def weights(gaps: list[float], floor: float, power: float) -> list[float]:
    """w_i = floor + (1 - floor) * g_i^a / sum(g^a); with no gap anywhere every cell keeps the floor."""
    powered = [g ** power if g > 0 else 0.0 for g in gaps]
    total = sum(powered)
    if not total:  # every cell at its goal: an even split (each keeps the floor; floor 0: weight 1)
        return [floor or 1.0] * len(gaps)
    return [floor + (1 - floor) * p / total for p in powered]


def split(total: int, w: list[float], caps: list[int | None]) -> list[int]:
    """`total` rows over weights `w`, each at most its cap (None: none), summing to `total` unless every
    cell is capped (then to the caps' sum). Largest remainder rounding."""
    rows = [0] * len(w)
    free = [i for i in range(len(w)) if w[i] > 0 or caps[i] is None]
    left = total
    while left > 0 and free:
        share = apportion(left, {(str(i), ""): (w[i] if sum(w[j] for j in free) > 0 else 1.0) for i in free})
        over = [i for i in free if caps[i] is not None and rows[i] + share[(str(i), "")] > caps[i]]
        if not over:
            for i in free:
                rows[i] += share[(str(i), "")]
            return rows
        for i in over:  # fill the capped cells, take them out, split what is left over the others
            left -= caps[i] - rows[i]
            rows[i] = caps[i]
        free = [i for i in free if i not in over]
    return rows


def allocate(cells: list[Cell], next_rows: int, goal: float, floor: float, power: float, min_items: int,
             previous: dict[tuple[str, str], int] | None, max_growth: float) -> list[Cell]:
    """Fill in gap, weight, cap, rows and the failing level of every cell (in place; also returned)."""
    for c in cells:
        c.few_items = c.n < min_items
        c.gap = 0.0 if c.few_items or c.score is None else max(0.0, goal - c.score)
        if c.few_items:
            c.notes.append(f"few items ({c.n} < min_items {min_items}): floor weight only")
        gaps = {lvl: g for lvl, g in c.level_gaps.items() if g > 0}
        c.failing = max(gaps, key=lambda lvl: (gaps[lvl], lvl)) if gaps and not c.few_items else None
    for c, w in zip(cells, weights([c.gap for c in cells], floor, power)):
        c.weight = w
    caps = []
    for c in cells:
        cap = None
        if previous is not None and (c.lang, c.category) in previous:
            cap = math.floor(max_growth * previous[(c.lang, c.category)])
            c.cap = cap
        caps.append(cap)
    for c, rows in zip(cells, split(next_rows, [c.weight for c in cells], caps)):
        c.rows = rows
        if c.cap is not None and rows >= c.cap:
            c.notes.append(f"capped at {max_growth:g}x the previous round's {previous[(c.lang, c.category)]} rows")
    return cells


@dataclass
class TargetPlan:
    """One language's target of the next round, with every decision explained."""

    lang: str
    rows: int
    methods: dict[str, float]
    category_rows: dict[str, int]
    notes: list[str]


def targets(cells: list[Cell], categories_of_translation: str = "open_qa") -> list[TargetPlan]:
    """Cells -> one target per language: rows per synth category and the method mix the failing levels
    ask for (module docstring)."""
    from synth.config import CATEGORIES

    out: list[TargetPlan] = []
    for lang in sorted({c.lang for c in cells}):
        mine = [c for c in cells if c.lang == lang]
        per_category: dict[str, int] = {}
        icl_rows = other_rows = 0
        notes: list[str] = []
        for c in mine:
            if not c.rows:
                continue
            category = c.category
            if category not in CATEGORIES:  # translation items: no synth category of their own
                category = categories_of_translation
                notes.append(f"{c.category}: {c.rows} rows go to {category} (no synth category of its own)")
            rows = c.rows
            if c.failing == "culture" and category != CULTURE_CATEGORY:
                moved = rows // 2
                per_category[CULTURE_CATEGORY] = per_category.get(CULTURE_CATEGORY, 0) + moved
                rows -= moved
                notes.append(f"{c.category}: culture fails (gap {c.level_gaps['culture']:.2f}): {moved} of its "
                             f"{c.rows} rows to {CULTURE_CATEGORY}")
            per_category[category] = per_category.get(category, 0) + rows
            if c.failing == "language":
                icl_rows += c.rows
                notes.append(f"{c.category}: language fails (gap {c.level_gaps['language']:.2f}): ICL from native "
                             f"seeds (translation invites translationese)")
            else:
                other_rows += c.rows
                if c.failing == "domain" and c.category in REASONING:
                    notes.append(f"{c.category}: domain fails (gap {c.level_gaps['domain']:.2f}): the job's method "
                                 f"mix and the language's pivot policy (reasoning_language) kept")
                elif c.failing == "domain":
                    notes.append(f"{c.category}: domain fails (gap {c.level_gaps['domain']:.2f}): the job's "
                                 f"method mix kept")
        total = sum(per_category.values())
        if not total:
            continue
        methods = {m: 0.0 for m in DEFAULT_METHODS}
        methods["icl"] += icl_rows
        for m, w in DEFAULT_METHODS.items():
            methods[m] += other_rows * w
        methods = {m: round(w / total, 4) for m, w in methods.items() if w > 0}
        out.append(TargetPlan(lang, total, methods, {k: v for k, v in sorted(per_category.items()) if v}, notes))
    return out

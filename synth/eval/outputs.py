"""The final files of an evaluation, rebuilt from its committed slices: results.parquet, eval.json,
report.html, next_targets.yaml (docs/eval.md describes each)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

import polars as pl

from synth.loading import json_value
from synth.eval import scoring
from synth.eval.allocation import Cell, allocate, targets
from synth.eval.config import LEVELS
from synth.eval.intervals import bootstrap
from synth.eval.prepare import PreparedEval
from synth.eval.slices import committed
from synth.shards import OutPath, atomic_write_bytes, atomic_write_json, atomic_write_parquet

CHECK_COLUMNS = tuple(f"check_{name}" for name in scoring.LANGUAGE_CHECKS)


def score_rows(out: OutPath, p: PreparedEval) -> list[dict]:
    """One row per item: the answer, every check's score and the row score (None: not scorable)."""
    answers = committed(out, "answers")
    baseline = committed(out, "baseline")
    judged = committed(out, "judge")
    pairs = committed(out, "pairwise")
    items = p.items
    texts = [answers[i.id]["answer"] for i in items]
    offline = scoring.offline_checks(p.verifier, items, texts)
    base_offline = (scoring.offline_checks(p.verifier, items, [baseline[i.id]["answer"] for i in items])
                    if baseline else None)
    rows = []
    for n, (item, answer, checks) in enumerate(zip(items, texts, offline)):
        a = answers[item.id]
        grades = judged.get(item.id)
        metric = None
        if not a["error"]:
            if item.kind in ("choices", "numeric"):
                metric = scoring.exact(item, answer)
            elif item.kind == "translation":
                metric = scoring.chrf(item, answer)
        grade_map = {k: grades.get(k) for k in scoring.JUDGE_SCORES} if grades else None
        score = None if a["error"] else scoring.absolute_score(item, checks, grade_map if p.judge else None, metric)
        row = {"id": item.id, "lang": item.lang, "category": item.category, "level": item.level, "kind": item.kind,
               "question": item.question(), "answer": answer, "error": a["error"],
               "finish_reason": a["finish_reason"], "language_checks": float(checks.passed),
               "language_failed": checks.failed,
               **{f"check_{k}": checks.scores.get(k) for k in scoring.LANGUAGE_CHECKS},
               **{k: (grade_map or {}).get(k) for k in scoring.JUDGE_SCORES},
               "judge_reason": _reason(grades, item), "exact": metric if item.kind in ("choices", "numeric") else None,
               "chrf": metric if item.kind == "translation" else None,
               "absolute_score": score, "baseline_answer": None, "win_rate": None}
        if baseline:
            b = baseline[item.id]
            row["baseline_answer"] = b["answer"]
            row["win_rate"] = _win(item, checks, base_offline[n], metric, b, pairs.get(item.id))
            row["score"] = None if a["error"] else row["win_rate"]
        else:
            row["score"] = score
        rows.append(row)
    return rows


def _started_at(out: OutPath) -> str | None:
    try:
        return json_value((out / "_work" / "state.json").read_bytes()).get("started_at")
    except (OSError, ValueError, AttributeError):
        return None


def _reason(grades: dict | None, item) -> str | None:
    if not grades:
        return None
    if grades.get("unparseable"):
        return grades["unparseable"]
    key = {"language": "language_reason", "domain": "content_reason", "culture": "culture_reason"}[item.level]
    return grades.get(key)


def _win(item, checks, base_checks, metric, b: dict, pair: dict | None) -> float | None:
    """The model's win rate against the baseline on one item (synth/eval/scoring.py)."""
    if b["error"]:
        return None
    if item.kind in ("choices", "numeric"):
        return scoring.win_of(metric, scoring.exact(item, b["answer"]))
    if item.kind == "translation":
        return scoring.win_of(metric, scoring.chrf(item, b["answer"]))
    if item.level == "language" and checks.passed != base_checks.passed:
        return 1.0 if checks.passed else 0.0  # one of them is not in the language: no judge needed
    if item.level == "language" and not checks.passed:
        return 0.5
    return scoring.pairwise_score(pair.get("ab"), pair.get("ba")) if pair else None


def _cells(rows: list[dict], p: PreparedEval) -> tuple[list[dict], dict, list[Cell]]:
    c = p.config
    groups: dict[tuple, list[float]] = defaultdict(list)
    by_lang: dict[str, list[float]] = defaultdict(list)
    unscored: dict[tuple, int] = defaultdict(int)
    for r in rows:
        key = (r["lang"], r["category"], r["level"])
        if r["score"] is None:
            unscored[key] += 1
            continue
        groups[key].append(r["score"])
        by_lang[r["lang"]].append(r["score"])
    keys = sorted({(r["lang"], r["category"], r["level"]) for r in rows})
    cells = []
    for key in keys:
        est = bootstrap(groups.get(key, []), "/".join(key), c.seed, c.bootstrap, c.confidence)
        cells.append({"lang": key[0], "category": key[1], "level": key[2], "n": est.n, "score": est.score,
                      "ci_low": est.ci_low, "ci_high": est.ci_high, "unscored": unscored.get(key, 0),
                      "few_items": est.n < c.allocation.min_items})
    languages = {}
    for lang in sorted({r["lang"] for r in rows}):
        est = bootstrap(by_lang.get(lang, []), lang, c.seed, c.bootstrap, c.confidence)
        languages[lang] = {"score": est.score, "n": est.n, "ci_low": est.ci_low, "ci_high": est.ci_high}
    goal = c.goal_score
    allocation_cells = []
    for lang, category in sorted({(k[0], k[1]) for k in keys}):
        mine = [s for (l, cat, _), v in groups.items() if l == lang and cat == category for s in v]
        est = bootstrap(mine, f"{lang}/{category}", c.seed, c.bootstrap, c.confidence)
        level_gaps = {}
        for level in LEVELS:
            cell = next((x for x in cells if (x["lang"], x["category"], x["level"]) == (lang, category, level)), None)
            if cell and cell["score"] is not None and not cell["few_items"]:
                level_gaps[level] = max(0.0, goal - cell["score"])
        allocation_cells.append(Cell(lang, category, est.score, est.n, level_gaps))
    allocate(allocation_cells, c.next_rows, goal, c.allocation.floor, c.allocation.power, c.allocation.min_items,
             p.previous, c.allocation.max_growth)
    return cells, languages, allocation_cells


# the per-check scores of a row, in its `scores` struct (as the `scores` of a run's shards)
SCORE_FIELDS = ("language_checks", *CHECK_COLUMNS, *scoring.JUDGE_SCORES, "exact", "chrf", "absolute_score", "win_rate")
RESULT_SCHEMA = {"id": pl.String, "lang": pl.String, "category": pl.String, "level": pl.String, "kind": pl.String,
                 "question": pl.String, "answer": pl.String, "error": pl.String, "finish_reason": pl.String,
                 "language_failed": pl.List(pl.String), "judge_reason": pl.String, "baseline_answer": pl.String,
                 "scores": pl.Struct({k: pl.Float64 for k in SCORE_FIELDS}), "score": pl.Float64}


def _results_frame(rows: list[dict]) -> pl.DataFrame:
    records = [{**{k: v for k, v in r.items() if k not in SCORE_FIELDS}, "scores": {k: r[k] for k in SCORE_FIELDS}}
               for r in rows]
    return pl.DataFrame(records, schema=RESULT_SCHEMA)


def finish_eval(out: OutPath, p: PreparedEval, engine_stats: dict, judge_usage) -> dict:
    from synth.eval.report import render_html
    from synth.eval.targets import next_targets_yaml

    c = p.config
    rows = score_rows(out, p)
    cells, languages, allocation = _cells(rows, p)
    plans = targets(allocation)
    summary = {
        "name": c.name, "status": "complete", "config_hash": p.config_hash(),
        "started_at": _started_at(out), "finished_at": datetime.now(timezone.utc).isoformat(),
        "model": c.model.model, "baseline": c.baseline.model if c.baseline else None,
        "judge": {"model": c.judge.engine.model, "prompt": p.judge.template.name, "prompt_hash": p.judge.template.hash,
                  "usage": judge_usage.as_dict() if judge_usage else None} if c.judge else None,
        "score": "win rate against the baseline (ties halved)" if c.baseline else "absolute, on [0, 1]",
        "goal": c.goal_score, "items": len(rows), "unscored": sum(1 for r in rows if r["score"] is None),
        "cells": cells, "languages": languages,
        "checks": {"language": [n for n in scoring.LANGUAGE_CHECKS if n in p.verifier.names],
                   "not_run": p.verifier.not_run, "preset": p.verifier.preset.name},
        "allocation": {"next_rows": c.next_rows, "floor": c.allocation.floor, "power": c.allocation.power,
                       "min_items": c.allocation.min_items, "max_growth": c.allocation.max_growth,
                       "previous": str(c.allocation.previous) if c.allocation.previous else None,
                       "cells": [{"lang": x.lang, "category": x.category, "score": x.score, "n": x.n, "gap": x.gap,
                                  "weight": x.weight, "rows": x.rows, "cap": x.cap, "failing_level": x.failing,
                                  "few_items": x.few_items, "notes": x.notes} for x in allocation],
                       "targets": [{"lang": t.lang, "rows": t.rows, "methods": t.methods,
                                    "category_rows": t.category_rows, "notes": t.notes} for t in plans]},
        "engine": engine_stats,
    }
    atomic_write_parquet(out / "results.parquet", _results_frame(rows))
    atomic_write_bytes(out / "next_targets.yaml", next_targets_yaml(summary, plans, allocation).encode())
    atomic_write_bytes(out / "report.html", render_html(summary).encode())
    atomic_write_json(out / "eval.json", summary)  # last: its presence marks the evaluation finished
    return summary

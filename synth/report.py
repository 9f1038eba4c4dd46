"""Renders a run for people: the self-contained report.html and the summary table (outputs.py writes)."""

from __future__ import annotations

import html
import json
from collections import Counter

import polars as pl

from synth.shards import language_rows


def summary_table(manifest: dict) -> str:
    """Plain-text per-language summary: targets, accepted, rejections by reason, shortfall."""
    head = f"{'language':<22}{'target':>7}{'accepted':>9}{'rejected':>9}{'shortfall':>10}  top reject reasons"
    lines = [f"synth: {manifest['name']}  status={manifest['status']}  model={manifest['model']}", head, "-" * len(head)]
    for lang, s in manifest["languages"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in list(s["rejected_by_reason"].items())[:5]) or "-"
        lines.append(f"{lang + ' ' + s['name']:<22}{s['target']:>7}{s['accepted']:>9}{s['rejected']:>9}{s['shortfall']:>10}  {reasons}")
        if s["shortfall"]:
            lines.append(f"{'':<22}shortfall: {s['shortfall_reason']}")
        if cost := _cost_text(s.get("cost") or {}):
            lines.append(f"{'':<22}cost: {cost}")
    not_run = manifest["filters"]["not_run"]
    lines.append("filters run: " + ", ".join(manifest["filters"]["run"]))
    if engine_line := _engine_line(manifest):
        lines.append(engine_line)
    if judge := manifest.get("judge"):
        usage = judge.get("usage", {})
        lines.append(f"judge: {judge.get('model')} graded {usage.get('requests', 0)} request(s) "
                     f"({usage.get('prompt_tokens', 0)} prompt + {usage.get('output_tokens', 0)} output tokens)")
    lines += [f"NOT run: {k}: {v}" for k, v in not_run.items()]
    if manifest.get("model_note"):
        lines += ["", "NOTE: " + manifest["model_note"]]
    return "\n".join(lines)


def _cost_text(cost: dict) -> str:
    """Generated tokens (prompt + output) and engine seconds per accepted row, per method (tokens when
    none was accepted), where the most tokens went, and the judge's tokens."""
    parts = []
    for method, c in cost.items():
        if method == "judge" or not isinstance(c, dict) or "attempts" not in c:
            continue
        tokens = c["prompt_tokens"] + c["output_tokens"]
        if c["accepted"]:
            text = (f"{method} {tokens / c['accepted']:.0f} tokens ({c['prompt_tokens'] / c['accepted']:.0f} prompt + "
                    f"{c['output_tokens'] / c['accepted']:.0f} output) and {c['engine_seconds'] / c['accepted']:.1f} "
                    f"engine s per accepted row")
        else:
            text = f"{method} {tokens} tokens for no accepted row"
        if went := _went(c):
            text += f" (went to {', '.join(f'{k} {v}' for k, v in list(went.items())[:4])})"
        parts.append(text)
    if judge := cost.get("judge"):
        tokens = judge.get("prompt_tokens", 0) + judge.get("output_tokens", 0)
        per = judge.get("per_accepted_row") or {}
        per_row = (per.get("prompt_tokens") or 0) + (per.get("output_tokens") or 0)
        parts.append(f"judge {tokens} tokens" + (f" ({per_row:.0f} per accepted row)" if per_row else ""))
    return "; ".join(parts)


def _went(c: dict) -> dict[str, int]:
    """Tokens (prompt + output) by outcome: accepted, or a rejected row's first reason."""
    return {k: v["prompt_tokens"] + v["output_tokens"] for k, v in (c.get("tokens_by_outcome") or {}).items()}


def cost_table_html(cost: dict) -> str:
    """The report's cost table of one language: per method tokens and engine seconds, per accepted row,
    and where the tokens went; the judge's tokens."""
    e = html.escape
    rows = []
    for method, c in cost.items():
        if method == "judge" or not isinstance(c, dict) or "attempts" not in c:
            continue
        per = c.get("per_accepted_row") or {}
        per_row = (f"{per['prompt_tokens'] + per['output_tokens']:.0f} tokens ({per['prompt_tokens']:.0f} prompt + "
                   f"{per['output_tokens']:.0f} output), {per['engine_seconds']:.2f} engine s"
                   if c["accepted"] else "none accepted")
        went = ", ".join(f"{e(k)} {v}" for k, v in _went(c).items())
        rows.append(f"<tr><td>{e(method)}</td><td>{c['attempts']}</td><td>{c['accepted']}</td><td>{c['prompt_tokens']}</td>"
                    f"<td>{c['output_tokens']}</td><td>{c['engine_seconds']:.1f}</td><td>{per_row}</td><td>{went}</td></tr>")
    if judge := cost.get("judge"):
        per = judge.get("per_accepted_row") or {}
        per_row = (f"{(per.get('prompt_tokens') or 0) + (per.get('output_tokens') or 0):.0f} tokens"
                   if per.get("prompt_tokens") is not None else "none accepted")
        rows.append(f"<tr><td>judge</td><td></td><td></td><td>{judge.get('prompt_tokens', 0)}</td>"
                    f"<td>{judge.get('output_tokens', 0)}</td><td></td><td>{per_row}</td><td></td></tr>")
    if not rows:
        return ""
    return ("<h3>Cost</h3><table><tr><th>method</th><th>attempts</th><th>accepted</th><th>prompt tokens</th>"
            "<th>output tokens</th><th>engine s</th><th>per accepted row</th>"
            "<th>tokens went to (prompt + output; a rejected row counts under its first reason)</th></tr>"
            + "".join(rows) + "</table>")


def _engine_line(manifest: dict) -> str:
    """Engine trouble, apart from what the model got wrong: retries, outages, attempts lost to them."""
    engine = manifest.get("engine") or {}
    if not engine:
        return ""
    return (f"engine: {engine.get('retries', 0)} retried request(s), {engine.get('outages', 0)} outage(s), "
            f"{engine.get('attempts_lost_to_outages', 0)} attempt(s) lost to outages")


def _histogram_svg(values: list[float], threshold: float | None, width: int = 260, height: int = 70) -> str:
    if not values:
        return "<em>no scores</em>"
    lo, hi = min(values + ([threshold] if threshold is not None else [])), max(values + ([threshold] if threshold is not None else []))
    span = (hi - lo) or 1.0
    bins = [0] * 20
    for v in values:
        bins[min(19, int((v - lo) / span * 20))] += 1
    top = max(bins)
    bar = width / 20
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 12 - (b / top) * (height - 16):.1f}" width="{bar - 1:.1f}" '
        f'height="{(b / top) * (height - 16):.1f}" fill="#4a7bd0"/>' for i, b in enumerate(bins) if b
    )
    mark = ""
    if threshold is not None:
        x = (threshold - lo) / span * width
        mark = f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 12}" stroke="#d33" stroke-width="2"/>'
    labels = (f'<text x="0" y="{height - 1}" font-size="9">{lo:.3g}</text>'
              f'<text x="{width}" y="{height - 1}" font-size="9" text-anchor="end">{hi:.3g}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{rects}{mark}{labels}</svg>'


def funnel(rows: pl.DataFrame | None, filters: list[str], by_reason: dict[str, int]) -> list[dict]:
    """Stages in order: checks before verification (unparseable, structure_lost...), each filter of the
    preset, then surplus. A row leaves the funnel at its first failing stage; `rejected` counts every
    row a stage rejects (a row can fail several filters), `first` those that leave there."""
    stages = [r for r in sorted(by_reason) if r not in filters and r != "surplus"] + list(filters) + ["surplus"]
    remaining = rows.height if rows is not None else 0
    first = Counter()
    if rows is not None and rows.height:
        order = {name: i for i, name in enumerate(stages)}
        for reasons in rows["reject_reasons"].to_list():
            if reasons:
                first[min(reasons, key=lambda r: order.get(r, len(stages)))] += 1
    out = []
    for stage in stages:
        remaining -= first[stage]
        out.append({"stage": stage, "rejected": by_reason.get(stage, 0), "first": first[stage], "remaining": remaining})
    return out


def render_html(manifest: dict, rows: pl.DataFrame | pl.LazyFrame | None) -> str:
    """A single self-contained HTML file: funnel per language, score histograms, sample rows. `rows`:
    the run's committed rows, in memory or scanned (`synth.shards.scan_committed`)."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>synth report: {e(manifest['name'])}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
             ".note{background:#fff3cd;padding:.8em;border:1px solid #e0c36c}pre{white-space:pre-wrap;margin:0}</style>"
             f"</head><body><h1>synth report: {e(manifest['name'])}</h1>",
             f"<p>Status <b>{e(manifest['status'])}</b>, model <code>{e(manifest['model'])}</code>, "
             f"filter preset <code>{e(manifest['filters']['preset'])}</code>, {manifest['rounds']} rounds.</p>"]
    if manifest.get("model_note"):
        parts.append(f"<p class='note'>{e(manifest['model_note'])}</p>")
    if engine_line := _engine_line(manifest):
        parts.append(f"<p>{e(engine_line)} (engine failures are retried, never counted as rejected rows)</p>")
    for name, why in manifest["filters"]["not_run"].items():
        parts.append(f"<p class='note'>Filter <b>{e(name)}</b> was not run: {e(why)}. It counted neither as passed nor as failed.</p>")
    parts.append("<h2>Summary</h2><table><tr><th>language</th><th>target</th><th>accepted</th><th>rejected</th><th>shortfall</th></tr>")
    for lang, s in manifest["languages"].items():
        parts.append(f"<tr><td>{e(lang)} {e(s['name'])}</td><td>{s['target']}</td><td>{s['accepted']}</td>"
                     f"<td>{s['rejected']}</td><td>{s['shortfall']} {e(s['shortfall_reason'] or '')}</td></tr>")
    parts.append("</table>")
    filters = list(manifest["filters"]["run"])
    thresholds = dict(manifest["filters"]["thresholds"])
    stages = list(filters)
    if judge := manifest.get("judge"):
        usage = judge.get("usage", {})
        parts.append(f"<p>LLM judge <code>{e(str(judge.get('model')))}</code> (prompt <code>{e(judge.get('prompt', ''))}</code>): "
                     f"{usage.get('requests', 0)} requests, {usage.get('prompt_tokens', 0)} prompt and "
                     f"{usage.get('output_tokens', 0)} output tokens.</p>")
        thresholds.update(judge.get("thresholds", {}))
        filters += list(judge.get("thresholds", {}))
        stages += [*judge.get("thresholds", {}), "judge_unparseable"]
    for lang, s in manifest["languages"].items():
        mine = language_rows(rows, lang) if rows is not None else None
        parts.append(f"<h2>{e(lang)} ({e(s['name'])})</h2><h3>Acceptance funnel</h3>"
                     "<table><tr><th>stage</th><th>rejected by it (any reason)</th><th>first rejected here</th>"
                     "<th>remaining</th></tr>")
        parts.append(f"<tr><td>attempts</td><td></td><td></td><td>{s['attempts']}</td></tr>")
        for stage in funnel(mine, stages, s["rejected_by_reason"]):
            parts.append(f"<tr><td>{e(stage['stage'])}</td><td>{stage['rejected']}</td><td>{stage['first']}</td>"
                         f"<td>{stage['remaining']}</td></tr>")
        parts.append(f"<tr><td><b>accepted</b></td><td></td><td></td><td><b>{s['accepted']}</b></td></tr></table>")
        parts.append(cost_table_html(s.get("cost") or {}))
        if mine is None or mine.is_empty():
            continue
        parts.append("<h3>Score distributions (red line: threshold)</h3><table><tr>")
        for i, name in enumerate(n for n in filters if n in mine["scores"].struct.fields):
            values = [v for v in mine["scores"].struct.field(name).to_list() if v is not None]
            t = thresholds.get(name, {})
            limit = t.get("per_language", {}).get(lang, t.get("threshold"))
            parts.append(f"<td><b>{e(name)}</b><br>{_histogram_svg(values, limit)}</td>")
            if i % 4 == 3:
                parts.append("</tr><tr>")
        parts.append("</tr></table>")
        for title, frame in (("Sample accepted rows", mine.filter(pl.col("accepted")).head(3)),
                             ("Sample rejected rows", mine.filter(~pl.col("accepted")).head(5))):
            parts.append(f"<h3>{title}</h3>")
            if frame.is_empty():
                parts.append("<p>none</p>")
                continue
            parts.append("<table><tr><th>method/category</th><th>text</th><th>reasons</th></tr>")
            for r in frame.iter_rows(named=True):
                text = "\n\n".join(f"[{m['role']}] {m['content']}" for m in r["messages"] or []) or r["raw_output"] or ""
                parts.append(f"<tr><td>{e(r['method'])}/{e(r['category'])}</td><td><pre>{e(text[:800])}</pre></td>"
                             f"<td>{e('; '.join(r['reject_details'] or []))}</td></tr>")
            parts.append("</table>")
    parts.append(f"<h2>Manifest</h2><pre>{e(json.dumps({k: manifest[k] for k in ('config_hash', 'versions', 'prompts')}, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)

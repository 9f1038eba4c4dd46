"""Renders a run for people: the self-contained report.html and the summary table (outputs.py writes)."""

from __future__ import annotations

import html

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synth.errors import ConfigError
from synth.loading import json_text
from synth.shards import language_rows

FOLD_CHARS = 300  # a sample text longer than this is folded (<details>), its first line shown
SHOW_CHARS = 4000  # at most this much of one sample text reaches the page
ACCEPTED_SAMPLES = 2  # accepted rows shown per method
REJECTED_GROUPS = 12  # rejected samples shown: one per method x first reason, the most frequent first


def _e(value: Any) -> str:
    """The report's one escaping rule: every value that reaches the page goes through here, whatever
    its type (a manifest is a file anyone can edit; a string where a count belongs is still text)."""
    if value is None:
        return ""
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _n(value: Any, spec: str = "") -> str:
    """A number formatted with `spec`; anything else is escaped as text (never formatted or trusted)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return _e(format(value, spec))
    return _e(value)


# ---- reading a manifest back (`synth report DIR`) ------------------------------------------------

Count = Annotated[int, Field(ge=0)]


class _Open(BaseModel):
    """A part of manifest.json the report reads, typed strictly (a string is not a count); keys it does
    not read are allowed, so manifests of other synth versions still render."""

    model_config = ConfigDict(extra="allow", strict=True)


class _MethodCost(_Open):
    attempts: Count
    accepted: Count
    prompt_tokens: Count
    output_tokens: Count
    engine_seconds: float
    per_accepted_row: dict[str, float | None] = {}
    tokens_by_outcome: dict[str, dict[str, Count]] = {}


class _JudgeCost(_Open):
    prompt_tokens: Count = 0
    output_tokens: Count = 0
    per_accepted_row: dict[str, float | None] = {}


class _Language(_Open):
    name: str
    target: Count
    accepted: Count
    rejected: Count
    shortfall: Count
    attempts: Count = 0
    shortfall_reason: str | None = None
    rejected_by_reason: dict[str, Count] = {}
    cost: dict[str, dict] = {}

    @field_validator("cost")
    @classmethod
    def _costs(cls, value: dict[str, dict]) -> dict[str, dict]:
        for method, entry in value.items():
            (_JudgeCost if method == "judge" else _MethodCost).model_validate(entry)
        return value


class _Threshold(_Open):
    threshold: float | None = None
    per_language: dict[str, float | None] | None = None


class _Filters(_Open):
    preset: str
    run: list[str]
    not_run: dict[str, str] = {}
    thresholds: dict[str, _Threshold] = {}


class _Usage(_Open):
    requests: Count = 0
    prompt_tokens: Count = 0
    output_tokens: Count = 0


class _Judge(_Open):
    model: str | None = None
    prompt: str = ""
    usage: _Usage = _Usage()
    thresholds: dict[str, _Threshold] = {}


class _Engine(_Open):
    retries: Count = 0
    outages: Count = 0
    attempts_lost_to_outages: Count = 0


class _Prompt(_Open):
    hash: str
    custom: bool = False


class _Manifest(_Open):
    name: str
    status: Literal["complete", "partial", "interrupted"]
    model: str
    model_note: str | None = None
    rounds: Count
    config_hash: str
    languages: dict[str, _Language]
    filters: _Filters
    judge: _Judge | None = None
    engine: _Engine | None = None
    prompts: dict[str, _Prompt] = {}
    versions: dict[str, str] = {}


def check_manifest(manifest: Any, where: str) -> dict:
    """`manifest` if it is a synth manifest in every part the report and summary read, else a
    ConfigError naming the first wrong field (`synth report` on someone else's file: exit 2)."""
    try:
        _Manifest.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: not a synth manifest: {field}: {first['msg']} "
                          f"({exc.error_count()} problem(s)); give the output directory of a `synth run`") from None
    return manifest


def read_manifest(path) -> dict:
    """manifest.json of a run directory, read within the loader's limits (size, nesting, duplicate keys),
    parsed and checked (check_manifest)."""
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        manifest = json_text(data, where)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; give the output directory of a `synth run`") from None
    return check_manifest(manifest, where)


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
    if line := estimate_line(manifest.get("estimate")):
        lines.append(line)
    lines += [f"NOT run: {k}: {v}" for k, v in not_run.items()]
    if manifest.get("model_note"):
        lines += ["", "NOTE: " + manifest["model_note"]]
    return "\n".join(lines)


def estimate_line(block: Any) -> str | None:
    """One line for the summary and the report: expected tokens against spent (plain text; the report
    escapes it). Values of the wrong type are shown as text, never formatted."""
    if not isinstance(block, dict) or not isinstance(block.get("expected"), dict):
        return None

    def num(value: Any, spec: str = ",") -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return format(value, spec)
        return str(value)

    at_most, spent = block.get("at_most"), block.get("spent")
    return (f"estimate (synth run --dry-run, prior {num(block.get('acceptance_prior'), 'g')}): "
            f"{num(block['expected'].get('tokens'))} tokens expected, at most "
            f"{num(at_most.get('tokens') if isinstance(at_most, dict) else None)}; spent "
            f"{num(spent.get('tokens') if isinstance(spent, dict) else None)}"
            + (f" ({num(block.get('spent_over_expected'), '.2f')}x the expected)"
               if block.get("spent_over_expected") is not None else ""))


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
    out = {}
    for k, v in (c.get("tokens_by_outcome") or {}).items():
        try:
            out[k] = v["prompt_tokens"] + v["output_tokens"]
        except (TypeError, KeyError):
            out[k] = v  # not synth's shape: shown as it is, escaped
    return out


def cost_table_html(cost: dict) -> str:
    """The report's cost table of one language: per method tokens and engine seconds, per accepted row,
    and where the tokens went; the judge's tokens."""
    rows = []
    for method, c in cost.items():
        if method == "judge" or not isinstance(c, dict) or "attempts" not in c:
            continue
        per = c.get("per_accepted_row") or {}
        p, o, s = (per.get(k) for k in ("prompt_tokens", "output_tokens", "engine_seconds"))
        total = p + o if isinstance(p, (int, float)) and isinstance(o, (int, float)) else None
        per_row = (f"{_n(total, '.0f')} tokens ({_n(p, '.0f')} prompt + {_n(o, '.0f')} output), {_n(s, '.2f')} engine s"
                   if c.get("accepted") else "none accepted")
        went = ", ".join(f"{_e(k)} {_n(v)}" for k, v in _went(c).items())
        rows.append(f"<tr><td>{_e(method)}</td><td>{_n(c.get('attempts'))}</td><td>{_n(c.get('accepted'))}</td>"
                    f"<td>{_n(c.get('prompt_tokens'))}</td><td>{_n(c.get('output_tokens'))}</td>"
                    f"<td>{_n(c.get('engine_seconds'), '.1f')}</td><td>{per_row}</td><td>{went}</td></tr>")
    if isinstance(judge := cost.get("judge"), dict):
        per = judge.get("per_accepted_row") or {}
        p, o = per.get("prompt_tokens"), per.get("output_tokens")
        per_row = (f"{_n((p or 0) + (o or 0), '.0f')} tokens"
                   if isinstance(p, (int, float)) and isinstance(o or 0, (int, float)) else "none accepted")
        rows.append(f"<tr><td>judge</td><td></td><td></td><td>{_n(judge.get('prompt_tokens', 0))}</td>"
                    f"<td>{_n(judge.get('output_tokens', 0))}</td><td></td><td>{per_row}</td><td></td></tr>")
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




def _histogram_svg(accepted: list[float], rejected: list[float], threshold: float | None,
                   width: int = 300, height: int = 150, bins: int = 20) -> str:
    """Rows per score bin, accepted (blue) stacked on rejected (grey), with both axes labelled, each
    bar's count above it and the threshold as a red line."""
    values = accepted + rejected
    if not values:
        return "<em>no scores</em>"
    edges = values + ([threshold] if isinstance(threshold, (int, float)) and math.isfinite(threshold) else [])
    lo, hi = min(edges), max(edges)
    span = (hi - lo) or 1.0
    left, bottom, top = 34, 30, 14
    plot_w, plot_h = width - left - 6, height - bottom - top
    counts = [[0, 0] for _ in range(bins)]
    for kind, group in ((0, accepted), (1, rejected)):
        for v in group:
            counts[min(bins - 1, int((v - lo) / span * bins))][kind] += 1
    peak = max(a + r for a, r in counts)
    bar = plot_w / bins
    y0 = top + plot_h
    parts = []
    for i, (a, r) in enumerate(counts):
        if not a + r:
            continue
        x = left + i * bar
        lo_i, hi_i = lo + span * i / bins, lo + span * (i + 1) / bins
        h_r, h_a = r / peak * plot_h, a / peak * plot_h
        tip = f"<title>{_n(lo_i, '.3g')} to {_n(hi_i, '.3g')}: {a} accepted, {r} rejected</title>"
        if r:
            parts.append(f'<rect x="{x:.1f}" y="{y0 - h_r:.1f}" width="{bar - 1:.1f}" height="{h_r:.1f}" fill="#b8b8b8">{tip}</rect>')
        if a:
            parts.append(f'<rect x="{x:.1f}" y="{y0 - h_r - h_a:.1f}" width="{bar - 1:.1f}" height="{h_a:.1f}" fill="#4a7bd0">{tip}</rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{y0 - h_r - h_a - 2:.1f}" font-size="8" text-anchor="middle">{a + r}</text>')
    axes = (f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#333"/>'
            f'<line x1="{left}" y1="{y0}" x2="{left + plot_w}" y2="{y0}" stroke="#333"/>'
            f'<text x="{left - 3}" y="{y0}" font-size="9" text-anchor="end">0</text>'
            f'<text x="{left - 3}" y="{top + 8}" font-size="9" text-anchor="end">{peak}</text>'
            f'<text x="9" y="{top + plot_h / 2:.1f}" font-size="9" text-anchor="middle" '
            f'transform="rotate(-90 9 {top + plot_h / 2:.1f})">rows</text>'
            f'<text x="{left}" y="{y0 + 11}" font-size="9">{_n(lo, ".3g")}</text>'
            f'<text x="{left + plot_w / 2:.1f}" y="{y0 + 11}" font-size="9" text-anchor="middle">{_n(lo + span / 2, ".3g")}</text>'
            f'<text x="{left + plot_w}" y="{y0 + 11}" font-size="9" text-anchor="end">{_n(hi, ".3g")}</text>'
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" font-size="9" text-anchor="middle">score</text>')
    mark = ""
    if isinstance(threshold, (int, float)) and math.isfinite(threshold):
        x = left + (threshold - lo) / span * plot_w
        mark = (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{y0}" stroke="#d33" stroke-width="2"/>'
                f'<text x="{x:.1f}" y="{top - 5}" font-size="8" fill="#d33" text-anchor="middle">{_n(threshold, ".3g")}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'{"".join(parts)}{axes}{mark}</svg>'
            f'<br><small>{len(values)} rows scored: {len(accepted)} accepted, {len(rejected)} rejected</small>')


def _fold(text: str) -> str:
    """A sample text: short ones whole, long ones folded behind their first line (at most SHOW_CHARS)."""
    if len(text) <= FOLD_CHARS:
        return f"<pre>{_e(text)}</pre>"
    shown = text[:SHOW_CHARS] + (f"\n[{len(text) - SHOW_CHARS} more characters]" if len(text) > SHOW_CHARS else "")
    first = " ".join(text.split())[:120]
    return (f"<details><summary>{_e(first)} ... ({len(text)} characters)</summary>"
            f"<pre>{_e(shown)}</pre></details>")


def _row_text(r: dict) -> str:
    conversation = "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in r.get("messages") or [])
    return conversation or r.get("raw_output") or ""


def _sample_rows(mine: pl.DataFrame) -> tuple[list[dict], list[tuple[str, str, int, dict]]]:
    """Accepted samples: the first ACCEPTED_SAMPLES of each method (by id). Rejected samples: one row
    for each method x first reason, most frequent first (REJECTED_GROUPS at most), so every method and
    the commonest ways to fail are all shown, not only the first rows of the run."""
    accepted = (mine.filter(pl.col("accepted")).sort("id")
                .filter(pl.int_range(pl.len()).over("method") < ACCEPTED_SAMPLES).sort(["method", "id"]))
    rejected = mine.filter(~pl.col("accepted")).with_columns(
        _reason=pl.col("reject_reasons").list.first().fill_null("rejected"))
    groups = (rejected.group_by(["method", "_reason"]).agg(n=pl.len(), id=pl.col("id").min())
              .sort(["n", "method", "_reason"], descending=[True, False, False]).head(REJECTED_GROUPS))
    by_id = {r["id"]: r for r in rejected.filter(pl.col("id").is_in(groups["id"].implode())).to_dicts()}
    return accepted.to_dicts(), [(g["method"], g["_reason"], g["n"], by_id[g["id"]]) for g in groups.to_dicts()]


def _sample_table(title: str, rows: list[tuple[str, dict]]) -> str:
    if not rows:
        return f"<h3>{title}</h3><p>none</p>"
    out = [f"<h3>{title}</h3><table><tr><th>method / category</th><th>rows like it</th><th>text</th>"
           "<th>source (translations)</th><th>why rejected</th></tr>"]
    for label, r in rows:
        source = "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in r.get("source_messages") or [])
        out.append(f"<tr><td>{_e(r.get('method'))} / {_e(r.get('category'))}</td><td>{label}</td>"
                   f"<td>{_fold(_row_text(r))}</td><td>{_fold(source) if source else ''}</td>"
                   f"<td>{_e('; '.join(r.get('reject_details') or []))}</td></tr>")
    return "".join(out) + "</table>"


def _provenance(manifest: dict) -> str:
    """What made the run, as tables (the full record is manifest.json)."""
    prompts = manifest.get("prompts") or {}
    versions = manifest.get("versions") or {}
    out = [f"<h2>Provenance</h2><p>Config hash <code>{_e(manifest.get('config_hash'))}</code>; everything "
           "else is in <code>manifest.json</code>.</p>"]
    if prompts:
        out.append("<table><tr><th>prompt template</th><th>hash</th><th>custom</th></tr>")
        out += [f"<tr><td>{_e(n)}</td><td><code>{_e((p or {}).get('hash'))}</code></td>"
                f"<td>{'yes' if (p or {}).get('custom') is True else 'no'}</td></tr>" for n, p in prompts.items()]
        out.append("</table>")
    if versions:
        out.append("<p>Versions: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items()) + "</p>")
    return "".join(out)


def render_html(manifest: dict, rows: pl.DataFrame | pl.LazyFrame | None) -> str:
    """A single self-contained HTML file: funnel per language, score histograms, sample rows. `rows`:
    the run's committed rows, in memory or scanned (`synth.shards.scan_committed`). Every value is
    escaped (`_e`, `_n`), whatever its type."""
    filters_entry = manifest.get("filters") or {}
    name = manifest.get("name")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>synth report: {_e(name)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
             ".note{background:#fff3cd;padding:.8em;border:1px solid #e0c36c}pre{white-space:pre-wrap;margin:0}"
             "details summary{cursor:pointer;color:#235}</style>"
             f"</head><body><h1>synth report: {_e(name)}</h1>",
             f"<p>Status <b>{_e(manifest.get('status'))}</b>, model <code>{_e(manifest.get('model'))}</code>, "
             f"filter preset <code>{_e(filters_entry.get('preset'))}</code>, {_n(manifest.get('rounds'))} rounds.</p>"]
    if manifest.get("model_note"):
        parts.append(f"<p class='note'>{_e(manifest['model_note'])}</p>")
    if engine_line := _engine_line(manifest):
        parts.append(f"<p>{_e(engine_line)} (engine failures are retried, never counted as rejected rows)</p>")
    if line := estimate_line(manifest.get("estimate")):
        parts.append(f"<p>{_e(line)}</p>")
    for filter_name, why in (filters_entry.get("not_run") or {}).items():
        parts.append(f"<p class='note'>Filter <b>{_e(filter_name)}</b> was not run: {_e(why)}. "
                     "It counted neither as passed nor as failed.</p>")
    languages = manifest.get("languages") or {}
    parts.append("<h2>Summary</h2><table><tr><th>language</th><th>target</th><th>accepted</th><th>rejected</th><th>shortfall</th></tr>")
    for lang, s in languages.items():
        parts.append(f"<tr><td>{_e(lang)} {_e(s.get('name'))}</td><td>{_n(s.get('target'))}</td><td>{_n(s.get('accepted'))}</td>"
                     f"<td>{_n(s.get('rejected'))}</td><td>{_n(s.get('shortfall'))} {_e(s.get('shortfall_reason'))}</td></tr>")
    parts.append("</table>")
    filters = list(filters_entry.get("run") or [])
    thresholds = dict(filters_entry.get("thresholds") or {})
    stages = list(filters)
    if judge := manifest.get("judge"):
        usage = judge.get("usage") or {}
        parts.append(f"<p>LLM judge <code>{_e(judge.get('model'))}</code> (prompt <code>{_e(judge.get('prompt'))}</code>): "
                     f"{_n(usage.get('requests', 0))} requests, {_n(usage.get('prompt_tokens', 0))} prompt and "
                     f"{_n(usage.get('output_tokens', 0))} output tokens.</p>")
        thresholds.update(judge.get("thresholds") or {})
        filters += list(judge.get("thresholds") or {})
        stages += [*(judge.get("thresholds") or {}), "judge_unparseable"]
    for lang, s in languages.items():
        mine = language_rows(rows, lang) if rows is not None else None
        parts.append(f"<h2>{_e(lang)} ({_e(s.get('name'))})</h2><h3>Acceptance funnel</h3>"
                     "<table><tr><th>stage</th><th>rejected by it (any reason)</th><th>first rejected here</th>"
                     "<th>remaining</th></tr>")
        parts.append(f"<tr><td>attempts</td><td></td><td></td><td>{_n(s.get('attempts'))}</td></tr>")
        by_reason = {k: v for k, v in (s.get("rejected_by_reason") or {}).items() if isinstance(v, int)}
        for stage in funnel(mine, stages, by_reason):
            parts.append(f"<tr><td>{_e(stage['stage'])}</td><td>{_n(stage['rejected'])}</td><td>{_n(stage['first'])}</td>"
                         f"<td>{_n(stage['remaining'])}</td></tr>")
        parts.append(f"<tr><td><b>accepted</b></td><td></td><td></td><td><b>{_n(s.get('accepted'))}</b></td></tr></table>")
        parts.append(cost_table_html(s.get("cost") if isinstance(s.get("cost"), dict) else {}))
        if mine is None or mine.is_empty():
            continue
        parts.append("<h3>Score distributions</h3><p>Rows per score bin (blue: accepted, grey: rejected; "
                     "red line: this language's threshold).</p><table><tr>")
        fields = mine["scores"].struct.fields
        ok = mine["accepted"].to_list()
        for i, filter_name in enumerate(n for n in filters if n in fields):
            values = mine["scores"].struct.field(filter_name).to_list()
            scored = [(v, a) for v, a in zip(values, ok) if isinstance(v, (int, float)) and math.isfinite(v)]
            t = thresholds.get(filter_name) or {}
            limit = (t.get("per_language") or {}).get(lang, t.get("threshold"))
            parts.append(f"<td><b>{_e(filter_name)}</b><br>"
                         f"{_histogram_svg([v for v, a in scored if a], [v for v, a in scored if not a], limit)}</td>")
            if i % 3 == 2:
                parts.append("</tr><tr>")
        parts.append("</tr></table>")
        accepted, rejected = _sample_rows(mine)
        parts.append(_sample_table(f"Sample accepted rows (up to {ACCEPTED_SAMPLES} per method)",
                                   [("accepted", r) for r in accepted]))
        parts.append(_sample_table("Sample rejected rows (one per method and first reject reason, the commonest first)",
                                   [(f"{_e(method)}: {_e(reason)}, {n} row(s)", r) for method, reason, n, r in rejected]))
    parts.append(_provenance(manifest))
    parts.append("</body></html>")
    return "".join(parts)


def check_slices(out) -> None:
    """Every committed slice in `out/_work/` has a readable Parquet footer, or a ConfigError naming the
    first that does not (the report reads them all; a truncated file would fail half way, with a traceback)."""
    from synth.shards import WORK, read_parquet_schema

    for part in sorted((out / WORK).glob("round-*.parquet")):
        try:
            read_parquet_schema(part)
        except Exception as exc:  # polars raises several kinds on a damaged file
            raise ConfigError(f"{part}: not a readable Parquet slice ({type(exc).__name__}); the report reads "
                              f"every committed slice: resume the run (`synth run`) to check and repair it") from None

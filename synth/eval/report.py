"""DIR/report.html of `synth eval`: self-contained, every number with its interval and every allocation
choice spelled out."""

from __future__ import annotations

import html


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _bar(score, low, high) -> str:
    if score is None:
        return ""
    left, width = 100 * (low or 0), max(1.0, 100 * ((high or 0) - (low or 0)))
    return (f'<div class="bar"><div class="ci" style="left:{left:.1f}%;width:{width:.1f}%"></div>'
            f'<div class="pt" style="left:{100 * score:.1f}%"></div></div>')


def render_html(summary: dict) -> str:
    e = html.escape
    alloc = summary["allocation"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>synth eval {e(summary['name'])}</title>",
           "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td.l,th.l{text-align:left}"
           ".bar{position:relative;width:12em;height:.8em;background:#eee}.ci{position:absolute;top:0;height:100%;"
           "background:#9bc}.pt{position:absolute;top:-.1em;width:2px;height:1em;background:#024}"
           ".few{color:#a40}</style></head><body>",
           f"<h1>synth eval: {e(summary['name'])}</h1>",
           f"<p>model <b>{e(summary['model'])}</b>"
           + (f", baseline <b>{e(summary['baseline'])}</b>" if summary.get("baseline") else "")
           + (f", judge <b>{e(summary['judge']['model'])}</b>" if summary.get("judge") else ", no judge")
           + f". Scores: {e(summary['score'])}; goal {summary['goal']:g}. {summary['items']} items, "
           f"{summary['unscored']} not scorable. Offline language checks: "
           f"{e(', '.join(summary['checks']['language']))} (preset {e(summary['checks']['preset'])})"
           + "".join(f"; NOT run: {e(k)}: {e(v)}" for k, v in summary["checks"]["not_run"].items()) + ".</p>",
           "<p>A judge's 1-5 grades run high and are calibrated differently per language: compare languages on "
           "the offline checks and exact-match items first.</p>",
           "<h2>Languages</h2><table><tr><th class=l>language</th><th>n</th><th>score</th><th>interval</th><th></th></tr>"]
    for lang, s in summary["languages"].items():
        out.append(f"<tr><td class=l>{e(lang)}</td><td>{s['n']}</td><td>{_f(s['score'])}</td>"
                   f"<td>{_f(s['ci_low'])}-{_f(s['ci_high'])}</td><td>{_bar(s['score'], s['ci_low'], s['ci_high'])}</td></tr>")
    out.append("</table><h2>Cells</h2><table><tr><th class=l>language</th><th class=l>category</th><th class=l>level</th>"
               "<th>n</th><th>score</th><th>interval</th><th></th><th class=l>note</th></tr>")
    for c in summary["cells"]:
        note = ("few items: floor only" if c["few_items"] else "") + (f"; {c['unscored']} not scorable" if c["unscored"] else "")
        out.append(f"<tr{' class=few' if c['few_items'] else ''}><td class=l>{e(c['lang'])}</td><td class=l>"
                   f"{e(c['category'])}</td><td class=l>{e(c['level'])}</td><td>{c['n']}</td><td>{_f(c['score'])}</td>"
                   f"<td>{_f(c['ci_low'])}-{_f(c['ci_high'])}</td><td>{_bar(c['score'], c['ci_low'], c['ci_high'])}</td>"
                   f"<td class=l>{e(note)}</td></tr>")
    out.append(f"</table><h2>Next round: {alloc['next_rows']} rows</h2>"
               f"<p>gap g = max(0, goal - score); w = floor + (1 - floor) g<sup>a</sup> / &Sigma;g<sup>a</sup> with floor "
               f"{alloc['floor']:g}, a {alloc['power']:g}; rows proportional to w (largest remainder)"
               + (f", at most {alloc['max_growth']:g}x the previous round's rows per cell" if alloc["previous"] else "")
               + ".</p><table><tr><th class=l>language</th><th class=l>category</th><th>score</th><th>n</th><th>gap</th>"
               "<th>w</th><th>rows</th><th class=l>failing level</th><th class=l>choices</th></tr>")
    for c in alloc["cells"]:
        out.append(f"<tr><td class=l>{e(c['lang'])}</td><td class=l>{e(c['category'])}</td><td>{_f(c['score'])}</td>"
                   f"<td>{c['n']}</td><td>{c['gap']:.3f}</td><td>{c['weight']:.4f}</td><td>{c['rows']}</td>"
                   f"<td class=l>{e(c['failing_level'] or '-')}</td><td class=l>{e('; '.join(c['notes']))}</td></tr>")
    out.append("</table><h3>Targets</h3><ul>")
    for t in alloc["targets"]:
        out.append(f"<li><b>{e(t['lang'])}</b>: {t['rows']} rows, methods {e(str(t['methods']))}, per category "
                   f"{e(str(t['category_rows']))}" + "".join(f"<br>{e(n)}" for n in t["notes"]) + "</li>")
    out.append("</ul><p>Written by synth eval; next_targets.yaml holds the same choices as comments.</p></body></html>")
    return "\n".join(out)


def summary_text(summary: dict) -> str:
    """Plain-text summary for the terminal: languages, then the next round's targets."""
    lines = [f"synth eval: {summary['name']}  model={summary['model']}  scores: {summary['score']}",
             f"{'language':<12}{'n':>6}{'score':>8}  interval"]
    for lang, s in summary["languages"].items():
        lines.append(f"{lang:<12}{s['n']:>6}{_f(s['score']):>8}  {_f(s['ci_low'])}-{_f(s['ci_high'])}")
    lines.append("next round: " + ", ".join(f"{t['lang']} {t['rows']}" for t in summary["allocation"]["targets"]))
    if summary["unscored"]:
        lines.append(f"{summary['unscored']} item(s) not scorable (engine error or unparseable judge verdict): "
                     f"see results.parquet")
    return "\n".join(lines)

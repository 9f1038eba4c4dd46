"""next_targets.yaml: written by `synth eval`, read by `synth run --targets-from DIR|FILE`.

The file is a `targets:` list in the job-file format (it can be pasted into a job) plus an
`evaluation:` mapping naming where it came from; every allocation choice is a YAML comment.
`--targets-from` replaces the job's targets with these, keeping each language's seeds, `lid` and the
methods the job can run (icl needs seeds, translate needs `sources:`), and validates the result like
any job file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from synth.loading import json_value, load_yaml
from synth.config import JobConfig, TargetConfig, _format_validation_error
from synth.errors import ConfigError

FILE = "next_targets.yaml"
log = logging.getLogger("synth")


def _comment(text: str) -> str:
    """Text safe inside a YAML comment: one line (a newline in a model name must not start a key)."""
    return " ".join(str(text).split())


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def next_targets_yaml(summary: dict, plans, cells) -> str:
    alloc = summary["allocation"]
    lines = [
        f"# synth eval {summary['name']}: next round's targets (config hash {summary['config_hash']})",
        f"# model {_comment(summary['model'])}" + (f", baseline {_comment(summary['baseline'])}" if summary.get("baseline") else "")
        + f"; scores: {summary['score']}; goal {summary['goal']:g}",
        "# per cell (lang, category): gap g = max(0, goal - score); w = floor + (1 - floor) * g^a / sum(g^a);",
        f"# rows = next_rows * w / sum(w), largest remainder; floor {alloc['floor']:g}, a {alloc['power']:g}, "
        f"next_rows {alloc['next_rows']}, min_items {alloc['min_items']}"
        + (f", at most {alloc['max_growth']:g}x the previous round ({alloc['previous']})" if alloc["previous"] else
           ", no previous round: no cap"),
        "# method by failing level: language -> icl (native seeds); culture -> half the rows to local_culture;",
        "# domain -> the job's method mix (reasoning/math keep the pivot policy of languages/*.yaml)",
        "evaluation:",
        f"  name: {json.dumps(summary['name'])}",
        f"  config_hash: {json.dumps(summary['config_hash'])}",
        f"  finished_at: {json.dumps(summary['finished_at'])}",
        f"  model: {json.dumps(summary['model'])}",
        "targets:",
    ]
    for plan in plans:
        lines.append(f"  # {plan.lang}:")
        for c in cells:
            if c.lang != plan.lang:
                continue
            lines.append(f"  #   {c.category}: score {_fmt(c.score)} (n {c.n}), gap {c.gap:.3f}, w {c.weight:.4f}, "
                         f"{c.rows} rows" + (f", cap {c.cap}" if c.cap is not None else "")
                         + (f", failing level {c.failing}" if c.failing else "")
                         + "".join(f"; {note}" for note in c.notes))
        lines += [f"  #   {note}" for note in plan.notes]
        lines += [f"  - lang: {plan.lang}", f"    rows: {plan.rows}",
                  "    methods: {" + ", ".join(f"{m}: {w:g}" for m, w in plan.methods.items()) + "}",
                  "    categories: [" + ", ".join(plan.category_rows) + "]",
                  "    category_weights: {" + ", ".join(f"{k}: {v}" for k, v in plan.category_rows.items()) + "}"]
    return "\n".join(lines) + "\n"


def read_targets(path: Path, field: str) -> tuple[list[TargetConfig], dict | None]:
    """The `targets:` of a next_targets.yaml (or of a job file) and its `evaluation:` mapping, if any.
    A directory stands for its next_targets.yaml."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise ConfigError(f"{field}: {path} not found; give the output directory of `synth eval` or its {FILE}")
    raw = load_yaml(path, field)  # within limits: size, nesting, aliases; duplicate keys refused
    if not isinstance(raw, dict) or not isinstance(raw.get("targets"), list) or not raw["targets"]:
        raise ConfigError(f"{field}: {path} has no `targets:` list; give a next_targets.yaml written by synth eval")
    try:
        parsed = TypeAdapter(list[TargetConfig]).validate_python(raw["targets"])
    except ValidationError as exc:
        message = _format_validation_error(path, exc).replace("invalid job config", f"{field}: invalid targets")
        raise ConfigError(message) from None
    origin = raw.get("evaluation") if isinstance(raw.get("evaluation"), dict) else None
    return parsed, ({**origin, "path": str(path.resolve())} if origin else {"path": str(path.resolve())})


def apply_targets(job: JobConfig, path: Path) -> tuple[JobConfig, dict]:
    """The job with the targets of `path` instead of its own (module docstring); ConfigError naming the
    language and the fix where the job cannot run a target."""
    new, origin = read_targets(path, "--targets-from")
    mine = {t.lang: t for t in job.targets}
    merged = []
    for target in new:
        own = mine.get(target.lang)
        seeds = own.seeds if own is not None else None
        can = {"icl": seeds is not None, "translate": job.sources is not None}
        runnable = {m: w for m, w in target.methods.items() if can[m]}
        if not runnable and any(can.values()):  # e.g. icl asked for, no seeds: what the job can do, said aloud
            runnable = {m: 1.0 for m, ok in can.items() if ok}
            log.warning("--targets-from: %s asks for %s, but the job has no %s for it; running %s instead (add a "
                        "target with seeds for %s to follow the evaluation)", target.lang, sorted(target.methods),
                        "seeds" if not can["icl"] else "sources", sorted(runnable), target.lang)
        elif set(runnable) != set(target.methods):
            log.warning("--targets-from: %s: method(s) %s dropped (the job has no %s for them)", target.lang,
                        sorted(set(target.methods) - set(runnable)), "seeds" if not can["icl"] else "sources")
        if not runnable:
            raise ConfigError(f"--targets-from {path}: target {target.lang} needs native seeds (icl) or `sources:` "
                              f"(translate), and the job has neither for it; add a target for {target.lang} with "
                              f"seeds to the job, or `sources:`")
        merged.append(target.model_copy(update={"methods": runnable, "seeds": seeds,
                                                "lid": own.lid if own is not None else target.lid}))
    data = job.model_dump()
    data["targets"] = [t.model_dump() for t in merged]
    try:
        result = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(Path(path), exc)) from None
    for a, b in zip(result.targets, merged):  # keep the seeds' absolute paths as parse_job made them
        a.seeds = b.seeds
    if job.sources is not None:
        result.sources = job.sources
    _guard_prompts(result, Path(path), origin)
    return result, origin


def _guard_prompts(job: JobConfig, path: Path, origin: dict) -> None:
    """The evaluation's local prompt files join the job's contamination sets: the next round must not
    train on the prompts it will be measured on."""
    from synth.config import ContaminationConfig

    work = (path if path.is_dir() else path.parent) / "_work" / "eval.json"
    try:
        prompts = json_value(work.read_bytes()).get("prompts", [])
    except (OSError, ValueError, AttributeError):
        return
    files = [Path(p["path"]) for p in prompts if isinstance(p, dict) and Path(str(p.get("path", ""))).is_file()]
    skipped = [p.get("path") for p in prompts if isinstance(p, dict) and not Path(str(p.get("path", ""))).is_file()]
    if skipped:
        log.warning("--targets-from: evaluation prompts %s are not local files; add a local copy to "
                    "verify.contamination.paths to keep them out of the training rows", skipped)
    if not files:
        return
    from synth.verify.pipeline import load_preset

    if "contamination" not in load_preset(job.verify.preset).filters:
        log.warning("--targets-from: the job's preset %r has no contamination filter, so the evaluation's prompt "
                    "files (%s) are not checked against the training rows; use a preset that lists it (default does)",
                    job.verify.preset, ", ".join(str(f) for f in files))
        return
    if job.verify.contamination is None:
        job.verify.contamination = ContaminationConfig(paths=files)
    else:
        job.verify.contamination.paths += [f for f in files if f not in job.verify.contamination.paths]
    origin["contamination_paths"] = [str(f) for f in files]
    log.info("--targets-from: the evaluation's prompt files join the contamination sets: %s",
             ", ".join(str(f) for f in files))

"""Every check of an evaluation that can fail before an engine starts: prompts, languages, templates,
the offline checks, the previous round; ConfigError (exit 2) naming the key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from synth.errors import ConfigError
from synth.eval import scoring
from synth.eval.config import EvalConfig
from synth.eval.items import Item, check_scorable, load_items


@dataclass
class PreparedEval:
    """An evaluation whose every reference resolved: items, languages, templates, the offline checks."""

    config: EvalConfig
    items: list[Item]
    languages: dict
    verifier: object
    judge: scoring.EvalJudge | None
    pairwise: scoring.PairwiseJudge | None
    inputs: dict[str, str]
    previous: dict[tuple[str, str], int] | None

    def config_hash(self) -> str:
        return self.config.config_hash(self.inputs)


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def _previous_rows(path: Path) -> dict[tuple[str, str], int]:
    """Rows per (language, category) of a previous round: a job file's or a next_targets.yaml's targets."""
    from synth.eval.targets import read_targets
    from synth.plan import cell_targets

    rows: dict[tuple[str, str], int] = {}
    for target in read_targets(path, "allocation.previous")[0]:
        for (lang, _method, category), n in cell_targets(target).items():
            rows[(lang, category)] = rows.get((lang, category), 0) + n
    return rows


def prepare_eval(config: EvalConfig) -> PreparedEval:
    """Every check that can fail before an engine starts; ConfigError (exit 2) naming the key."""
    from synth.datasource import input_digest
    from synth.languages import load_registry
    from synth.prompts import load_prompts
    from synth.verify.pipeline import load_preset

    registry = dict(load_registry())
    if config.languages_dir is not None:
        registry.update(load_registry(str(config.languages_dir)))
    items = load_items(config.prompts)
    unknown = sorted({i.lang for i in items} - set(registry))
    if unknown:
        first = next(i for i in items if i.lang in unknown)
        raise ConfigError(f"{first.origin}: unknown language(s) {unknown}; add languages/<code>.yaml (languages_dir) "
                          f"or use registry codes (`synth languages`)")
    check_scorable(items, config.judge is not None)
    from synth.models import check_model_spec

    for key, engine in config.engines().items():  # a bundled name that does not exist: before any answer
        if engine.type == "vllm":
            try:
                check_model_spec(engine.model)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("engine.model", f"{'judge.engine' if key == 'judge' else key}.model")) from None
    preset = load_preset(config.preset)
    languages = {code: registry[code] for code in sorted({i.lang for i in items})}
    verifier = scoring.language_verifier(preset, languages)  # a language no LID covers is refused here
    prompts = dict(load_prompts())
    if config.prompts_dir is not None:
        prompts.update(load_prompts(config.prompts_dir))
    judge = pairwise = None
    if config.judge is not None:
        for key, name, method in (("judge.prompt", config.judge.prompt, "judge"),
                                  ("judge.pairwise_prompt", config.judge.pairwise_prompt, "judge_pairwise")):
            if name not in prompts or prompts[name].method != method:
                names = sorted(n for n, t in prompts.items() if t.method == method)
                raise ConfigError(f"{key}: no {method} template {name!r}; {method} templates: {names}")
        judge = scoring.EvalJudge(prompts[config.judge.prompt], languages, config.judge.max_tokens)
        missing = set(judge.template.variables) - {"language", "turns", "text", "reference"}
        if missing:
            raise ConfigError(f"judge.prompt: template {config.judge.prompt!r} uses {sorted(missing)}; an evaluation "
                              f"judge template may use language, turns, text, reference")
        if config.baseline is not None:
            pairwise = scoring.PairwiseJudge(prompts[config.judge.pairwise_prompt], languages, config.judge.max_tokens)
    inputs = {}
    for entry in config.prompts:
        named = input_digest(entry)
        if named is not None:
            inputs[named[0]] = named[1]
        else:
            inputs[str(Path(entry.path).absolute())] = _digest(Path(entry.path))
    inputs["templates"] = ",".join(f"{t.name}={t.hash}" for t in (judge and judge.template, pairwise and pairwise.template) if t)
    previous = _previous_rows(config.allocation.previous) if config.allocation.previous is not None else None
    return PreparedEval(config, items, languages, verifier, judge, pairwise, inputs, previous)

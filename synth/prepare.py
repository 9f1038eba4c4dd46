"""Every check a job needs before work starts: languages, prompts, seeds, sources, preset, engine.

A mistake raises ConfigError naming the field and the fix (the CLI exits 2); nothing is written and
no engine is started. Templates are trial-rendered here, so a template that fails or runs away is
refused before the engines start.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from collections import Counter
from dataclasses import dataclass, field

from synth.budget import check_config as check_budget
from synth.config import JobConfig
from synth.conversations import Conversation
from synth.datasource import load_entry
from synth.errors import ConfigError
from synth.engines.capabilities import EngineNeeds
from synth.judging import JudgeStage
from synth.languages import LanguageSpec, load_registry
from synth.methods.base import Row
from synth.methods.icl import IclMethod, pair_schema
from synth.methods.translate import TranslateMethod
from synth.models import check_model_spec
from synth.plan import Attempt, seeds_needed, sources_needed
from synth.prompts import PromptTemplate, RenderLimit, load_prompts
from synth.standardise import Standardiser
from synth.verify import FilterPreset, load_preset
from synth.verify.judge import verdict_schema
from synth.verify.lid.router import LidRouter, uncovered_message


@dataclass
class PreparedJob:
    """A job whose every reference (languages, prompts, seeds, sources, preset) resolved."""

    job: JobConfig
    languages: dict[str, LanguageSpec]
    prompts: dict[str, PromptTemplate]
    seeds: dict[str, list[Conversation]] = field(default_factory=dict)
    sources: list[Conversation] = field(default_factory=list)
    preset: FilterPreset | None = None
    lid_skip: set[str] = field(default_factory=set)
    custom_prompts: dict[str, PromptTemplate] = field(default_factory=dict)
    judge: JudgeStage | None = None  # the LLM judge, when the job enables it
    filters: list = field(default_factory=list)  # synth.verify.Filter objects added from code (Job.add_filter)
    methods: tuple = (None, None)  # (IclMethod | None, TranslateMethod | None), built once (build_methods)
    standardiser: Standardiser | None = None  # the preset's standardisation stage
    standardised_inputs: dict = field(default_factory=dict)  # {lang: {rule: n}} of the seeds and sources
    targets_from: dict | None = None  # the evaluation whose next_targets.yaml replaced the targets (--targets-from)

    def engine_needs(self) -> EngineNeeds:
        """The features the job's engine is asked for (its preflight tries each): structured output
        for ICL and for the judge when it runs on this engine, the ICL prefix, per-request seeds."""
        icl = self.methods[0]
        schemas = {}
        if icl is not None and icl.structured:
            schemas["icl.structured"] = pair_schema(notes=False)
        if self.judge is not None and self.job.judge.engine is None:
            schemas["judge.enabled"] = verdict_schema()
        return EngineNeeds(schemas=schemas, strict=frozenset(schemas) & {"icl.structured"},
                           prefix=icl is not None and not icl.structured, seeds=self.job.sampling.seed is not None)

    def config_hash(self) -> str:
        """The job's hash, plus the hashes of prompts added from code (their text is not in the YAML) and
        the standardisation rules with their versions (a new rule changes the rows)."""
        standardise = json.dumps(self.standardiser.fingerprint(), sort_keys=True) if self.standardiser else ""
        if not self.custom_prompts and not self.filters and not standardise:
            return self.job.config_hash()
        extra = f"standardise={standardise}," + ",".join(f"{n}={t.hash}" for n, t in sorted(self.custom_prompts.items()))
        extra += "".join(f",filter={type(f).__module__}.{type(f).__qualname__}:{f.name}" for f in self.filters)
        return hashlib.sha256(f"{self.job.config_hash()}|{extra}".encode()).hexdigest()[:16]


def _prompt(prompts: dict[str, PromptTemplate], name: str, method: str, where: str) -> PromptTemplate:
    if name not in prompts:
        raise ConfigError(f"{where}: no prompt template {name!r}; available: {', '.join(sorted(prompts))}")
    if prompts[name].method != method:
        raise ConfigError(f"{where}: prompt {name!r} is for method {prompts[name].method!r}, not {method!r}")
    return prompts[name]


def prepare(job: JobConfig, extra_prompts: dict[str, PromptTemplate] | None = None) -> PreparedJob:
    """Every check that can fail before work starts. No side effects."""
    langs_dir = str(job.languages_dir) if job.languages_dir else None
    registry = dict(load_registry())
    if langs_dir:
        registry.update(load_registry(langs_dir))
    languages: dict[str, LanguageSpec] = {}
    for i, target in enumerate(job.targets):
        if target.lang not in registry:
            raise ConfigError(
                f"targets[{i}].lang: unknown language {target.lang!r}; add languages/{target.lang}.yaml "
                f"or use one of: {', '.join(sorted(registry))}"
            )
        languages[target.lang] = registry[target.lang]
        pivot = languages[target.lang].reasoning_language  # ICL prompts name it (registry checked it exists)
        languages.setdefault(pivot, registry[pivot])
    prompts = load_prompts()
    if job.prompts_dir:
        prompts.update(load_prompts(job.prompts_dir))
    prompts.update(extra_prompts or {})
    prepared = PreparedJob(job, languages, prompts, custom_prompts=dict(extra_prompts or {}))

    uses = {m for t in job.targets for m in t.methods}
    if "icl" in uses:
        _prompt(prompts, job.icl.prompt, "icl", "icl.prompt")
    for i, target in enumerate(job.targets):
        if "icl" not in target.methods:
            continue
        if target.seeds is None:
            raise ConfigError(f"targets[{i}].seeds: method icl needs native seed examples for {target.lang}; "
                              f"give a JSONL file of {{category, messages}} or drop icl from targets[{i}].methods")
        seeds = load_entry(target.seeds, f"targets[{i}].seeds", need=seeds_needed(job, target))
        prepared.seeds[target.lang] = seeds
    if "translate" in uses:
        _prompt(prompts, job.translate.prompt, "translate", "translate.prompt")
        _prompt(prompts, job.translate.back_prompt, "back_translate", "translate.back_prompt")
        if job.sources is None:
            raise ConfigError("sources: method translate needs `sources: {path: <English SFT JSONL>}`")
        if job.sources.lang not in registry:
            raise ConfigError(f"sources.lang: unknown language {job.sources.lang!r}; add languages/{job.sources.lang}.yaml")
        languages[job.sources.lang] = registry[job.sources.lang]
        prepared.sources = load_entry(job.sources, "sources", quotas=sources_needed(job), path_field="sources.path")
        have = Counter(s.category or "open_qa" for s in prepared.sources)
        for i, target in enumerate(job.targets):
            if "translate" in target.methods:
                missing = [c for c in target.categories if not have[c]]
                if missing:
                    raise ConfigError(f"targets[{i}].categories: no source conversations of category {missing} in "
                                      f"{job.sources.path}; add some or remove the category")

    prepared.preset = load_preset(job.verify.preset)
    prepared.standardiser = Standardiser(prepared.preset.standardise, languages)
    _standardise_inputs(prepared, job.sources.lang if job.sources else None)
    if "lid" in prepared.preset.filters:
        prepared.lid_skip |= {target.lang for target in job.targets if target.lid == "skip"}
        router = LidRouter(languages, prepared.preset.lid_model, prepared.preset.lid_backends, prepared.lid_skip)
        for i, target in enumerate(job.targets):
            if target.lid != "skip" and not router.covers(target.lang):
                raise ConfigError(f"targets[{i}].lang: {uncovered_message(router, [target.lang])} "
                                  f"(`lid: skip` on targets[{i}])")
    for lang, values in job.verify.thresholds.items():
        if lang not in languages:
            raise ConfigError(f"verify.thresholds.{lang}: not a target language of this job")
        unknown = set(values) - set(prepared.preset.filters)
        if unknown:
            raise ConfigError(f"verify.thresholds.{lang}: unknown filters {sorted(unknown)}; preset has {prepared.preset.filters}")
    if job.verify.laser_dir is not None and not job.verify.laser_dir.is_dir():
        raise ConfigError(f"verify.laser_dir: {job.verify.laser_dir} is not a directory; create it (LASER weights "
                          f"download there when online) or remove the key")
    if job.verify.contamination is not None:
        for i, path in enumerate(job.verify.contamination.paths):
            if not path.is_file():
                raise ConfigError(f"verify.contamination.paths[{i}]: {path} not found; give an evaluation set "
                                  f"(JSONL, Parquet or text) or remove it from the list")
        if "contamination" not in prepared.preset.filters:
            raise ConfigError(f"verify.contamination: preset {prepared.preset.name!r} has no contamination filter; "
                              f"add `contamination` to its filters or remove verify.contamination")
    if job.engine.type == "vllm":
        check_model_spec(job.engine.model)
    elif job.engine.api_key_env and job.engine.api_key_env not in os.environ:
        raise ConfigError(f"engine.api_key_env: the environment variable {job.engine.api_key_env} is not set; "
                          f"export it, or set api_key_env: null for a server without a key")
    check_budget(job)
    if job.judge.enabled:
        prepared.judge = JudgeStage(job.judge, languages, prepared.preset, prompts)
    _trial_render(prepared)
    return prepared


def standardised(conversation: Conversation, lang: str | None, standardiser: Standardiser) -> Conversation:
    """A seed or source conversation with every message standardised for `lang`."""
    messages = tuple((role, standardiser.apply(content, lang).text) for role, content in conversation.messages)
    return conversation if messages == conversation.messages else replace(conversation, messages=messages)


def _standardise_inputs(prepared: PreparedJob, source_lang: str | None) -> None:
    """Seeds and sources standardised when loaded, before prompts show them and before dedup remembers them."""
    std = prepared.standardiser
    prepared.seeds = {lang: [standardised(s, lang, std) for s in seeds] for lang, seeds in prepared.seeds.items()}
    prepared.sources = [standardised(s, source_lang, std) for s in prepared.sources]
    prepared.standardised_inputs = std.manifest()


def build_methods(prepared: PreparedJob) -> tuple[IclMethod | None, TranslateMethod | None]:
    """The generation methods the job uses (None for one it does not)."""
    job, p = prepared.job, prepared
    seed = job.sampling.seed or 0  # seed choice and source order stay reproducible without request seeds
    icl = translate = None
    if p.seeds:
        icl = IclMethod(p.prompts[job.icl.prompt], p.languages, p.seeds, job.icl.k, seed, job.engine.model,
                        structured=job.icl.structured)
    if p.sources:
        translate = TranslateMethod(p.prompts[job.translate.prompt], p.prompts[job.translate.back_prompt],
                                    p.languages, p.sources, job.sources.lang, seed, job.engine.model,
                                    max_chars=job.translate.max_chars, max_source_chars=job.translate.max_source_chars)
    return icl, translate


def _trial_render(prepared: PreparedJob) -> None:
    """Render each target's first request of each method now, under the render limits: a template that
    fails or runs away is exit 2 before any engine starts (not a half-started run)."""
    icl, translate = prepared.methods = build_methods(prepared)
    for i, target in enumerate(prepared.job.targets):
        try:
            if icl and "icl" in target.methods:
                icl.requests([Attempt(target.lang, "icl", c, 0) for c in target.categories])
            if translate and "translate" in target.methods:
                attempts = [Attempt(target.lang, "translate", c, 0) for c in target.categories]
                translate.requests(attempts)
                sample = [{"role": r, "content": c} for r, c in translate.source(attempts[0]).messages]
                translate.back_requests([Row(id="trial", lang=target.lang, method="translate", category="",
                                             prompt="", model="", messages=sample)])
        except RenderLimit as exc:
            raise ConfigError(f"targets[{i}] ({target.lang}): {exc}; fix the template") from None

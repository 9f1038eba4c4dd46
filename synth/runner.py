"""Drives one job: check the config, plan rounds, generate on Ray, verify, write shards.

A round is generated in slices (a few engine batches each) and every slice is committed to
`DIR/_work/round-NNNN-PPPPP.parquet` as it finishes: driver memory stays bounded however large the
round, and a killed run resumes after the last committed slice with the same deterministic attempt
ids (no row lost, none duplicated).

Verification is pipelined with generation: verifier actors score slice k while the engine generates
slice k+1; then the driver applies dedup and the per-cell surplus decision to slice k and commits it,
strictly in slice order, so accepted rows do not depend on timing or on the number of workers. At
the end of a round the pipeline drains: the planner sizes the next round from this round's acceptance.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from synth.config import JobConfig, parse_job
from synth.conversations import Conversation, load_conversations
from synth.errors import ConfigError
from synth.languages import LanguageSpec, load_registry
from synth.methods.base import Attempt, Row
from synth.methods.icl import IclMethod
from synth.methods.translate import TranslateMethod
from synth.models import BUNDLED_NOTE, check_model_spec, is_bundled
from synth.plan import Planner
from synth.progress import RunProgress
from synth.prompts import PromptTemplate, load_prompts
from synth.shards import (WORK, OutPath, atomic_write_bytes, atomic_write_json, atomic_write_parquet,
                          output_location, read_committed, remove_temporaries, remove_tree, rows_frame)
from synth.verify import FilterPreset, Verifier, load_preset
from synth.verify.base import Candidate
from synth.verify.lid import load_lid
from synth.verify.workers import Pending, VerificationPool, VerifierSpec

log = logging.getLogger("synth")


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

    def config_hash(self) -> str:
        """The job's hash, plus the hashes of prompts added from code (their text is not in the YAML)."""
        if not self.custom_prompts:
            return self.job.config_hash()
        extra = ",".join(f"{n}={t.hash}" for n, t in sorted(self.custom_prompts.items()))
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
        seeds = load_conversations(target.seeds, f"targets[{i}].seeds")
        prepared.seeds[target.lang] = seeds
    if "translate" in uses:
        _prompt(prompts, job.translate.prompt, "translate", "translate.prompt")
        _prompt(prompts, job.translate.back_prompt, "back_translate", "translate.back_prompt")
        if job.sources is None:
            raise ConfigError("sources: method translate needs `sources: {path: <English SFT JSONL>}`")
        if job.sources.lang not in registry:
            raise ConfigError(f"sources.lang: unknown language {job.sources.lang!r}; add languages/{job.sources.lang}.yaml")
        languages[job.sources.lang] = registry[job.sources.lang]
        prepared.sources = load_conversations(job.sources.path, "sources.path")
        have = Counter(s.category or "open_qa" for s in prepared.sources)
        for i, target in enumerate(job.targets):
            if "translate" in target.methods:
                missing = [c for c in target.categories if not have[c]]
                if missing:
                    raise ConfigError(f"targets[{i}].categories: no source conversations of category {missing} in "
                                      f"{job.sources.path}; add some or remove the category")

    prepared.preset = load_preset(job.verify.preset)
    if "lid" in prepared.preset.filters:
        lid = load_lid(prepared.preset.lid_model)
        for i, target in enumerate(job.targets):
            if target.lid == "skip":
                prepared.lid_skip.add(target.lang)
                continue
            label = languages[target.lang].lid_label
            if not lid.covers(label):
                raise ConfigError(
                    f"targets[{i}].lang: {target.lang} is not covered by the LID model {lid.path.name}; "
                    f"set verify preset `lid_model` to a model that covers it (e.g. GlotLID) "
                    f"or set `lid: skip` on targets[{i}] to verify it without language ID"
                )
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
    return prepared


def _record(row: Row, verdict, score_names: list[str], round_no: int, now: datetime) -> dict:
    return {
        "id": row.id, "lang": row.lang, "method": row.method, "category": row.category,
        "messages": row.messages, "source_id": row.source_id, "source_lang": row.source_lang,
        "model": row.model, "prompt": row.prompt,
        "scores": {n: (verdict.scores.get(n) if verdict else None) for n in score_names},
        "created_at": now, "accepted": bool(verdict and verdict.accepted),
        "reject_reasons": [row.error] if row.error else (verdict.reasons if verdict else []),
        "reject_details": [row.error_detail] if row.error else (verdict.details if verdict else []),
        "raw_output": row.raw_output, "back_translation": row.back_translation,
        "source_messages": row.source_messages, "round": round_no,
    }


def ensure_ray() -> None:
    """Join the cluster in RAY_ADDRESS (as `ray job submit` sets it), or start a local Ray, once."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)


def start_engine(job: JobConfig):
    """The engine the config's `engine.type` names: vLLM replicas on Ray, or an OpenAI-compatible API."""
    if job.engine.type == "openai":
        from synth.engines.openai_api import OpenAIEngine

        log.info("using the OpenAI-compatible endpoint %s (model %s)", job.engine.base_url, job.engine.model)
        return OpenAIEngine(job.engine, job.sampling)
    from synth.engines.vllm_actor import VllmReplicaPool
    from synth.models import resolve_model

    ensure_ray()
    log.info("starting %s vLLM replica(s) for %s", job.engine.replicas, job.engine.model)
    return VllmReplicaPool(job.engine, resolve_model(job.engine.model), job.sampling)


class JobRun:
    """One run of a prepared job into an output directory."""

    def __init__(self, prepared: PreparedJob, output: str | OutPath, force_new: bool = False):
        self.p = prepared
        self.job = prepared.job
        self.out = output_location(output)  # a local path, or an fsspec URL (s3://, gs://, memory://)
        self.force_new = force_new
        self.config_hash = prepared.config_hash()

    # ---- output directory state -------------------------------------------------------------
    def check_output(self) -> str:
        """'new', 'resume' or 'complete'; refuses a directory holding another job (exit 2)."""
        state_file = self.out / WORK / "state.json"
        manifest = self.out / "manifest.json"
        if self.force_new and self.out.exists():
            return "new"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if state["config_hash"] != self.config_hash:
                raise ConfigError(
                    f"--output {self.out}: holds a run of a different config (hash {state['config_hash']}, "
                    f"this job {self.config_hash}); use another --output or pass --force-new to start over"
                )
            if manifest.exists() and json.loads(manifest.read_text()).get("status") in ("complete", "partial"):
                return "complete"
            return "resume"
        if self.out.exists() and any(self.out.iterdir()):
            raise ConfigError(f"--output {self.out}: directory is not empty and holds no synth run; "
                              f"use an empty or new directory, or pass --force-new to replace it")
        return "new"

    # ---- the job ------------------------------------------------------------------------------
    def run(self, engine=None) -> dict:
        """Run (or resume) the job; `engine`: an already started engine to use (the caller shuts it down)."""
        state = self.check_output()
        if state == "complete":
            manifest = json.loads((self.out / "manifest.json").read_text())
            log.info("%s already holds a finished run of this job: nothing to do", self.out)
            return manifest
        if state == "new" and self.out.exists():
            remove_tree(self.out)
        work = self.out / WORK
        work.mkdir(parents=True, exist_ok=True)
        started = datetime.now(timezone.utc)
        if state == "new":
            atomic_write_json(work / "state.json", {"config_hash": self.config_hash, "started_at": started.isoformat()})
        else:
            started = datetime.fromisoformat(json.loads((work / "state.json").read_text())["started_at"])
            if removed := remove_temporaries(self.out):
                log.info("removed %d temporary file(s) of the killed run: %s", len(removed), ", ".join(removed))
        atomic_write_bytes(work / "job.json", self.job.model_dump_json(indent=2).encode())

        job, p = self.job, self.p
        # the driver's verifier (dedup memory, names for the manifest) and the workers' are built alike
        verifier_spec = VerifierSpec((p.preset, p.languages, set(p.lid_skip), job.verify.laser_dir, job.verify.thresholds),
                                     {"contamination": job.verify.contamination})
        verifier = verifier_spec.build()
        score_names = verifier.score_names()
        model_label = job.engine.model
        icl = translate = None
        if p.seeds:
            icl = IclMethod(p.prompts[job.icl.prompt], p.languages, p.seeds, job.icl.k, job.sampling.seed, model_label,
                            structured=job.icl.structured)
        if p.sources:
            translate = TranslateMethod(p.prompts[job.translate.prompt], p.prompts[job.translate.back_prompt],
                                        p.languages, p.sources, job.sources.lang, job.sampling.seed, model_label,
                                        max_chars=job.translate.max_chars)
        capacity = {}
        for target in job.targets:
            if translate and "translate" in target.methods:
                for category in target.categories:
                    capacity[(target.lang, "translate", category)] = translate.capacity(category)
        planner = Planner(job, capacity)
        if verifier.dedup:  # a generated row must not repeat a seed
            for lang, seeds in p.seeds.items():
                verifier.dedup.remember(lang, (s.first("user") + "\n\n" + s.first("assistant") for s in seeds))

        previous = read_committed(self.out)
        self._resumed: _Resumed | None = self._restore(previous, planner, verifier) if previous is not None else None
        self._display = RunProgress(
            {t.lang: t.rows for t in job.targets},
            accepted=Counter(previous.filter(pl.col("accepted"))["lang"].to_list()) if previous is not None else None,
            attempts=Counter(previous["lang"].to_list()) if previous is not None else None)

        work_left = self._work_left(planner)
        if not work_left:
            log.info("nothing left to generate: writing the outputs from the committed rounds")
        pool = engine or (start_engine(job) if work_left else None)
        verification = None
        self._tokens_time = 0.0
        try:
            verification = self._start_verification(verifier_spec, verifier) if work_left else None
            self._display.start()
            slice_size = getattr(pool, "slice_size", 1024)
            while attempts := planner.next_round():
                round_no = planner.rounds
                attempts, first_part = self._skip_committed(round_no, attempts, planner)
                scoring: _Slice | None = None
                for part, start in enumerate(range(0, len(attempts), slice_size), start=first_part):
                    t0 = time.time()
                    rows = self._generate(attempts[start:start + slice_size], icl, translate, pool)
                    self._tokens_time += time.time() - t0
                    if scoring:  # scored on the workers while this slice was generated
                        self._commit(scoring, verifier, planner, score_names)
                    candidates = [r.candidate() for r in rows if r.error is None]
                    scoring = _Slice(round_no, part, rows, candidates, verification.submit(candidates))
                if scoring:  # drain: the next round is sized from this round's acceptance
                    self._commit(scoring, verifier, planner, score_names)
        finally:
            if verification:
                verification.shutdown()
            if engine is None and pool is not None:
                pool.shutdown()
            self._display.close()
        from synth.report import finish_run

        return finish_run(self.out, p, planner, verifier, started, model_note=BUNDLED_NOTE if is_bundled(job.engine.model) else None)

    def _generate(self, attempts: list[Attempt], icl, translate, pool) -> list[Row]:
        icl_attempts = [a for a in attempts if a.method == "icl"]
        tr_attempts = [a for a in attempts if a.method == "translate"]
        icl_requests = icl.requests(icl_attempts) if icl_attempts else []
        tr_requests = translate.requests(tr_attempts) if tr_attempts else []
        completions = pool.generate(icl_requests + tr_requests)
        rows = icl.rows(icl_attempts, completions[: len(icl_requests)]) if icl_attempts else []
        if tr_attempts:
            tr_rows = translate.rows(tr_attempts, completions[len(icl_requests):])
            back = translate.back_requests(tr_rows)
            translate.add_back_translations(tr_rows, pool.generate(back) if back else [])
            rows += tr_rows
        return rows

    def _start_verification(self, spec: VerifierSpec, verifier: Verifier) -> VerificationPool:
        settings = self.job.verify
        if settings.workers != 0:
            ensure_ray()  # e.g. engine.type openai: Ray only for the verifiers
        return VerificationPool(spec, verifier, settings.workers, settings.num_cpus, settings.laser_num_gpus)

    def _commit(self, done: "_Slice", verifier: Verifier, planner: Planner, score_names: list[str]) -> None:
        """Dedup and surplus on a scored slice (in slice order), then its atomic commit to _work/."""
        verdicts = self._verify(done.rows, done.candidates, done.scoring.result(), verifier, planner)
        now = datetime.now(timezone.utc)
        records = (_record(r, v, score_names, done.round_no, now) for r, v in zip(done.rows, verdicts))
        name = f"round-{done.round_no:04d}-{done.part:05d}.parquet"
        atomic_write_parquet(self.out / WORK / name, rows_frame(records, score_names))
        self._progress(planner, done.rows, self._tokens_time)

    def _verify(self, rows: list[Row], candidates: list[Candidate], scored: list, verifier: Verifier,
                planner: Planner) -> list:
        """Stateful verification in the driver: `scored` holds the stateless filters' verdicts of
        `candidates` (the rows without an error, in order)."""
        ok = [r for r in rows if r.error is None]
        verdicts = dict(zip((r.id for r in ok), verifier.finish(candidates, scored)))
        out = []
        for r in rows:
            verdict = verdicts.get(r.id)
            if verdict and verdict.accepted:
                cell = (r.lang, r.method, r.category)
                if planner.deficit(cell):
                    planner.record_accepted(cell)
                else:
                    verdict.accepted = False
                    verdict.reasons = ["surplus"]
                    verdict.details = ["passed every filter; the target of its method/category was already met"]
            out.append(verdict)
        return out

    def _progress(self, planner: Planner, rows: list[Row], seconds: float) -> None:
        accepted = Counter()
        for (lang, _, _), n in planner.accepted.items():
            accepted[lang] += n
        self._display.update(accepted, rows, seconds)

    # ---- resume ------------------------------------------------------------------------------
    def _restore(self, previous: pl.DataFrame, planner: Planner, verifier: Verifier) -> "_Resumed":
        """Planner and dedup memory as they were when the last committed round was planned: the loop
        plans that round again (same attempts, same ids) and `_skip_committed` drops its committed
        slices. A killed run so finishes with the rows an uninterrupted one would have attempted."""
        last = int(previous["round"].max())
        earlier = previous.filter(pl.col("round") < last)

        def cells(frame: pl.DataFrame) -> Counter:
            return Counter(zip(frame["lang"], frame["method"], frame["category"]))

        planner.restore(cells(earlier), cells(earlier.filter(pl.col("accepted"))), last - 1)
        if verifier.dedup:  # what verification remembered: every row that passed the filters, surplus too
            passed = previous.filter(pl.col("accepted") | (pl.col("reject_reasons").list.join(",") == "surplus"))
            for (lang,), group in passed.group_by("lang"):  # one call per language: the index is built in batches
                verifier.dedup.remember(lang, ["\n\n".join(m["content"] for m in messages)
                                               for messages in group["messages"].to_list()])
        parts = [int(path.name.split("-")[2].split(".")[0]) for path in (self.out / WORK).glob(f"round-{last:04d}-*.parquet")]
        log.info("resuming %s in round %d after %d committed slice(s) of it (%d rows committed in all)",
                 self.out, last, len(parts), previous.height)
        return _Resumed(last, previous.filter(pl.col("round") == last), max(parts) + 1)

    def _skip_committed(self, round_no: int, attempts: list[Attempt], planner: Planner) -> tuple[list[Attempt], int]:
        """In the round a killed run was in: the attempts not yet committed, and the first part number
        to use (committed acceptances go to the planner, as they did when they were made)."""
        resumed = self._resumed
        if resumed is None or resumed.round_no != round_no:
            return attempts, 0
        self._resumed = None
        done = set(resumed.rows["id"].to_list())
        if not done <= {a.id for a in attempts}:
            raise ConfigError(f"--output {self.out}: the committed round {round_no} does not match the plan of "
                              f"this job (its seed or source files changed?); pass --force-new to start over")
        accepted = resumed.rows.filter(pl.col("accepted"))
        for cell, n in Counter(zip(accepted["lang"], accepted["method"], accepted["category"])).items():
            planner.record_accepted(cell, n)
        return [a for a in attempts if a.id not in done], resumed.next_part

    def _work_left(self, planner: Planner) -> bool:
        """Whether any attempt remains (after a kill while finishing, none): no engine is started for nothing."""
        trial, resumed = copy.deepcopy(planner), self._resumed
        try:
            while attempts := trial.next_round():
                if self._skip_committed(trial.rounds, attempts, trial)[0]:
                    return True
            return False
        finally:
            self._resumed = resumed


@dataclass
class _Resumed:
    """The last round a killed run committed slices of."""

    round_no: int
    rows: pl.DataFrame
    next_part: int


@dataclass
class _Slice:
    """A generated slice whose scores are on their way back from the verifier workers."""

    round_no: int
    part: int
    rows: list[Row]
    candidates: list[Candidate]
    scoring: Pending


def run_job_file(job_path: Path, output: str | OutPath, force_new: bool = False) -> dict:
    prepared = prepare(parse_job(job_path))
    return JobRun(prepared, output, force_new).run()

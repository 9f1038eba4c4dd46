"""The round loop of one job: plan rounds, generate on Ray, verify, commit slices, write the outputs.

A round is generated in slices (a few engine batches each) and every slice is committed to
`DIR/_work/round-NNNN-PPPPP.parquet` as it finishes: driver memory stays bounded however large the
round, and a killed run resumes after the last committed slice with the same deterministic attempt
ids (no row lost, none duplicated).

Verification is pipelined with generation: verifier actors score slice k while the engine generates
slice k+1; then the driver applies dedup and the per-cell surplus decision to slice k and commits it,
strictly in slice order, so accepted rows do not depend on timing or on the number of workers. At
the end of a round the pipeline drains: the planner sizes the next round from this round's acceptance.

When the engine itself fails (EngineUnavailable), the process is told to stop (SIGTERM, SIGINT) or the
disk fills up (DiskFull), the slice in flight is dropped, the committed ones stay, the manifest says
`interrupted` (when it still fits on the disk), and the same command resumes with the same attempt ids.
"""

from __future__ import annotations

import copy
import errno
import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from synth import budget
from synth.engines.base import EngineUnavailable
from synth.engines.start import capabilities_of, ensure_ray, start_engine
from synth.errors import ConfigError, DiskFull, Interrupted, interrupt_in
from synth.inputs import input_digests
from synth.loading import json_text
from synth.methods.base import Row
from synth.methods.icl import IclMethod
from synth.methods.translate import TranslateMethod
from synth.models import BUNDLED_NOTE, is_bundled
from synth.plan import Attempt, Planner
from synth.prepare import PreparedJob
from synth.progress import RunProgress
from synth.rundir import RunDir
from synth.shards import (
    SLICE_NAME,
    WORK,
    OutPath,
    atomic_write_json,
    atomic_write_parquet,
    committed_slices,
    output_location,
    read_committed,
    rows_frame,
)
from synth.verify import Verifier
from synth.verify.base import Candidate
from synth.verify.judge import SCORE_NAMES as JUDGE_SCORES
from synth.verify.workers import Pending, VerificationPool, VerifierSpec

log = logging.getLogger("synth")
# what a resumed run reads of its committed rows (planner counts, dedup memory, the last round's ids):
# not the prompts, raw outputs and scores, most of a row's bytes (docs/scaling.md)
RESUME_COLUMNS = ["id", "lang", "method", "category", "accepted", "reject_reasons", "messages", "round"]
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}  # no room left (the device, or the user's quota)


def _record(row: Row, verdict, score_names: list[str], round_no: int, now: datetime) -> dict:
    return {
        "id": row.id, "lang": row.lang, "method": row.method, "category": row.category,
        "messages": row.messages, "source_id": row.source_id, "source_lang": row.source_lang,
        "model": row.model, "prompt_template": row.prompt,
        "scores": {n: (verdict.scores.get(n) if verdict else None) for n in score_names},
        "created_at": now, "accepted": bool(verdict and verdict.accepted),
        "reject_reasons": [row.error] if row.error else (verdict.reasons if verdict else []),
        "reject_details": [row.error_detail] if row.error else (verdict.details if verdict else []),
        "raw_output": row.raw_output, "back_translation": row.back_translation,
        "source_messages": row.source_messages, "round": round_no,
        "prompt_tokens": row.prompt_tokens, "output_tokens": row.output_tokens, "engine_s": row.engine_s,
        "raw_text": row.raw_text, "standardise_rules": row.standardise_rules,
    }


class JobRun:
    """One run of a prepared job into an output directory.

    `_run_locked` is the run, step by step: `_prepare` (verifier, planner, where a killed run stopped),
    `_engines` (start and preflight the engines; stop them however the run ends), `_open_and_generate`
    (`_open_rundir`, then each round: `_plan_round`, and per slice `_generate`, `_verify`, `_commit`;
    `_engine_failed` or a signal stops it early), `_write_outputs`."""

    def __init__(self, prepared: PreparedJob, output: str | OutPath, force_new: bool = False):
        self.p = prepared
        self.job = prepared.job
        self.out = output_location(output)  # a local path, or an fsspec URL (s3://, gs://, memory://)
        self.force_new = force_new
        self.config_hash = prepared.config_hash()
        # the inputs' contents, checked on resume apart from the config hash (which sees their paths)
        self.rundir = RunDir(self.out, self.config_hash, input_digests(prepared))
        self.engine_stats = {"retries": 0, "outages": 0}
        self._pool = None
        self._capabilities = None  # what the engine's preflight probe found (engines.capabilities)
        self._display: RunProgress | None = None

    def run(self, engine=None) -> dict:
        """Run (or resume) the job; `engine`: an already started engine to use (the caller shuts it down).

        Raises EngineUnavailable or Interrupted after writing an `interrupted` manifest."""
        if self.rundir.state(self.force_new) == "complete":  # read only: no lock needed to say so
            return self._already_finished()
        try:
            self.rundir.acquire()
        except OSError as exc:
            if exc.errno in DISK_FULL:  # not even the lock's few bytes fit
                raise DiskFull(self.out, exc) from None
            raise
        try:
            return self._run_locked(engine)
        except BaseException:
            # whatever stops the run before its first write (a plan that fails, a verifier that does not
            # build, a signal) leaves nothing: no lock, no empty _work/ (abandon keeps a started run's files)
            self.rundir.abandon()
            raise
        finally:
            self.rundir.release()

    def _run_locked(self, engine) -> dict:
        """The steps of a run, under the run directory's lock (docs/concepts.md: The steps of a run)."""
        state = self.rundir.state(self.force_new)  # again, under the lock: another run may have finished
        if state == "complete":
            return self._already_finished()
        setup = self._prepare(state)
        with self._engines(engine, setup.work_left) as pool:
            started, stopped = self._open_and_generate(state, setup, pool)
        manifest = self._write_outputs(setup, started, stopped)
        if stopped is not None:
            raise stopped
        return manifest

    # ---- the steps of a run ------------------------------------------------------------------
    def _already_finished(self) -> dict:
        log.info("%s already holds a finished run of this job: nothing to do", self.out)
        return json_text((self.out / "manifest.json").read_bytes(), f"{self.out}/manifest.json")

    def _prepare(self, state: str) -> "_Setup":
        """The driver's verifier, the planner and, on resume, where the killed run stopped; nothing is
        started or written yet."""
        job, p = self.job, self.p
        # the driver's verifier (dedup memory, names for the manifest) and the workers' are built alike
        scored_langs = {t.lang for t in job.targets} | ({job.sources.lang} if job.sources else set())
        driver_spec = VerifierSpec((p.preset, p.languages, set(p.lid_skip), job.verify.laser_dir, job.verify.thresholds),
                                   {"contamination": job.verify.contamination, "filters": list(p.filters),
                                    "meaning_langs": scored_langs})
        verifier = self._verifier = driver_spec.build()
        verifier_spec = driver_spec.for_workers(verifier)
        score_names = verifier.score_names() + (list(JUDGE_SCORES) if p.judge else [])
        icl, translate = p.methods
        capacity = {}
        for target in job.targets:
            if translate and "translate" in target.methods:
                for category in target.categories:
                    capacity[(target.lang, "translate", category)] = translate.capacity(category)
        planner = Planner(job, capacity)
        if verifier.dedup:  # a generated row must not repeat a seed
            for lang, seeds in p.seeds.items():
                verifier.dedup.remember(lang, (s.first("user") + "\n\n" + s.first("assistant") for s in seeds))

        previous = read_committed(self.out, RESUME_COLUMNS) if state == "resume" else None
        self._resumed: _Resumed | None = self._restore(previous, planner, verifier) if previous is not None else None
        work_left = self._work_left(planner)
        if not work_left:
            log.info("nothing left to generate: writing the outputs from the committed rounds")
        return _Setup(verifier, verifier_spec, score_names, icl, translate, planner, previous, work_left)

    @contextmanager
    def _engines(self, engine, work_left: bool):
        """The engine lifecycle: the job's engine (unless the caller gave one, or nothing is left to
        generate) and the judge's separate engine, if any, started and checked (preflight) before the
        run directory is written, so a wrong endpoint or a model that does not load is exit 2 with
        nothing written (the lock we made is taken back). Whatever ends the run (its end, an error, a
        signal), their retries and outages go to `engine_stats` and the engines this run started stop.

        Here, not in synth/engines/start.py: it holds the run's judge stage (synth.judging imports
        engines.start), its engine stats and its run directory."""
        judge = self.p.judge
        try:
            pool = self._pool = engine or (start_engine(self.job.engine, self.job.sampling, self.p.engine_needs())
                                           if work_left else None)
            self._capabilities = capabilities_of(pool) if pool is not None else None
            if judge and pool is not None:
                judge.start(pool, self.job.engine.model, self.job.sampling.seed or 0)
        except BaseException:
            if engine is None and self._pool is not None:
                self._pool.shutdown()
            self.rundir.abandon()
            raise
        try:
            yield pool
        finally:
            self._collect_engine_stats(pool)
            if judge:
                self._collect_engine_stats(judge.engine if judge.engine is not pool else None)
                judge.shutdown()
            if engine is None and pool is not None:
                pool.shutdown()

    def _open_and_generate(self, state: str, setup: "_Setup", pool) -> tuple[datetime, BaseException | None]:
        """Open the run directory, then round after round until the planner has nothing left. Returns
        when the run started and why it stopped early (None: it did not): the engine failed
        (EngineUnavailable), a signal came (Interrupted) or the disk filled up (DiskFull). The verifier workers and the progress
        display stop here however it ends."""
        verification = None
        self._scoring: _Slice | None = None
        stopped: BaseException | None = None
        self._tokens_time = 0.0
        started = datetime.now(timezone.utc)
        try:
            started = self._open_rundir(state, started)
            self._display = RunProgress(
                {t.lang: t.rows for t in self.job.targets},
                accepted=Counter(setup.previous.filter(pl.col("accepted"))["lang"].to_list()) if setup.previous is not None else None,
                attempts=Counter(setup.previous["lang"].to_list()) if setup.previous is not None else None)
            verification = self._start_verification(setup.verifier_spec, setup.verifier) if setup.work_left else None
            self._display.start()
            self._rounds(setup.planner, setup.verifier, setup.score_names, setup.icl, setup.translate, pool, verification)
        except EngineUnavailable as exc:
            stopped = self._engine_failed(exc, setup)
        except budget.BudgetSpent as exc:
            stopped = exc
            log.warning("%s: stopping after the slice that reached it", exc)
            if self._scoring:
                self._commit(self._scoring, setup.verifier, setup.planner, setup.score_names)
        except (Interrupted, SystemError) as exc:  # SystemError: a signal that arrived inside Ray's Cython code
            stopped = interrupt_in(exc)
            if stopped is None:
                raise
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            stopped = DiskFull(self.out, exc)
            log.error("%s", stopped)
        finally:
            if verification:
                verification.shutdown()
            if self._display is not None:
                self._display.close()
        return started, stopped

    def _open_rundir(self, state: str, now: datetime) -> datetime:
        """A new run directory (a finished run of another job in it cleared), or the killed run's
        without the temporaries of its earlier run (RunDir.begin); `_work/job.json` records the job.
        Returns when the run started."""
        started = self.rundir.begin(state, now)
        atomic_write_json(self.out / WORK / "job.json", self.job.public_dump(), root=self.out)
        return started

    def _rounds(self, planner: Planner, verifier: Verifier, score_names: list[str], icl, translate, pool,
                verification: VerificationPool) -> None:
        """Round after round until the planner has nothing left: each round in slices, slice k committed
        after slice k+1 was generated (scored meanwhile by the verifier workers)."""
        slice_size = getattr(pool, "slice_size", 1024)
        budget.check(self)  # plan.budget: a resumed run whose budget is spent generates nothing more
        while planned := self._plan_round(planner):
            round_no, attempts, first_part = planned
            self._scoring = None
            for part, start in enumerate(range(0, len(attempts), slice_size), start=first_part):
                t0 = time.time()
                rows = self._generate(attempts[start:start + slice_size], icl, translate, pool)
                self._tokens_time += time.time() - t0
                if self._scoring:  # scored on the workers while this slice was generated
                    self._commit(self._scoring, verifier, planner, score_names)
                candidates = [r.candidate() for r in rows if r.error is None]
                self._scoring = _Slice(round_no, part, rows, candidates, verification.submit(candidates))
                budget.check(self)  # between slices: BudgetSpent commits this one, then stops resumable
            if self._scoring:  # drain: the next round is sized from this round's acceptance
                self._commit(self._scoring, verifier, planner, score_names)
                self._scoring = None

    def _plan_round(self, planner: Planner) -> tuple[int, list[Attempt], int] | None:
        """The next round: its number, the attempts not committed yet and the first slice's part number;
        None when the planner has nothing left."""
        attempts = planner.next_round()
        if not attempts:
            return None
        round_no = planner.rounds
        attempts, first_part = self._skip_committed(round_no, attempts, planner)
        return round_no, attempts, first_part

    def _engine_failed(self, exc: EngineUnavailable, setup: "_Setup") -> EngineUnavailable:
        """The engine keeps failing: the run stops resumable. A slice generated before it failed and
        scored already is kept, unless it still needs the judge (it is generated again on resume)."""
        log.error("the engine failed: %s", exc)
        if self._scoring and not self.p.judge:
            self._commit(self._scoring, setup.verifier, setup.planner, setup.score_names)
        return exc

    def _write_outputs(self, setup: "_Setup", started: datetime, stopped: BaseException | None) -> dict:
        """Shards, manifest, card and report from every committed slice (status `interrupted` when the
        run stopped early); returns the manifest."""
        from synth.outputs import finish_run

        job, p = self.job, self.p
        note = BUNDLED_NOTE if is_bundled(job.engine.model) else None
        if note and p.judge and p.judge.config.engine is None:
            note += (" It is also this run's judge, and a weak one (its grades are near chance: bench/README.md); "
                     "set judge.engine to a bigger model for a judge worth its cost.")
        if isinstance(stopped, DiskFull) and not self.rundir.is_run():
            raise stopped  # stopped before its state was recorded: nothing committed, no outputs to write
        capabilities = self._capabilities
        engine_stats = {**self.engine_stats, "capabilities": capabilities.manifest() if capabilities else None}
        finish = dict(model_note=note, engine_stats=engine_stats, judge=p.judge.manifest() if p.judge else None)
        try:
            return finish_run(self.out, p, setup.planner, setup.verifier, started,
                              status="interrupted" if stopped else None, **finish)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            # the committed slices are whole (each renamed into place); the outputs are rebuilt on resume
            full = stopped if isinstance(stopped, DiskFull) else DiskFull(self.out, exc)
            if stopped is None:  # the disk filled while finishing: an `interrupted` manifest, if it fits
                try:
                    finish_run(self.out, p, setup.planner, setup.verifier, started, status="interrupted", **finish)
                except OSError as again:
                    if again.errno not in DISK_FULL:
                        raise
            log.error("no room left for the outputs (%s); the same command resumes once there is space", exc)
            raise full from None

    def _collect_engine_stats(self, pool) -> None:
        """Engine retries and outages of this process, for the manifest (apart from model rejects)."""
        for key in self.engine_stats:
            self.engine_stats[key] += int(getattr(pool, key, 0) or 0)

    def _generate(self, attempts: list[Attempt], icl, translate, pool) -> list[Row]:
        """The rows of `attempts`: one engine call for the forward requests, one for back-translations.
        Completions are joined to rows by request id inside the methods."""
        started = time.monotonic()
        icl_attempts = [a for a in attempts if a.method == "icl"]
        tr_attempts = [a for a in attempts if a.method == "translate"]
        requests = (icl.requests(icl_attempts) if icl_attempts else []) + \
            (translate.requests(tr_attempts) if tr_attempts else [])
        completions = pool.generate(requests) if requests else []
        rows = icl.rows(icl_attempts, completions) if icl_attempts else []
        for row in rows:  # after parsing, before any filter scores a row
            row.standardise(self.p.standardiser)
        if tr_attempts:
            tr_rows = translate.rows(tr_attempts, completions)
            for row in tr_rows:
                row.standardise(self.p.standardiser)
            wanted = tr_rows if self.job.translate.back_translate == "all" else self._cheap_survivors(tr_rows)
            back = translate.back_requests(wanted)
            translate.add_back_translations(wanted, pool.generate(back) if back else [])
            rows += tr_rows
        seconds, tokens = time.monotonic() - started, sum(r.output_tokens for r in rows)
        for r in rows:  # engine time shared by output tokens (evenly when none were generated)
            r.engine_s = seconds * (r.output_tokens / tokens if tokens else 1 / len(rows))
        return rows

    def _cheap_survivors(self, rows: list[Row]) -> list[Row]:
        """Forward translations that no cheap filter rejects: only these are worth a back-translation."""
        ok = [r for r in rows if r.error is None and r.messages is not None]
        failed = self._verifier.rejected_before_back_translation([r.candidate() for r in ok]) if ok else set()
        return [r for i, r in enumerate(ok) if i not in failed]

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
        atomic_write_parquet(self.out / WORK / name, rows_frame(records, score_names), root=self.out)
        self._progress(planner, done.rows, self._tokens_time)

    def _verify(self, rows: list[Row], candidates: list[Candidate], scored: list, verifier: Verifier,
                planner: Planner) -> list:
        """Stateful verification in the driver: `scored` holds the stateless filters' verdicts of
        `candidates` (the rows without an error, in order)."""
        ok = [r for r in rows if r.error is None]
        if self.p.judge:  # before dedup: a row the judge rejects must not block a later near-duplicate
            self.p.judge.apply(ok, scored)
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
        self._display.update(accepted, rows, seconds, engine_retries=int(getattr(self._pool, "retries", 0) or 0))

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
        parts = [int(m.group(2)) for m in (SLICE_NAME.fullmatch(p.name) for p in committed_slices(self.out))
                 if int(m.group(1)) == last]
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


@dataclass
class _Setup:
    """What `_prepare` made for the rest of the run."""

    verifier: Verifier  # the driver's: dedup memory, surplus, the names the manifest records
    verifier_spec: VerifierSpec  # how the verifier workers build theirs
    score_names: list[str]
    icl: IclMethod | None  # the job's methods (None for one it does not use)
    translate: TranslateMethod | None
    planner: Planner
    previous: pl.DataFrame | None  # the committed rows of a killed run (RESUME_COLUMNS)
    work_left: bool  # False: only the outputs remain to write, no engine is started

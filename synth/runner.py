"""The round loop of one job: plan rounds, generate on Ray, verify, commit slices, write the outputs.

A round is generated in slices (a few engine batches each) and every slice is committed to
`DIR/_work/round-NNNN-PPPPP.parquet` as it finishes: driver memory stays bounded however large the
round, and a killed run resumes after the last committed slice with the same deterministic attempt
ids (no row lost, none duplicated).

Verification is pipelined with generation: verifier actors score slice k while the engine generates
slice k+1; then the driver applies dedup and the per-cell surplus decision to slice k and commits it,
strictly in slice order, so accepted rows do not depend on timing or on the number of workers. At
the end of a round the pipeline drains: the planner sizes the next round from this round's acceptance.

When the engine itself fails (EngineUnavailable) or the process is told to stop (SIGTERM, SIGINT), the
slice in flight is dropped, the committed ones stay, the manifest says `interrupted`, and the same
command resumes with the same attempt ids.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from synth.engines.base import EngineUnavailable
from synth.engines.start import ensure_ray, start_engine
from synth.errors import ConfigError, Interrupted, interrupt_in
from synth.methods.base import Row
from synth.models import BUNDLED_NOTE, is_bundled
from synth.plan import Attempt, Planner
from synth.prepare import PreparedJob
from synth.progress import RunProgress
from synth.rundir import RunDir
from synth.shards import (
    WORK,
    OutPath,
    atomic_write_json,
    atomic_write_parquet,
    output_location,
    read_committed,
    remove_temporaries,
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
        "prompt_tokens": row.prompt_tokens, "output_tokens": row.output_tokens, "engine_s": row.engine_s,
        "raw_text": row.raw_text, "standardise_rules": row.standardise_rules,
    }


class JobRun:
    """One run of a prepared job into an output directory."""

    def __init__(self, prepared: PreparedJob, output: str | OutPath, force_new: bool = False):
        self.p = prepared
        self.job = prepared.job
        self.out = output_location(output)  # a local path, or an fsspec URL (s3://, gs://, memory://)
        self.force_new = force_new
        self.config_hash = prepared.config_hash()
        self.rundir = RunDir(self.out, self.config_hash)
        self.engine_stats = {"retries": 0, "outages": 0}
        self._pool = None

    def run(self, engine=None) -> dict:
        """Run (or resume) the job; `engine`: an already started engine to use (the caller shuts it down).

        Raises EngineUnavailable or Interrupted after writing an `interrupted` manifest."""
        if self.rundir.state(self.force_new) == "complete":  # read only: no lock needed to say so
            log.info("%s already holds a finished run of this job: nothing to do", self.out)
            return json.loads((self.out / "manifest.json").read_text())
        self.rundir.acquire()
        try:
            return self._run_locked(engine)
        finally:
            self.rundir.release()

    def _run_locked(self, engine) -> dict:
        state = self.rundir.state(self.force_new)  # again, under the lock: another run may have finished
        if state == "complete":
            log.info("%s already holds a finished run of this job: nothing to do", self.out)
            return json.loads((self.out / "manifest.json").read_text())
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
        # the engine is checked (preflight) before the run directory is written: a wrong endpoint or a
        # model that does not load is exit 2 with nothing written (the lock we made is taken back)
        try:
            pool = self._pool = engine or (start_engine(job.engine, job.sampling) if work_left else None)
            if p.judge and pool is not None:
                p.judge.start(pool, job.engine.model, job.sampling.seed or 0)
        except BaseException:
            if engine is None and self._pool is not None:
                self._pool.shutdown()
            self.rundir.abandon()
            raise
        verification = None
        self._scoring: _Slice | None = None
        stopped: BaseException | None = None
        self._tokens_time = 0.0
        try:
            started = datetime.now(timezone.utc)
            if state == "new":
                if self.rundir.is_run():
                    self.rundir.clear()
                self.rundir.start(started)
            else:
                started = self.rundir.started_at()
                if removed := remove_temporaries(self.out, RunDir.owns):
                    log.info("removed %d temporary file(s) of the killed run: %s", len(removed), ", ".join(removed))
            atomic_write_json(self.out / WORK / "job.json", job.public_dump())
            self._display = RunProgress(
                {t.lang: t.rows for t in job.targets},
                accepted=Counter(previous.filter(pl.col("accepted"))["lang"].to_list()) if previous is not None else None,
                attempts=Counter(previous["lang"].to_list()) if previous is not None else None)
            verification = self._start_verification(verifier_spec, verifier) if work_left else None
            self._display.start()
            self._rounds(planner, verifier, score_names, icl, translate, pool, verification)
        except EngineUnavailable as exc:
            stopped = exc
            log.error("the engine failed: %s", exc)
            if self._scoring and not p.judge:  # generated before the engine failed: keep it (unless it
                self._commit(self._scoring, verifier, planner, score_names)  # still needs the judge)
        except (Interrupted, SystemError) as exc:  # SystemError: a signal that arrived inside Ray's Cython code
            stopped = interrupt_in(exc)
            if stopped is None:
                raise
        finally:
            self._collect_engine_stats(pool)
            if p.judge:
                self._collect_engine_stats(p.judge.engine if p.judge.engine is not pool else None)
                p.judge.shutdown()
            if verification:
                verification.shutdown()
            if engine is None and pool is not None:
                pool.shutdown()
            if hasattr(self, "_display"):
                self._display.close()
        from synth.outputs import finish_run

        note = BUNDLED_NOTE if is_bundled(job.engine.model) else None
        if note and p.judge and p.judge.config.engine is None:
            note += (" It is also this run's judge, and a weak one (its grades are near chance: bench/README.md); "
                     "set judge.engine to a bigger model for a judge worth its cost.")
        manifest = finish_run(self.out, p, planner, verifier, started, model_note=note,
                              status="interrupted" if stopped else None, engine_stats=self.engine_stats,
                              judge=p.judge.manifest() if p.judge else None)
        if stopped is not None:
            raise stopped
        return manifest

    def _rounds(self, planner: Planner, verifier: Verifier, score_names: list[str], icl, translate, pool,
                verification: VerificationPool) -> None:
        """Round after round until the planner has nothing left: each round in slices, slice k committed
        after slice k+1 was generated (scored meanwhile by the verifier workers)."""
        slice_size = getattr(pool, "slice_size", 1024)
        while attempts := planner.next_round():
            round_no = planner.rounds
            attempts, first_part = self._skip_committed(round_no, attempts, planner)
            self._scoring = None
            for part, start in enumerate(range(0, len(attempts), slice_size), start=first_part):
                t0 = time.time()
                rows = self._generate(attempts[start:start + slice_size], icl, translate, pool)
                self._tokens_time += time.time() - t0
                if self._scoring:  # scored on the workers while this slice was generated
                    self._commit(self._scoring, verifier, planner, score_names)
                candidates = [r.candidate() for r in rows if r.error is None]
                self._scoring = _Slice(round_no, part, rows, candidates, verification.submit(candidates))
            if self._scoring:  # drain: the next round is sized from this round's acceptance
                self._commit(self._scoring, verifier, planner, score_names)
                self._scoring = None

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
        atomic_write_parquet(self.out / WORK / name, rows_frame(records, score_names))
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

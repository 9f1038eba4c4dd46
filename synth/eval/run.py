"""One evaluation into an output directory: answer, judge, score, write (docs/eval.md).

Work is committed in slices under DIR/_work like a run's rounds: the model's answers
(`answers-NNNNN.parquet`), the baseline's (`baseline-NNNNN.parquet`), the judge's grades
(`judge-NNNNN.parquet`) and pairwise verdicts (`pairwise-NNNNN.parquet`). A killed or failed
evaluation resumes after the last committed slice with the same request ids; the final files
(results.parquet, eval.json, report.html, next_targets.yaml) are rebuilt from the slices. The
directory's lock, state marker and deletion rules are synth run's (synth/rundir.py).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

import polars as pl

from synth.loading import load_json
from synth.config import DIMENSIONS
from synth.engines.base import GenerationRequest, SamplingConfig
from synth.errors import ConfigError
from synth.eval import scoring
from synth.eval.items import Item
from synth.eval.prepare import PreparedEval
from synth.eval.slices import committed_frame, done_slices
from synth.rundir import _TMP, RunDir
from synth.shards import WORK, OutPath, atomic_write_json, atomic_write_parquet, output_location, remove_temporaries
from synth.verify.base import Candidate

log = logging.getLogger("synth")

SLICE = 128  # items per committed slice (fixed: a resumed evaluation finds the same slices)
FINAL = ("results.parquet", "eval.json", "report.html", "next_targets.yaml")


class EvalDir(RunDir):
    """The output directory of `synth eval`: RunDir's rules over the evaluation's own files."""

    command = "synth eval"
    owned = re.compile(rf"^(?:{WORK}/(?:state\.json|eval\.json|lock|(?:answers|baseline|judge|pairwise)-\d{{5}}\.parquet)"
                       rf"|results\.parquet|eval\.json|report\.html|next_targets\.yaml|{_TMP})$")
    owned_dirs = re.compile(rf"^(?:{WORK})$")
    marks = {"eval.json": '"cells"', "report.html": "synth eval", "next_targets.yaml": "# synth eval"}
    finished = "eval.json"


class EvalRun:
    """`synth eval`: the phases in order, each resumable by slice."""

    def __init__(self, prepared: PreparedEval, output: str | OutPath, force_new: bool = False):
        self.p = prepared
        self.config = prepared.config
        self.out = output_location(output)
        self.force_new = force_new
        self.rundir = EvalDir(self.out, prepared.config_hash())
        self.engine_stats = {"retries": 0, "outages": 0}
        self.judge_usage = None
        self._begun = False  # this process wrote the state marker (or found one to resume)

    def run(self) -> dict:
        """Run or resume; returns eval.json. Raises EngineUnavailable or Interrupted with the committed
        slices kept (the same command resumes)."""
        if self.rundir.state(self.force_new) == "complete":
            log.info("%s already holds a finished evaluation of this config: nothing to do", self.out)
            return load_json(self.out / "eval.json", "evaluation result")
        self.rundir.acquire()
        try:
            state = self.rundir.state(self.force_new)
            if state == "complete":
                return load_json(self.out / "eval.json", "evaluation result")
            return self._run_locked(state)
        finally:
            self.rundir.release()

    def _started(self, state: str) -> None:
        """Written just before the first slice: a failed preflight leaves the directory untouched."""
        if self._begun or (self.rundir.is_run() and state != "new"):
            return
        self._begun = True
        if self.rundir.is_run():  # --force-new: the previous evaluation's files go (each checked to be synth's)
            self.rundir.clear()
        self.rundir.start(datetime.now(timezone.utc))
        atomic_write_json(self.out / WORK / "eval.json", self.config.public_dump())

    def _run_locked(self, state: str) -> dict:
        self._state = state
        if state == "resume":
            if removed := remove_temporaries(self.out, EvalDir.owns):
                log.info("removed %d temporary file(s) of the killed evaluation", len(removed))
        elif self.rundir.is_run():  # --force-new: refuse foreign files before any engine starts
            self.rundir.foreign_files()
        try:
            self._preflight_endpoints()
            self._answer("answers", self.config.model, state)
            if self.config.baseline is not None:
                self._answer("baseline", self.config.baseline, state)
            if self.p.judge is not None:
                self._judge(state)
        except BaseException:
            if not self.rundir.is_run():
                self.rundir.abandon()
            raise
        self._started(state)  # no-op unless nothing needed answering
        from synth.eval.outputs import finish_eval

        return finish_eval(self.out, self.p, self.engine_stats, self.judge_usage)

    def _preflight_endpoints(self) -> None:
        """The later phases' OpenAI-compatible endpoints are checked before the first answer is written
        (a wrong URL, key or model is exit 2 with nothing written); vLLM engines load when their phase
        starts, one at a time, so two models never share the memory."""
        later = []
        if self.config.baseline is not None and self._slices("baseline"):
            later.append(("baseline", self.config.baseline))
        if self.config.judge is not None and (self._slices("judge") or self._slices("pairwise")):
            later.append(("judge.engine", self.config.judge.engine))
        for key, engine_config in later:
            if engine_config.type == "openai":
                self._engine(key, engine_config, self.config.sampling).shutdown()

    def _slices(self, kind: str) -> list[tuple[int, list[Item]]]:
        # a new evaluation over a previous one (--force-new) redoes every slice: the old ones go at _started
        fresh = self._state == "new" and not self._begun
        done = done_slices(self.out, kind) if self.rundir.is_run() and not fresh else set()
        items = self.p.items
        return [(k, items[start:start + SLICE]) for k, start in enumerate(range(0, len(items), SLICE)) if k not in done]

    def _engine(self, key: str, engine_config, sampling: SamplingConfig):
        """An engine of the evaluation; its preflight's errors name the EVAL.yaml key (model, baseline,
        judge.engine), not a job's `engine`."""
        from synth.engines.start import start_engine

        try:
            return start_engine(engine_config, sampling)
        except ConfigError as exc:
            raise ConfigError(re.sub(r"\bengine\.", f"{key}.", str(exc))) from None

    def _stats(self, engine) -> None:
        for key in self.engine_stats:
            self.engine_stats[key] += int(getattr(engine, key, 0) or 0)

    def _answer(self, kind: str, engine_config, state: str) -> None:
        """Answers of one model (`answers` or `baseline`), a committed slice at a time."""
        pending = self._slices(kind)
        if not pending:
            return
        engine = self._engine("model" if kind == "answers" else "baseline", engine_config, self.config.sampling)
        try:
            self._started(state)
            for k, items in pending:
                requests = [GenerationRequest(id=f"{item.id}.{kind}", messages=item.messages) for item in items]
                by_id = {c.id: c for c in engine.generate(requests)}
                rows = []
                for item, request in zip(items, requests):
                    c = by_id.get(request.id)
                    rows.append({"id": item.id, "answer": c.text if c and not c.error else "",
                                 "error": (c.error if c else "no completion"), "finish_reason": c.finish_reason if c else None,
                                 "prompt_tokens": c.prompt_tokens if c else 0, "output_tokens": c.output_tokens if c else 0})
                atomic_write_parquet(self.out / WORK / f"{kind}-{k:05d}.parquet", pl.DataFrame(rows, schema={
                    "id": pl.String, "answer": pl.String, "error": pl.String, "finish_reason": pl.String,
                    "prompt_tokens": pl.Int64, "output_tokens": pl.Int64}))
                log.info("%s: slice %d committed (%d items)", kind, k, len(items))
        finally:
            self._stats(engine)
            engine.shutdown()

    def answers(self, kind: str) -> dict[str, dict]:
        frame = committed_frame(self.out, kind)
        return {r["id"]: r for r in frame.to_dicts()} if frame is not None else {}

    def _judge(self, state: str) -> None:
        """The judge's grades (and pairwise verdicts with a baseline), a committed slice at a time. The
        judge's engine starts only when some answer needs it (metrics and failed offline checks do not)."""
        from synth.judging import JudgeUsage, judge_batch

        self.judge_usage = JudgeUsage()
        answers = self.answers("answers")
        baseline = self.answers("baseline") if self.p.pairwise is not None else {}
        work = [("judge", k, items, self._judge_batch(items, answers)) for k, items in self._slices("judge")]
        if self.p.pairwise is not None:
            work += [("pairwise", k, items, self._pairwise_batch(items, answers, baseline))
                     for k, items in self._slices("pairwise")]
        engine = None
        try:
            for kind, k, items, batch in work:
                if batch and engine is None:
                    judge = self.config.judge
                    engine = self._engine("judge.engine", judge.engine, SamplingConfig(
                        temperature=judge.temperature, top_p=1.0, max_tokens=judge.max_tokens, seed=self.config.seed))
                if kind == "judge":
                    turns = {c.id: next(i.messages for i in items if i.id == c.id) for c in batch}
                    verdicts, usage = judge_batch(engine, self.p.judge, batch, turns) if batch else ([], JudgeUsage())
                    rows = [{"id": v.id, **{n: v.scores.get(n) for n in scoring.JUDGE_SCORES},
                             **{f"{d}_reason": v.reasons.get(d) for d in DIMENSIONS},
                             "unparseable": v.details[0] if v.scores.get("judge_language") is None and v.details else None}
                            for v in verdicts]
                    schema = {**{n: pl.Float64 for n in scoring.JUDGE_SCORES},
                              **{f"{d}_reason": pl.String for d in DIMENSIONS}, "unparseable": pl.String}
                else:
                    verdicts, usage = judge_batch(engine, self.p.pairwise, batch) if batch else ([], JudgeUsage())
                    by_id = {v.id: v for v in verdicts}
                    rows = [{"id": i.id, "ab": by_id[f"{i.id}.ab"].winner, "ba": by_id[f"{i.id}.ba"].winner,
                             "ab_reason": by_id[f"{i.id}.ab"].reason, "ba_reason": by_id[f"{i.id}.ba"].reason}
                            for i in items if f"{i.id}.ab" in by_id]
                    schema = {"ab": pl.String, "ba": pl.String, "ab_reason": pl.String, "ba_reason": pl.String}
                self.judge_usage.merge(usage)
                self._commit(kind, k, rows, schema)
        finally:
            if engine is not None:
                self._stats(engine)
                engine.shutdown()

    def _judge_batch(self, items: list[Item], answers: dict[str, dict]) -> list[Candidate]:
        """The answers of a slice the judge grades: not those a metric scores, nor those the offline
        language checks already failed (score 0 whatever the judge says)."""
        passed = self._passes_checks(items, answers)
        batch = []
        for item in items:
            answer = answers[item.id]
            if answer["error"] or (item.kind != "judged" and item.level != "language"):
                continue
            if item.level == "language" and not passed[item.id]:
                continue
            batch.append(Candidate(id=item.id, lang=item.lang, text=answer["answer"]))
            self.p.judge.references[item.id] = item.reference
        return batch

    def _pairwise_batch(self, items: list[Item], answers: dict[str, dict], baseline: dict[str, dict]) -> list[Candidate]:
        """Both orders of each item the judge compares (the offline checks decide where one answer or
        both fail them: synth/eval/outputs.py)."""
        passed, theirs_passed = self._passes_checks(items, answers), self._passes_checks(items, baseline)
        batch = []
        for item in items:
            mine, theirs = answers[item.id], baseline.get(item.id)
            if mine["error"] or theirs is None or theirs["error"] or (item.kind != "judged" and item.level != "language"):
                continue
            if item.level == "language" and not (passed[item.id] and theirs_passed[item.id]):
                continue
            for order, (a, b) in (("ab", (mine["answer"], theirs["answer"])), ("ba", (theirs["answer"], mine["answer"]))):
                cid = f"{item.id}.{order}"
                self.p.pairwise.context[cid] = {"turns": item.messages, "level": item.level,
                                                "reference": item.reference, "answer_a": a, "answer_b": b}
                batch.append(Candidate(id=cid, lang=item.lang, text=a))
        return batch

    def _passes_checks(self, items: list[Item], answers: dict[str, dict]) -> dict[str, bool]:
        """Whether each language-level answer passes the offline language checks."""
        mine = [i for i in items if i.level == "language" and i.id in answers]
        checks = scoring.offline_checks(self.p.verifier, mine, [answers[i.id]["answer"] for i in mine])
        return {i.id: c.passed for i, c in zip(mine, checks)}

    def _commit(self, kind: str, k: int, rows: list[dict], schema: dict) -> None:
        frame = pl.DataFrame(rows, schema={"id": pl.String, **schema})
        atomic_write_parquet(self.out / WORK / f"{kind}-{k:05d}.parquet", frame)
        log.info("%s: slice %d committed (%d rows)", kind, k, frame.height)
